"""The tracker project and its GitLab instance, as `run` checks them and `doctor` and `setup` read and set
them up: visibility, the bot's role, repository files, version and license, the token, pipeline schedules."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ..tracker import TrackerError
from .connection import Connection
from .members import Members


class Project:
    def __init__(self, connection: Connection, members: Members):
        self.connection = connection
        self.members = members

    def ensure_private(self) -> None:
        """Refuse a public tracker: an upload there is readable by anyone holding its link."""
        if self.connection.project_info().get("visibility") == "public":
            raise TrackerError(f"project {self.connection.config.gitlab.project} is public: license files uploaded "
                               "there could be downloaded by anyone holding the link. Make the tracker private "
                               "(Settings > General > Visibility) before running the bot", status=None)

    def ensure_can_work(self) -> None:
        """Refuse what would make a run or a search quietly wrong: a public tracker, or a token below
        Reporter, which cannot see confidential issues (every request is one) and would report
        "nothing found". One call, the project itself, which GitLab answers with the caller's role."""
        self.ensure_private()
        level = self.members.my_level()
        if level < 20:
            role = {0: "no role", 10: "the Guest role", 5: "the Minimal Access role"}.get(level, f"level {level}")
            raise TrackerError(f"the bot's token has {role} in {self.connection.config.gitlab.project}: it cannot "
                               "see confidential issues, and every request is confidential. Give the token's user "
                               "the Reporter role or above (Settings > Access tokens)", status=None)

    def file_text(self, path: str, ref: str) -> str | None:
        """A repository file's text on a branch; None when it does not exist."""
        conn = self.connection
        return conn.call(lambda: conn.project.files.get(path, ref=ref, max_retries=conn.max_retries)
                         .decode().decode("utf-8"), f"read {path}", absent={404: None})

    def write_file(self, path: str, text: str, branch: str, message: str, *, create: bool) -> None:
        conn = self.connection
        data = {"file_path": path, "branch": branch, "content": text, "commit_message": message}
        if create:
            conn.call(lambda: conn.project.files.create(data, max_retries=conn.max_retries), f"create {path}")
        else:
            conn.call(lambda: conn.project.files.update(path, data, max_retries=conn.max_retries), f"update {path}")

    def version(self) -> dict[str, Any]:
        conn = self.connection
        return conn.call(lambda: conn.gl.http_get("/version", max_retries=conn.max_retries), "read GitLab's version")

    def license_plan(self) -> str | None:
        """The installed license's plan (EE's GET /license); None when the token may not read it (only an
        administrator may, `ee/lib/api/license.rb`) or GitLab has no such call (CE)."""
        conn = self.connection
        info = conn.call(lambda: conn.gl.http_get("/license", max_retries=conn.max_retries), "read GitLab's license",
                         absent={403: None, 404: None})
        return str(info.get("plan") or "") or None if isinstance(info, dict) else None

    def token_info(self) -> dict[str, Any] | None:
        """The token's own record (scopes, expiry); None where GitLab has no such call for it."""
        conn = self.connection
        return conn.call(lambda: conn.gl.http_get("/personal_access_tokens/self", max_retries=conn.max_retries),
                         "read the token's scopes and expiry", absent={404: None, 403: None})

    def pipeline_schedules(self, project: str) -> list[dict[str, Any]]:
        path = f"/projects/{quote(str(project), safe='')}/pipeline_schedules"
        return self.connection.pages(path, f"read the pipeline schedules of project {project}")
