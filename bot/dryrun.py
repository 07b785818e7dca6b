"""--dry-run: the same processor over adapters that read for real and print each write instead.

What is printed is exactly what a real run would write, because the real code path produces it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from email.message import EmailMessage

from . import record
from . import status as status_mod
from .license import fingerprint
from .tracker import Issue, IssueEdit, Note, Upload


def _without_key(body: str) -> str:
    key = status_mod.key_text(body)
    if not key:
        return body
    return body.replace(key, f"[the license key: {len(key)} characters, SHA-256 {fingerprint(key)}]")


def _readable(body: str) -> str:
    """A note as a person reads it (bot.messages.as_text), the key summarised."""
    from .messages import as_text

    return as_text(_without_key(body))


def _in_words(edit: IssueEdit) -> str:
    def labels(names: tuple[str, ...]) -> str:
        return f"label{'s' if len(names) != 1 else ''} {', '.join(names)}"

    words = []
    if edit.title is not None:
        words.append(f"retitle it {edit.title!r}")
    if edit.add_labels:
        words.append(f"add the {labels(edit.add_labels)}")
    if edit.remove_labels:
        words.append(f"remove the {labels(edit.remove_labels)}")
    if edit.confidential is not None:
        words.append("make it confidential" if edit.confidential else "make it not confidential")
    if edit.assignee_ids is not None:
        words.append(f"assign it to user id {', '.join(map(str, edit.assignee_ids))}" if edit.assignee_ids
                     else "unassign it")
    if edit.state_event:
        words.append({"close": "close it", "reopen": "reopen it"}.get(edit.state_event, edit.state_event))
    if edit.description is not None:  # a record entry restored (bot.record.Record.repairs), its key summarised
        shown = "\n".join(("    " + line).rstrip() for line in _readable(edit.description).splitlines())
        words.append(f"rewrite its description, reading:\n{shown}")
    return "; ".join(words)


class DryRunTracker:
    def __init__(self, tracker, say: Callable[[str], None]):
        self._tracker, self._say = tracker, say
        self._uploads = 0
        self._home_opened = False

    def __getattr__(self, name):  # reads go to the real tracker
        return getattr(self._tracker, name)

    def edit_issue(self, issue: Issue, edit: IssueEdit) -> Issue:
        changes = _in_words(edit)
        if changes:
            self._say(f"would change issue {issue.ref}: {changes}")
        return edit.applied_to(issue)

    def save_status_note(self, iid: int, body: str, note_id: int | None = None) -> Note:
        verb = ("rewrite the status note it would have written on" if note_id == -1 else
                "rewrite its status note on" if note_id else "write a status note on")
        shown = "\n".join(("    " + line).rstrip() for line in _readable(body).splitlines())
        self._say(f"would {verb} issue #{iid}, reading:\n{shown}")
        return Note(id=note_id or -1, body=body)

    def open_entry(self, title: str, description: str, landed) -> Issue:
        entry = record.parse_entry(description)
        what = f"license {entry[0].license_id} for {entry[0].email}" if entry else "an issue"
        if entry and entry[0].delivery:  # a follow-up entry: what became of the license's delivery
            what = f"that license {entry[0].license_id} for {entry[0].email} was {entry[0].delivery}"
        self._say(f"would record {what} in a new confidential record entry issue, signed and chained")
        now = datetime.now(timezone.utc)
        return Issue(iid=-1, title=title, description=description, state="closed", labels=(), author_username="",
                     author_id=0, confidential=True, web_url="", created_at=now, updated_at=now)

    def home_issue(self, *, create: tuple[str, str, str] | None = None) -> int | None:
        iid = self._tracker.home_issue()
        if iid is None and create and not self._home_opened:
            self._say("would open the bot's home issue (where its run lock lives)")
            self._home_opened = True
        return -1 if iid is None and self._home_opened else iid

    def awards(self, iid: int):
        return [] if iid == -1 else self._tracker.awards(iid)  # -1: the home issue it would have opened

    def comments(self, iid: int) -> list[Note]:
        return [] if iid == -1 else self._tracker.comments(iid)

    def unaward(self, iid: int, award_id: int) -> bool:
        self._say(f"would remove reaction {award_id} on issue #{iid}")
        return True

    def delete_note(self, iid: int, note_id: int) -> None:
        self._say(f"would delete note {note_id} on issue #{iid}")

    def award(self, iid: int, name: str):
        from .tracker import Award

        self._say(f"would react :{name}: on issue #{iid}")
        return Award(id=-1, name=name, user_id=self.me()["id"], username=self.me()["username"],
                     created_at=datetime.now(timezone.utc))

    def save_record_head(self, title: str, text: str) -> None:
        self._say("would write the record's head (the newest entry, signed) into the bot's private anchor snippet")

    def upload(self, filename: str, data: bytes) -> Upload:
        self._uploads += 1
        self._say(f"would upload {filename} ({len(data)} bytes)")
        url = f"/uploads/dry-run-{self._uploads}/{filename}"
        return Upload(url=url, markdown=f"[{filename}]({url})")


class DryRunMailer:
    def __init__(self, say: Callable[[str], None]):
        self._say = say

    def check(self) -> None:
        pass  # a dry run connects to nothing

    def send(self, message: EmailMessage) -> None:
        attachments = ", ".join(a.get_filename() or "?" for a in message.iter_attachments())
        self._say(f"would email {attachments or 'no attachment'} to {message['To']}, from {message['From']}, "
                  f"subject {message['Subject']!r}, Message-ID {message['Message-ID']}")


class DryRunNotifier:
    def __init__(self, say: Callable[[str], None]):
        self._say = say

    def post(self, text: str) -> None:
        self._say(f"would post to Slack: {text}")
