"""`GitLabTracker`: the `bot.tracker.Tracker` over GitLab, composed of one object per GitLab resource on one
shared connection. It only hands each call to the resource that answers it; a resource the run does not use
is not even imported (an idle run reads the project and lists issues, nothing more)."""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

import requests

from ..config import Config
from ..tracker import Award, Issue, IssueEdit, Note, Upload
from .awards import Awards
from .connection import Connection
from .issues import Issues
from .members import Members
from .project import Project

if TYPE_CHECKING:
    from .labels import Labels
    from .notes import Notes
    from .snippets import Snippets
    from .uploads import Uploads


class GitLabTracker:
    """The tracker project in a real (or sandbox) GitLab."""

    def __init__(self, config: Config, token: str | None, *, max_retries: int = 3,
                 session: requests.Session | None = None):
        self._connection = Connection(config, token, max_retries=max_retries, session=session)
        self._members = Members(self._connection)
        self._awards = Awards(self._connection)
        self._issues = Issues(self._connection, self._members, self._awards)
        self._project = Project(self._connection, self._members)

    @cached_property
    def _notes(self) -> Notes:
        from .notes import Notes
        return Notes(self._connection, self._members)

    @cached_property
    def _labels(self) -> Labels:
        from .labels import Labels
        return Labels(self._connection)

    @cached_property
    def _snippets(self) -> Snippets:
        from .snippets import Snippets
        return Snippets(self._connection)

    @cached_property
    def _uploads(self) -> Uploads:
        from .uploads import Uploads
        return Uploads(self._connection)

    @property
    def api_calls(self) -> int:
        return self._connection.calls.count

    # --- issues ---------------------------------------------------------------------------------------
    def open_requests(self) -> list[Issue]:
        return self._issues.open_requests()

    def requests_since(self, since: datetime) -> list[Issue]:
        return self._issues.requests_since(since)

    def get_issue(self, iid: int) -> Issue:
        return self._issues.get_issue(iid)

    def search_issues(self, text: str, in_: str = "title,description", state: str = "all") -> list[Issue]:
        return self._issues.search_issues(text, in_, state)

    def labelled(self, label: str) -> bool:
        return self._issues.labelled(label)

    def not_confidential(self, iids: list[int]) -> list[Issue]:
        return self._issues.not_confidential(iids)

    def edit_issue(self, issue: Issue, edit: IssueEdit) -> Issue:
        return self._issues.edit_issue(issue, edit)

    def bot_issues(self) -> list[Issue]:
        return self._issues.bot_issues()

    def recent_bot_issues(self, since: datetime, reacted: str | None = None) -> list[Issue]:
        return self._issues.recent_bot_issues(since, reacted)

    def open_entry(self, title: str, description: str, landed) -> Issue:
        return self._issues.open_entry(title, description, landed)

    def home_issue(self, *, create: tuple[str, str, str] | None = None) -> int | None:
        return self._issues.home_issue(create=create)

    # --- notes ----------------------------------------------------------------------------------------
    def all_notes(self, iid: int) -> list[Note]:
        return self._notes.all_notes(iid)

    def comments(self, iid: int) -> list[Note]:
        return self._notes.comments(iid)

    def status_note(self, iid: int) -> Note | None:
        return self._notes.status_note(iid)

    def note_body(self, iid: int, note_id: int) -> str | None:
        return self._notes.note_body(iid, note_id)

    def save_status_note(self, iid: int, body: str, note_id: int | None = None) -> Note:
        return self._notes.save_status_note(iid, body, note_id)

    def add_note(self, iid: int, body: str, landed, doing: str = "") -> Note:
        return self._notes.add_note(iid, body, landed, doing)

    def delete_note(self, iid: int, note_id: int) -> None:
        self._notes.delete_note(iid, note_id)

    # --- award emoji ----------------------------------------------------------------------------------
    def awards(self, iid: int) -> list[Award]:
        return self._awards.awards(iid)

    def award(self, iid: int, name: str) -> Award | None:
        return self._awards.award(iid, name)

    def unaward(self, iid: int, award_id: int) -> bool:
        return self._awards.unaward(iid, award_id)

    # --- labels, snippets, uploads --------------------------------------------------------------------
    def label_names(self) -> set[str]:
        return self._labels.label_names()

    def create_label(self, name: str, color: str, description: str) -> bool:
        return self._labels.create_label(name, color, description)

    def record_head(self, title: str) -> str | None:
        return self._snippets.record_head(title)

    def save_record_head(self, title: str, text: str) -> None:
        self._snippets.save_record_head(title, text)

    def upload(self, filename: str, data: bytes) -> Upload:
        return self._uploads.upload(filename, data)

    # --- members and roles ----------------------------------------------------------------------------
    def me(self) -> dict[str, Any]:
        return self._members.me()

    def my_level(self) -> int:
        return self._members.my_level()

    def member_level(self, group: str, user_id: int) -> int:
        return self._members.member_level(group, user_id)

    def group(self, group: str) -> dict[str, Any]:
        return self._members.group(group)

    # --- the project and its GitLab -------------------------------------------------------------------
    def project_info(self) -> dict[str, Any]:
        return self._connection.project_info()

    def ensure_private(self) -> None:
        self._project.ensure_private()

    def ensure_can_work(self) -> None:
        self._project.ensure_can_work()

    def file_text(self, path: str, ref: str) -> str | None:
        return self._project.file_text(path, ref)

    def write_file(self, path: str, text: str, branch: str, message: str, *, create: bool) -> None:
        self._project.write_file(path, text, branch, message, create=create)

    def version(self) -> dict[str, Any]:
        return self._project.version()

    def license_plan(self) -> str | None:
        return self._project.license_plan()

    def token_info(self) -> dict[str, Any] | None:
        return self._project.token_info()

    def pipeline_schedules(self, project: str) -> list[dict[str, Any]]:
        return self._project.pipeline_schedules(project)
