"""One authenticated connection to GitLab, shared by every resource: each call counted, each failure a
TrackerError a person can act on (never the token)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import gitlab
import gitlab.exceptions
import requests

from .. import meaning
from ..config import Config
from ..tracker import TrackerError


class CallCounter:
    """Counts every HTTP request python-gitlab makes, retries included (a `requests` response hook)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        self.count += 1
        return response


class Connection:
    """The tracker project in a real (or sandbox) GitLab, as the token's user."""

    def __init__(self, config: Config, token: str | None, *, max_retries: int = 3,
                 session: requests.Session | None = None):
        if not token:
            raise TrackerError("GITLAB_TOKEN is not set: create a personal access token with the api scope for the "
                               "bot's own user (README, \"The token\") and store it as a masked CI variable")
        self.config = config
        self.calls = CallCounter()
        session = session or requests.Session()
        session.hooks["response"].append(self.calls)
        self.gl = gitlab.Gitlab(config.gitlab.url, private_token=token, timeout=config.gitlab.timeout_seconds,
                                retry_transient_errors=True, session=session, user_agent="license-bot")
        self.max_retries = max_retries
        self.project = self.gl.projects.get(config.gitlab.project, lazy=True)
        self.project_path = f"/projects/{quote(str(config.gitlab.project), safe='')}"
        self._project_info: dict[str, Any] | None = None

    def project_info(self) -> dict[str, Any]:
        """The tracker project (visibility, default branch, the caller's role), read once per run."""
        if self._project_info is None:
            project = self.config.gitlab.project
            self._project_info = self.call(lambda: self.gl.projects.get(project, max_retries=self.max_retries)
                                           .attributes, f"read project {project}")
        return self._project_info

    def pages(self, path: str, doing: str, **params: Any) -> list[dict[str, Any]]:
        """Every page of a list answer, as dicts."""
        return self.call(lambda: list(self.gl.http_list(path, iterator=True, max_retries=self.max_retries,
                                                        **params)), doing)

    def call(self, func, doing: str, absent: dict[int, Any] | None = None):
        """Run one python-gitlab call; `absent` maps the status codes that are an answer (404: no such
        thing, 409: exists already) to the value to return. Any other failure is a TrackerError."""
        try:
            return func()
        except gitlab.exceptions.GitlabError as exc:
            if absent and exc.response_code in absent:
                return absent[exc.response_code]
            raise self.translate(exc, doing) from None
        except requests.RequestException as exc:
            raise self.translate(exc, doing) from None

    def translate(self, exc: Exception, doing: str) -> TrackerError:
        where = f"{self.config.gitlab.url} ({self.config.gitlab.project})"
        if isinstance(exc, requests.RequestException):
            return TrackerError(f"could not {doing}: GitLab at {where} is unreachable ({type(exc).__name__})",
                                transient=True)
        code = getattr(exc, "response_code", None)
        detail = str(getattr(exc, "error_message", "") or "")[:200]
        if code == 401:
            return TrackerError(f"could not {doing}: GitLab refused the token (401). Check that GITLAB_TOKEN is "
                                "valid and not expired", status=code)
        if code == 403:
            return TrackerError(f"could not {doing}: the token's user lacks permission (403). Give it at least "
                                "the Reporter role and the api scope", status=code)
        if code == 404:
            return TrackerError(f"could not {doing}: not found (404) at {where}: {detail}", status=code)
        transient = code is None or code >= 500 or code in (408, 409, 429)
        if transient:  # a server or proxy failing: what it means and the code, never its page (bot.meaning)
            return TrackerError(f"could not {doing}: {meaning.http('GitLab', code)}", transient=True, status=code)
        return TrackerError(f"could not {doing}: GitLab answered {code}: {detail}", transient=transient, status=code)
