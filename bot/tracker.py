"""What the processor sees of the request tracker: the values it speaks in, the one error, and the `Tracker`
interface. The GitLab adapter (`bot.gitlab`) provides it, and so do the dry run and the tests' fakes.

Each value parses its GitLab API shape once (`from_api`) and is frozen: nothing past the adapter sees a dict.
The tracker only fetches and writes; what counts as evidence is decided in `bot.evidence`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from .errors import BotError
from .inert import inert

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class TrackerError(BotError):
    """GitLab could not be asked or refused the bot. `transient` errors are worth retrying later."""

    def __init__(self, message: str, *, transient: bool = False, status: int | None = None):
        super().__init__(message)
        self.transient = transient
        self.status = status


@dataclass(frozen=True)
class Issue:
    """An issue as GitLab shows it to the bot: a request, an entry of the record, or the bot's home issue."""

    iid: int
    title: str
    description: str
    state: str
    labels: tuple[str, ...]
    author_username: str
    author_id: int
    confidential: bool
    web_url: str
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None = None
    user_notes_count: int = 0
    assignee_ids: tuple[int, ...] = ()

    @property
    def ref(self) -> str:
        return f"#{self.iid}"

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Issue:
        author = data.get("author") or {}
        return cls(
            iid=int(data["iid"]),
            title=data.get("title") or "",
            description=data.get("description") or "",
            state=data.get("state") or "opened",
            labels=tuple(data.get("labels") or ()),
            author_username=author.get("username") or "",
            author_id=int(author.get("id") or 0),
            confidential=bool(data.get("confidential")),
            web_url=data.get("web_url") or "",
            created_at=_time(data.get("created_at")) or _EPOCH,
            updated_at=_time(data.get("updated_at")) or _EPOCH,
            closed_at=_time(data.get("closed_at")),
            user_notes_count=int(data.get("user_notes_count") or 0),
            assignee_ids=tuple(int(a["id"]) for a in data.get("assignees") or () if "id" in a),
        )


@dataclass(frozen=True)
class Note:
    """A note on an issue: a comment, or a system note GitLab wrote as the user who acted."""

    id: int
    body: str
    author_username: str = ""
    author_id: int = 0
    system: bool = False  # written by GitLab itself, as the user who acted; nobody can edit it
    created_at: datetime = field(default=_EPOCH, compare=False)

    @classmethod
    def from_api(cls, d: dict[str, Any]) -> Note:
        author = d.get("author") or {}
        return cls(id=int(d["id"]), body=d.get("body") or "", author_username=author.get("username") or "",
                   author_id=int(author.get("id") or 0), system=bool(d.get("system")),
                   created_at=_time(d.get("created_at")) or _EPOCH)


@dataclass(frozen=True)
class Award:
    """A reaction (award emoji): only its own user (or an admin) removes it (lib/api/award_emoji.rb)."""

    id: int
    name: str
    user_id: int
    username: str
    created_at: datetime

    @classmethod
    def from_api(cls, a: dict[str, Any]) -> Award:
        user = a.get("user") or {}
        return cls(id=int(a.get("id") or 0), name=a.get("name") or "", user_id=int(user.get("id") or 0),
                   username=user.get("username") or "", created_at=_time(a.get("created_at")) or _EPOCH)


@dataclass(frozen=True)
class Upload:
    """A file uploaded to the project, and the Markdown that links it."""

    url: str
    markdown: str
    full_path: str = ""

    @classmethod
    def from_api(cls, result: dict[str, Any]) -> Upload:
        # A server reply the bot will write into notes: made inert here, where it enters (see bot/inert.py).
        return cls(url=result["url"], markdown=inert(result["markdown"]), full_path=result.get("full_path", ""))


@dataclass(frozen=True)
class IssueEdit:
    """Everything the bot changes on an issue, sent as one request."""

    title: str | None = None
    add_labels: tuple[str, ...] = ()
    remove_labels: tuple[str, ...] = ()
    state_event: str | None = None
    confidential: bool | None = None
    assignee_ids: tuple[int, ...] | None = None
    description: str | None = None  # only ever the bot's own text (a record entry it restores)

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.title is not None:
            data["title"] = self.title
        if self.description is not None:
            data["description"] = self.description
        if self.add_labels:
            data["add_labels"] = ",".join(self.add_labels)
        if self.remove_labels:
            data["remove_labels"] = ",".join(self.remove_labels)
        if self.state_event:
            data["state_event"] = self.state_event
        if self.confidential is not None:
            data["confidential"] = self.confidential
        if self.assignee_ids is not None:
            data["assignee_ids"] = list(self.assignee_ids)
        return data

    def applied_to(self, issue: Issue) -> Issue:
        """The issue as it is after this edit (what GitLab returns)."""
        labels = [lb for lb in issue.labels if lb not in self.remove_labels]
        labels += [lb for lb in self.add_labels if lb not in labels]
        state = {"close": "closed", "reopen": "opened"}.get(self.state_event or "", issue.state)
        return Issue(**{**issue.__dict__, "labels": tuple(labels), "state": state,
                        "title": self.title if self.title is not None else issue.title,
                        "description": self.description if self.description is not None else issue.description,
                        "confidential": issue.confidential if self.confidential is None else self.confidential,
                        "assignee_ids": issue.assignee_ids if self.assignee_ids is None else self.assignee_ids})


class Tracker(Protocol):
    """What the processor needs from the tracker; GitLabTracker and the test fakes provide it."""

    def open_requests(self) -> list[Issue]: ...
    def get_issue(self, iid: int) -> Issue: ...
    def status_note(self, iid: int) -> Note | None: ...
    def save_status_note(self, iid: int, body: str, note_id: int | None = None) -> Note: ...
    def edit_issue(self, issue: Issue, edit: IssueEdit) -> Issue: ...
    def upload(self, filename: str, data: bytes) -> Upload: ...
    def ensure_can_work(self) -> None: ...
    def me(self) -> dict[str, Any]: ...
    def group(self, group: str) -> dict[str, Any]: ...
    def member_level(self, group: str, user_id: int) -> int: ...
    def home_issue(self, *, create: tuple[str, str, str] | None = None) -> int | None: ...
    def bot_issues(self) -> list[Issue]: ...
    def recent_bot_issues(self, since: datetime, reacted: str | None = None) -> list[Issue]: ...
    def open_entry(self, title: str, description: str, landed) -> Issue: ...
    def not_confidential(self, iids: list[int]) -> list[Issue]: ...
    def record_head(self, title: str) -> str | None: ...
    def save_record_head(self, title: str, text: str) -> None: ...
    def comments(self, iid: int) -> list[Note]: ...
    def all_notes(self, iid: int) -> list[Note]: ...
    def awards(self, iid: int) -> list[Award]: ...
    def note_body(self, iid: int, note_id: int) -> str | None: ...
    def delete_note(self, iid: int, note_id: int) -> None: ...
    def award(self, iid: int, name: str) -> Award | None: ...
    def unaward(self, iid: int, award_id: int) -> bool: ...
    def add_note(self, iid: int, body: str, landed) -> Note: ...
    def search_issues(self, text: str, in_: str = "title,description", state: str = "all") -> list[Issue]: ...
