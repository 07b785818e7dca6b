"""One run at a time against a tracker, across machines: a lock kept in GitLab itself.

Creating a project label is atomic (GitLab answers 409 when it exists), so the run that creates the
lock label holds it; its description says who and since when. A lock left by a run that died is
taken over: at once when its holder was a process on this host that no longer exists, otherwise
once it is older than `run.lock_stale_minutes`. CI's resource_group serialises pipelines too; this
also covers a run started by hand while the schedule runs.
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
        try:
            data = json.loads(text or "")
            return cls(str(data["host"]), int(data["pid"]), datetime.fromisoformat(data["since"]))
        except (ValueError, KeyError, TypeError):
            return None


def is_stale(holder: Holder | None, now: datetime, stale_after: timedelta, host: str, pid_alive) -> bool:
    """Whether a lock may be taken over. Pure: the host and the liveness check are passed in."""
    if holder is None:
        return True  # unreadable: nobody can be shown to hold it
    if holder.host == host and not pid_alive(holder.pid):
        return True
    return now - holder.since > stale_after


def _pid_alive(pid: int) -> bool:
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

    def acquire(self) -> bool:
        for _ in range(3):
            if self.store.create_label(LABEL, "#808080", self.me.describe()):
                self.held = True
                return True
            label = self.store.get_label(LABEL)
            if label is None:
                continue  # released in between: try again
            self.other = Holder.parse(label.get("description"))
            if not is_stale(self.other, self.now, self.stale_after, self.me.host, _pid_alive):
                return False
            self.store.delete_label(LABEL)  # a dead run's lock; if two take it over, creation decides
        return False

    def release(self) -> None:
        if self.held:
            self.store.delete_label(LABEL)
            self.held = False
