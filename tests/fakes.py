"""In-memory stand-ins for GitLab and SMTP with GitLab's semantics, call counts and crash injection."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

from bot.mailer import MailError
from bot.tracker import Award, Issue, IssueEdit, Note, TrackerError, Upload

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=timezone.utc)
# Reaction ids never repeat, as GitLab's, not even across test processes (the run lock's hint file outlives them).
_AWARD_IDS = itertools.count(os.getpid() % 100_000 * 1_000_000 + 1)


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
    bot_id: int = 99
    # Direct members and their access level, by group; alice (10) is a Developer of support.
    members: dict[str, dict[int, int]] = field(default_factory=lambda: {"support": {10: 30},
                                                                         "support-managers": {12: 40}})
    my_level: int = 40
    refuse_token: bool = False
    visibility: str = "private"
    request_label: str = "license-request"
    success_label: str = "license-request::success"
    issues: dict[int, Issue] = field(default_factory=dict)
    notes: dict[int, list[Note]] = field(default_factory=dict)
    uploads: list[tuple[str, bytes]] = field(default_factory=list)
    crash: CrashPlan = field(default_factory=CrashPlan)
    api_calls: int = 0
    fail_search: int | None = None  # an HTTP status the next searches answer with
    fail_record: int | None = None  # an HTTP status reading the record answers with
    writes: list[tuple[str, int, object]] = field(default_factory=list)  # (kind, iid, what), in order
    home_iid: int | None = None
    system: dict[int, list[Note]] = field(default_factory=dict)   # GitLab's system notes, by issue
    reactions: dict[int, list[Award]] = field(default_factory=dict)
    ticks: int = 0  # a clock for what GitLab time-stamps, one second per event after NOW
    anchor: str | None = None  # the bot's anchor snippet's text (the record's head)
    _cache: dict = field(default_factory=dict)

    # --- test helpers ---------------------------------------------------------------------------
    def file(self, description: str, *, author: str = "alice", author_id: int = 10,
             labels: tuple[str, ...] = ("license-request",), confidential: bool = True,
             created: datetime = NOW, title: str = "Emergency license", iid: int | None = None) -> Issue:
        iid = iid or max((i for i in self.issues if i < 900), default=0) + 1
        issue = Issue(iid=iid, title=title, description=description, state="opened", labels=labels,
                      author_username=author, author_id=author_id, confidential=confidential,
                      web_url=f"https://gitlab.example.com/support/internal-requests/-/issues/{iid}",
                      created_at=created, updated_at=created)
        self.issues[iid] = issue
        self.notes[iid] = []
        return issue

    def erase_record_entries(self) -> None:
        """An Owner deletes every record entry issue the bot opened (its home issue stays)."""
        for iid in [i for i, issue in self.issues.items() if issue.author_id == self.bot_id and i != self.home_iid]:
            del self.issues[iid]

    def bot_notes(self, iid: int) -> list[Note]:
        return [n for n in self.notes[iid] if n.author_username == self.bot_user]

    def label_as(self, iid: int, label: str, user: str, user_id: int, action: str = "add") -> None:
        """A person adds (or removes) a label."""
        issue = self.issues[iid]
        labels = (*issue.labels, label) if action == "add" else tuple(lb for lb in issue.labels if lb != label)
        self.issues[iid] = replace(issue, labels=labels, updated_at=NOW)

    def _tick(self) -> datetime:
        self.ticks += 1
        return NOW + timedelta(seconds=self.ticks)

    def system_note(self, iid: int, body: str, user: str, user_id: int) -> None:
        note = Note(id=10**6 + self.ticks, body=body, author_username=user, author_id=user_id, system=True,
                    created_at=self._tick())
        self.system.setdefault(iid, []).append(note)

    def edit_description(self, iid: int, description: str, user: str = "alice", user_id: int = 10) -> None:
        """A person edits the description, as GitLab records it: a system note by the editor."""
        self.system_note(iid, "changed the description", user, user_id)
        self.issues[iid] = replace(self.issues[iid], description=description, updated_at=self._tick())

    def react(self, iid: int, name: str, user: str, user_id: int) -> Award | None:
        """A user's emoji reaction; None when that user has it there already (GitLab refuses a second)."""
        mine = self.reactions.setdefault(iid, [])
        if any(a.user_id == user_id and a.name == name for a in mine):
            return None
        award = Award(id=next(_AWARD_IDS), name=name, user_id=user_id, username=user, created_at=self._tick())
        mine.append(award)
        return award

    def comment(self, iid: int, body: str, user: str = "alice", user_id: int = 10) -> Note:
        notes = self.notes[iid]
        note = Note(id=1000 * iid + len(notes) + 1, body=body, author_username=user, author_id=user_id)
        notes.append(note)
        self.issues[iid] = replace(self.issues[iid], user_notes_count=len(notes))
        return note

    def new_run(self) -> None:
        """A fresh process: per-run caches gone, counters from zero."""
        self._cache.clear()
        self.api_calls = 0

    # --- the Tracker interface ------------------------------------------------------------------
    def open_requests(self) -> list[Issue]:
        self.api_calls += 1
        return sorted((i for i in self.issues.values() if i.state == "opened" and (
            self.request_label in i.labels or "license-bot:request-form" in i.description)),
            key=lambda i: (i.created_at, i.iid))

    def get_issue(self, iid: int) -> Issue:
        self.api_calls += 1
        return self.issues[iid]

    def status_note(self, iid: int) -> Note | None:
        self.api_calls += 1
        return next((n for n in self.bot_notes(iid) if "<!-- license-bot:status -->" in n.body), None)

    def comments(self, iid: int) -> list[Note]:
        self.api_calls += 1
        if self.fail_record:
            raise TrackerError(f"could not read the notes: GitLab answered {self.fail_record}",
                               transient=self.fail_record >= 500, status=self.fail_record)
        return list(self.notes[iid])

    def all_notes(self, iid: int) -> list[Note]:
        self.api_calls += 1
        return [*self.system.get(iid, ()), *self.notes[iid]]

    def unaward(self, iid: int, award_id: int) -> bool:
        self.api_calls += 1
        mine = self.reactions.get(iid, [])
        if not any(a.id == award_id for a in mine):
            return False
        self.reactions[iid] = [a for a in mine if a.id != award_id]
        self.writes.append(("unaward", iid, award_id))
        return True

    def note_body(self, iid: int, note_id: int) -> str | None:
        self.api_calls += 1
        return next((n.body for n in self.notes[iid] if n.id == note_id), None)

    def delete_note(self, iid: int, note_id: int) -> None:
        self.api_calls += 1
        self.notes[iid] = [n for n in self.notes[iid] if n.id != note_id]
        self.writes.append(("note-", iid, note_id))

    def awards(self, iid: int) -> list[Award]:
        self.api_calls += 1
        return list(self.reactions.get(iid, ()))

    def award(self, iid: int, name: str) -> Award | None:
        self.api_calls += 1
        award = self.react(iid, name, self.bot_user, self.bot_id)
        if award is not None:  # a refused reaction changes nothing
            self.writes.append(("award", iid, name))
            self.crash.effect()
        return award

    def home_issue(self, *, create: tuple[str, str, str] | None = None) -> int | None:
        if "home" not in self._cache:
            self.api_calls += 1
            mine = [i for i in self.issues.values() if i.author_id == self.bot_id]
            if mine:
                self.home_iid = min(mine, key=lambda i: i.iid).iid
            elif create:
                self.api_calls += 2
                issue = self.file(create[1], author=self.bot_user, author_id=self.bot_id, labels=(),
                                  title=create[0], iid=900)  # out of the way of the tests' iids
                self.react(issue.iid, create[2], self.bot_user, self.bot_id)
                self.home_iid = issue.iid
                self.writes.append(("home-issue", issue.iid, None))
            else:
                return None
            self._cache["home"] = self.home_iid
        return self._cache["home"]

    def bot_issues(self) -> list[Issue]:
        self.api_calls += 1
        if self.fail_record:
            raise TrackerError(f"could not list issues: GitLab answered {self.fail_record}",
                               transient=self.fail_record >= 500, status=self.fail_record)
        mine = (i for i in self.issues.values() if i.author_id == self.bot_id)
        return sorted(mine, key=lambda i: (i.created_at, i.iid))

    def entry_issues(self) -> list[Issue]:
        """The record's entry issues (a test helper)."""
        return [i for i in self.bot_issues() if "license-bot:record-entry" in i.description]

    def open_entry(self, title: str, description: str, landed) -> Issue:
        self.api_calls += 2  # open, then close
        iid = max((i for i in self.issues if i >= 900), default=899) + 1  # out of the way of the tests' iids
        issue = self.file(description, author=self.bot_user, author_id=self.bot_id, labels=(), title=title, iid=iid)
        self.issues[iid] = issue = replace(issue, state="closed", closed_at=NOW)
        self.writes.append(("record", iid, description))
        self.crash.effect()
        return issue

    def record_head(self, title: str) -> str | None:
        """The bot's anchor snippet (kept as `anchor`; None: none)."""
        self.api_calls += 1
        return self.anchor

    def save_record_head(self, title: str, text: str) -> None:
        self.api_calls += 1
        self.anchor = text
        self.writes.append(("anchor", 0, text))

    def not_confidential(self, iids: list[int]) -> list[Issue]:
        self.api_calls += -(-len(iids) // 100)
        return [self.issues[i] for i in iids if i in self.issues and not self.issues[i].confidential]

    def add_note(self, iid: int, body: str, landed) -> Note:
        self.api_calls += 1
        note = Note(id=1000 * iid + len(self.notes[iid]) + 1, body=body, author_username=self.bot_user,
                    author_id=self.bot_id)
        self.notes[iid].append(note)
        self.writes.append(("record", iid, body))
        self.crash.effect()
        return note

    def save_status_note(self, iid: int, body: str, note_id: int | None = None) -> Note:
        self.api_calls += 1
        notes = self.notes[iid]
        if note_id is None:
            note = Note(id=1000 * iid + len(notes) + 1, body=body, author_username=self.bot_user,
                        author_id=self.bot_id)
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
        if edit.state_event == "close" and current.state == "opened":
            self.system_note(issue.iid, "closed", self.bot_user, self.bot_id)
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

    def ensure_can_work(self) -> None:
        if "private" not in self._cache:
            self.api_calls += 1
            if self.refuse_token:
                raise TrackerError("could not read project support/internal-requests: GitLab refused the token "
                                   "(401)", status=401)
            if self.visibility == "public":
                raise TrackerError("project support/internal-requests is public")
            if self.my_level < 20:
                raise TrackerError("the bot's token has the Guest role in support/internal-requests")
            self._cache["private"] = True

    def me(self) -> dict:
        return {"id": self.bot_id, "username": self.bot_user}

    def group(self, group: str) -> dict:
        key = ("group", group)
        if key not in self._cache:
            self.api_calls += 1
            if group not in self.members:
                raise TrackerError(f"group {group} does not exist or the bot's token cannot read it (404)")
            self._cache[key] = {"full_path": group}
        return self._cache[key]

    def member_level(self, group: str, user_id: int) -> int:
        key = ("member", group, user_id)
        if key not in self._cache:
            self.group(group)
            self.api_calls += 1
            self._cache[key] = self.members[group].get(user_id, 0)
        return self._cache[key]

    def search_issues(self, text: str, in_: str = "title,description", state: str = "all") -> list[Issue]:
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

    def check(self) -> None:
        if self.fail and self.fail[0].config:
            raise self.fail[0]

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


@dataclass
class FakeZendesk:
    """An in-memory Zendesk with ZendeskClient's interface (`bot/zendesk.py`): tickets by id, each with its
    comments (an internal note is a comment with `public: false`, as Zendesk's Ticket Comments API returns it)
    and tags; `fail` maps an operation to the errors its next calls raise, in order."""

    tickets: dict[int, dict] = field(default_factory=dict)
    fail: dict[str, list] = field(default_factory=dict)  # "ticket", "comments", "note", "tag" -> [ZendeskError]
    refuse_files: bool = False  # the account refuses the license file's type: the note goes without it
    calls: list[tuple[str, int]] = field(default_factory=list)

    def add_ticket(self, ticket_id: int = 512345, *, requester: str = "jane.doe@example.com", status: str = "open",
                   attachments: int = 2, organization: str | None = "ACME Corp") -> dict:
        self.tickets[ticket_id] = ticket = {
            "status": status, "requester": requester, "organization": organization, "tags": set(),
            "comments": [{"public": True, "body": "Our instance is read-only", "attachments": [{}] * attachments}]}
        return ticket

    def internal_notes(self, ticket_id: int = 512345) -> list[dict]:
        return [c for c in self.tickets[ticket_id]["comments"] if not c["public"]]

    def _call(self, op: str, ticket_id: int) -> None:
        self.calls.append((op, ticket_id))
        if self.fail.get(op):
            raise self.fail[op].pop(0)

    def me(self) -> dict:
        """The API user: an agent (bot/zendesk.py `unusable_role`)."""
        return {"id": 1, "email": "bot@example.com", "role": "agent", "role_type": None}

    def ticket(self, ticket_id: int):
        from bot.policy import TicketFacts
        self._call("ticket", ticket_id)
        t = self.tickets.get(ticket_id)
        if t is None:
            return None
        return TicketFacts(ticket_id, t["status"], t["requester"], "Jane", t["organization"], (),
                           sum(len(c["attachments"]) for c in t["comments"]))

    def comments(self, ticket_id: int) -> list[dict]:
        self._call("comments", ticket_id)
        return [dict(c) for c in self.tickets[ticket_id]["comments"]]

    def add_internal_note(self, ticket_id: int, body: str, file_name: str, data: bytes) -> bool:
        self._call("note", ticket_id)
        files = [] if self.refuse_files else [{"file_name": file_name, "data": data}]
        self.tickets[ticket_id]["comments"].append({"public": False, "body": body, "attachments": files})
        return not self.refuse_files

    def add_tag(self, ticket_id: int, tag: str) -> None:
        self._call("tag", ticket_id)
        self.tickets[ticket_id]["tags"].add(tag)
