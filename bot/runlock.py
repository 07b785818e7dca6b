"""One run at a time against a tracker, across machines: a lock kept in GitLab itself.

Creating a project label is atomic (GitLab answers 409 when it exists), so the run that creates the
lock label holds it; its description says who and since when. A lock left by a run that died is
taken over: at once when its holder was a process on this host that no longer exists, otherwise
once it is older than `run.lock_stale_minutes`. CI's resource_group serialises pipelines too; this
also covers a run started by hand while the schedule runs.

No guarantee rests on this lock: any Reporter can delete, edit or shadow a label (a group label of the
same name). It only keeps runs from doing the same work twice. What keeps a request to one license and
one email when runs overlap is the per-issue claim (`evidence`, the bot's own emoji reaction). So a lock
that cannot be read, is dated in the future, or is shadowed by a group label never stops the bot: the run
says so and goes on under the claims.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

LABEL = "license-bot-run-lock"


class LockStore(Protocol):
    def create_label(self, name: str, color: str, description: str) -> bool: ...
    def get_label(self, name: str) -> dict | None: ...
    def delete_label(self, name: str) -> None: ...


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    since: datetime

    def describe(self) -> str:
        return json.dumps({"host": self.host, "pid": self.pid, "since": self.since.isoformat()})

    @classmethod
    def parse(cls, text: str | None) -> Holder | None:
        """The holder a lock label describes; None for anything else (not JSON, a field missing, a time
        without a time zone)."""
        try:
            data = json.loads(text or "")
            since = datetime.fromisoformat(str(data["since"]))
            if since.tzinfo is None:
                return None
            return cls(str(data["host"]), int(data["pid"]), since)
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


def is_stale(holder: Holder | None, now: datetime, stale_after: timedelta, host: str, pid_alive) -> bool:
    """Whether a lock may be taken over. Pure: the host and the liveness check are passed in."""
    if holder is None:
        return True  # unreadable: nobody can be shown to hold it
    if holder.since > now + timedelta(minutes=5):
        return True  # dated in the future: no run wrote that (clocks differ by seconds, not minutes)
    if holder.host == host and not pid_alive(holder.pid):
        return True
    return now - holder.since > stale_after


def pid_alive(pid: int) -> bool:
    """Whether a process of this host with that id exists (a run lock's or a claim's holder)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    def __init__(self, store: LockStore, now: datetime, stale_after: timedelta):
        self.store, self.now, self.stale_after = store, now, stale_after
        self.me = Holder(socket.gethostname(), os.getpid(), now)
        self.held = False
        self.other: Holder | None = None  # who holds it, when acquire() fails
        self.warning: str | None = None   # why the run goes on without the lock

    def acquire(self) -> bool:
        """True when this run may go on: it holds the lock, or the lock cannot work and `warning` says why."""
        for _ in range(3):
            if self.store.create_label(LABEL, "#808080", self.me.describe()):
                self.held = True
                return self._still_mine()
            label = self.store.get_label(LABEL)
            if label is None:
                continue  # released in between: try again
            if label.get("is_project_label") is False:  # a group label: the project can neither make nor delete it
                self.warning = (f"a group label named {LABEL} shadows the run lock, so runs are not kept apart; "
                                "each request's claim still keeps it to one license and one email. Rename or "
                                "delete that group label")
                return True
            self.other = Holder.parse(label.get("description"))
            if not is_stale(self.other, self.now, self.stale_after, self.me.host, pid_alive):
                return False
            if self.other is None or self.other.since > self.now + timedelta(minutes=5):
                self.warning = (f"the run lock label {LABEL} held no readable holder and time (or one in the future): "
                                "it was not written by a run, so this run took it over")
            again = self.store.get_label(LABEL)  # delete only the lock judged stale, not one a faster run just took
            if again is not None and again.get("description") == label.get("description"):
                self.store.delete_label(LABEL)
        return False

    def _still_mine(self) -> bool:
        """After taking a lock, check that no other run's takeover replaced it in between."""
        label = self.store.get_label(LABEL)
        if label is not None and label.get("description") != self.me.describe():
            self.held = False
            self.other = Holder.parse(label.get("description"))
            return False
        return True

    def release(self) -> None:
        """Delete the lock if it is still this run's: someone may have deleted it and another run taken it."""
        if self.held:
            label = self.store.get_label(LABEL)
            if label is not None and label.get("description") == self.me.describe():
                self.store.delete_label(LABEL)
            self.held = False
