"""In-memory stand-ins for GitLab and SMTP with GitLab's semantics, call counts and crash injection."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone

from bot.mailer import MailError
from bot.tracker import Issue, IssueEdit, Note, TrackerError, Upload

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=timezone.utc)


class Crash(BaseException):
    """The process dies here (BaseException: nothing in the bot may catch it)."""


@dataclass
class CrashPlan:
    """Counts side effects (tracker writes, emails) and dies right after effect number `after`."""

    after: int | None = None
    effects: int = 0

    def effect(self) -> None:
        self.effects += 1
        if self.after is not None and self.effects == self.after:
            raise Crash(f"crash after effect {self.effects}")


@dataclass
class FakeTracker:
    bot_user: str = "license-bot"
    members: dict[str, set[int]] = field(default_factory=lambda: {"support": {10}})
    visibility: str = "private"
    request_label: str = "license-request"
    success_label: str = "license-request::success"
    issues: dict[int, Issue] = field(default_factory=dict)
    notes: dict[int, list[Note]] = field(default_factory=dict)
    uploads: list[tuple[str, bytes]] = field(default_factory=list)
    labels: dict[str, dict] = field(default_factory=dict)
    crash: CrashPlan = field(default_factory=CrashPlan)
    api_calls: int = 0
    fail_search: int | None = None  # an HTTP status the next searches answer with
    writes: list[tuple[str, int, object]] = field(default_factory=list)  # (kind, iid, what), in order
    _cache: dict = field(default_factory=dict)

    # --- test helpers ---------------------------------------------------------------------------
    def file(self, description: str, *, author: str = "alice", author_id: int = 10,
             labels: tuple[str, ...] = ("license-request",), confidential: bool = True,
             created: datetime = NOW, title: str = "Emergency license") -> Issue:
        iid = max(self.issues, default=0) + 1
        issue = Issue(iid=iid, title=title, description=description, state="opened", labels=labels,
                      author_username=author, author_id=author_id, confidential=confidential,
                      web_url=f"https://gitlab.example.com/support/internal-requests/-/issues/{iid}",
                      created_at=created, updated_at=created)
        self.issues[iid] = issue
        self.notes[iid] = []
        return issue

    def bot_notes(self, iid: int) -> list[Note]:
        return [n for n in self.notes[iid] if n.author_username == self.bot_user]

    def new_run(self) -> None:
        """A fresh process: per-run caches gone, counters from zero."""
        self._cache.clear()
        self.api_calls = 0

    # --- the Tracker interface ------------------------------------------------------------------
    def open_requests(self) -> list[Issue]:
        self.api_calls += 2
        return sorted((i for i in self.issues.values() if i.state == "opened" and (
            self.request_label in i.labels or "license-bot:request-form" in i.description)),
            key=lambda i: (i.created_at, i.iid))

    def get_issue(self, iid: int) -> Issue:
        self.api_calls += 1
        return self.issues[iid]

    def status_note(self, iid: int) -> Note | None:
        self.api_calls += 1
        return next((n for n in self.bot_notes(iid) if "<!-- license-bot:status -->" in n.body), None)

    def save_status_note(self, iid: int, body: str, note_id: int | None = None) -> Note:
        self.api_calls += 1
        notes = self.notes[iid]
        if note_id is None:
            note = Note(id=1000 * iid + len(notes) + 1, body=body, author_username=self.bot_user)
            notes.append(note)
            self.issues[iid] = replace(self.issues[iid], user_notes_count=len(notes))
        else:
            index = next(i for i, n in enumerate(notes) if n.id == note_id)
            note = notes[index] = replace(notes[index], body=body)
        self.writes.append(("note", iid, body))
        self.crash.effect()
        return note

    def edit_issue(self, issue: Issue, edit: IssueEdit) -> Issue:
        if not edit.payload():
            return issue
        self.api_calls += 1
        current = self.issues[issue.iid]
        updated = replace(edit.applied_to(current), updated_at=NOW,
                          closed_at=NOW if edit.state_event == "close" else current.closed_at)
        self.issues[issue.iid] = updated
        self.writes.append(("edit", issue.iid, edit.payload()))
        self.crash.effect()
        return updated

    def upload(self, filename: str, data: bytes) -> Upload:
        self.api_calls += 1
        self.uploads.append((filename, data))
        self.writes.append(("upload", 0, filename))
        n = len(self.uploads)
        upload = Upload(url=f"/uploads/{n:032x}/{filename}", markdown=f"[{filename}](/uploads/{n:032x}/{filename})")
        self.crash.effect()
        return upload

    def ensure_private(self) -> None:
        if "private" not in self._cache:
            self.api_calls += 1
            if self.visibility == "public":
                raise TrackerError("project support/internal-requests is public")
            self._cache["private"] = True

    def create_label(self, name: str, color: str, description: str) -> bool:
        self.api_calls += 1
        if name in self.labels:
            return False
        self.labels[name] = {"name": name, "color": color, "description": description}
        self.writes.append(("label+", 0, name))
        return True

    def get_label(self, name: str) -> dict | None:
        self.api_calls += 1
        return self.labels.get(name)

    def delete_label(self, name: str) -> None:
        self.api_calls += 1
        self.labels.pop(name, None)
        self.writes.append(("label-", 0, name))

    def me(self) -> dict:
        return {"id": 99, "username": self.bot_user}

    def is_group_member(self, group: str, user_id: int) -> bool:
        key = ("member", group, user_id)
        if key not in self._cache:
            self.api_calls += 1
            self._cache[key] = user_id in self.members.get(group, set())
        return self._cache[key]

    def success_issues(self, updated_after: date) -> list[Issue]:
        key = ("success", updated_after)
        if key not in self._cache:
            self.api_calls += 1
            self._cache[key] = [i for i in self.issues.values() if self.success_label in i.labels
                                and i.updated_at.date() >= updated_after]
        return self._cache[key]

    def search_issues(self, text: str, in_: str = "title,description", state: str = "all",
                      labels: tuple[str, ...] = ()) -> list[Issue]:
        self.api_calls += 1
        if self.fail_search:
            raise TrackerError(f"could not list issues: GitLab answered {self.fail_search}",
                               transient=self.fail_search >= 500, status=self.fail_search)
        needle = text.lower()
        return [i for i in self.issues.values()
                if ("title" in in_ and needle in i.title.lower()) or ("description" in in_ and
                                                                        needle in i.description.lower())]


@dataclass
class FakeMailer:
    crash: CrashPlan
    sent: list = field(default_factory=list)
    fail: list[MailError] = field(default_factory=list)  # errors the next sends raise, in order

    def send(self, message) -> None:
        if self.fail:
            raise self.fail.pop(0)
        self.sent.append(message)
        self.crash.effect()


@dataclass
class FakeNotifier:
    posts: list[str] = field(default_factory=list)
    fail: bool = False

    def post(self, text: str) -> None:
        from bot.slack import SlackError
        if self.fail:
            raise SlackError("Slack answered 500: oops")
        self.posts.append(text)
