"""Award emoji (reactions) on issues: the bot's claims, its run lock and the approvers' :key:."""

from __future__ import annotations

import gitlab.exceptions
import requests

from ..tracker import Award
from .connection import Connection


class Awards:
    def __init__(self, connection: Connection):
        self.connection = connection

    def awards(self, iid: int) -> list[Award]:
        """The emoji reactions on an issue, oldest first."""
        path = f"{self.connection.project_path}/issues/{iid}/award_emoji"
        data = self.connection.pages(path, f"read the reactions on issue #{iid}", per_page=100)
        return sorted((Award.from_api(a) for a in data), key=lambda a: (a.created_at, a.id))

    def award(self, iid: int, name: str) -> Award | None:
        """React to an issue as the bot; None when the bot's user has that reaction there already. GitLab
        refuses a second identical reaction by the same user with 404 "... has already been taken"
        (`lib/api/award_emoji.rb`, `AwardEmoji` uniqueness). Never retried blindly: a retry after a POST
        that landed would look like a refusal, so a transient failure is an error the run reports."""
        path = f"{self.connection.project_path}/issues/{iid}/award_emoji"
        try:
            data = self.connection.gl.http_post(path, post_data={"name": name}, retry_transient_errors=False)
        except gitlab.exceptions.GitlabError as exc:
            if exc.response_code == 404 and "already been taken" in str(exc.error_message):
                return None
            raise self.connection.translate(exc, f"claim issue #{iid}") from None
        except requests.RequestException as exc:
            raise self.connection.translate(exc, f"claim issue #{iid}") from None
        return Award.from_api(data)

    def unaward(self, iid: int, award_id: int) -> bool:
        """Remove one of the bot's reactions, by id; False when it is gone already."""
        conn = self.connection
        path = f"{conn.project_path}/issues/{iid}/award_emoji/{award_id}"

        def remove() -> bool:
            conn.gl.http_delete(path, max_retries=conn.max_retries)
            return True
        return conn.call(remove, f"remove a reaction on issue #{iid}", absent={404: False})
