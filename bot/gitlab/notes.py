"""Notes (comments) on issues: the bot's status note, its other comments, and GitLab's system notes."""

from __future__ import annotations

import gitlab.exceptions
import requests

from .. import status as status_mod
from ..tracker import Note
from .connection import Connection
from .members import Members


class Notes:
    def __init__(self, connection: Connection, members: Members):
        self.connection = connection
        self.members = members

    def all_notes(self, iid: int) -> list[Note]:
        """Every note on an issue, oldest first, GitLab's system notes included (`system`)."""
        conn = self.connection
        issue = conn.project.issues.get(iid, lazy=True)
        notes = conn.call(lambda: [n.attributes for n in issue.notes.list(
            iterator=True, sort="asc", order_by="created_at", per_page=100, max_retries=conn.max_retries)],
            f"read the notes of issue #{iid}")
        return [Note.from_api(d) for d in notes]

    def comments(self, iid: int) -> list[Note]:
        """Every comment on an issue, oldest first (GitLab's own system notes left out)."""
        return [n for n in self.all_notes(iid) if not n.system]

    def status_note(self, iid: int) -> Note | None:
        """The bot's status note: the oldest note with the marker written by the bot's own user."""
        me = self.members.me()["id"]
        for note in self.comments(iid):
            if note.author_id == me and status_mod.is_status_note(note.body):
                return note
        return None

    def note_body(self, iid: int, note_id: int) -> str | None:
        """One note's text as it is now; None when it is gone."""
        conn = self.connection
        issue = conn.project.issues.get(iid, lazy=True)
        return conn.call(lambda: issue.notes.get(note_id, max_retries=conn.max_retries).body or "",
                         f"read a note of issue #{iid}", absent={404: None})

    def save_status_note(self, iid: int, body: str, note_id: int | None = None) -> Note:
        conn = self.connection
        if note_id is not None:
            issue = conn.project.issues.get(iid, lazy=True)
            conn.call(lambda: issue.notes.update(note_id, {"body": body}, max_retries=conn.max_retries),
                      f"edit the status note of issue #{iid}")
            return Note(id=note_id, body=body)

        def landed(notes: list[Note]) -> Note | None:  # the POST may have landed before its error
            me = self.members.me()["id"]
            return next((n for n in notes if n.author_id == me and status_mod.is_status_note(n.body)), None)
        return self.add_note(iid, body, landed, f"write the status note of issue #{iid}")

    def add_note(self, iid: int, body: str, landed, doing: str = "") -> Note:
        """Post a comment once: after a failed POST that may have landed, `landed(notes)` looks for it
        among the issue's notes before posting again (python-gitlab would retry POSTs blindly)."""
        conn = self.connection
        issue = conn.project.issues.get(iid, lazy=True)
        for attempt in range(conn.max_retries + 1):
            try:
                created = issue.notes.create({"body": body}, retry_transient_errors=False)
                me = self.members.me()
                return Note(id=int(created.id), body=body, author_username=me["username"], author_id=me["id"])
            except (gitlab.exceptions.GitlabError, requests.RequestException) as exc:
                error = conn.translate(exc, doing or f"comment on issue #{iid}")
                if not error.transient or attempt == conn.max_retries:
                    raise error from None
            existing = landed(self.comments(iid))
            if existing is not None:
                return existing
        raise AssertionError("unreachable")  # pragma: no cover

    def delete_note(self, iid: int, note_id: int) -> None:
        conn = self.connection
        issue = conn.project.issues.get(iid, lazy=True)
        conn.call(lambda: issue.notes.delete(note_id, max_retries=conn.max_retries), f"delete a note of issue #{iid}",
                  absent={404: None})
