"""One run at a time against a tracker, across machines: a lock kept in GitLab itself, that nobody below the
bot can remove, forge, back-date or shadow.

The lock is the bot's own :lock: reaction on its home issue: the oldest issue the bot's user opened (the old
record issue, or the first record entry; on a project where the bot opened none yet, it opens a confidential
"License Bot" issue for it, marked with its own :robot: reaction). Nobody else can open an issue as the bot or
an older one, so the home stays the same issue. GitLab creates a user's reaction once per
issue and name (a second is refused), so the run whose reaction GitLab created holds the lock; only the bot's
user (or an admin) can remove it, nobody else can make one as the bot, and GitLab dates it (`created_at`)
(lib/api/award_emoji.rb, app/models/award_emoji.rb). A label lock, as before, could be deleted, written
with any holder or date, or shadowed by a group label of the same name by any Reporter.

A lock left by a run that died is taken over: at once when this host's hint files show its process is gone
(in the temporary directory, where no GitLab user writes: a run notes its process before it reacts, then
which reaction it took), otherwise once the reaction is older than `run.lock_stale_minutes`. A takeover
removes the stale reaction *by its id*, so of two runs taking over, one removes it and the other's removal
finds nothing; then creating the reaction decides. CI's resource_group serialises pipelines too. No
guarantee rests on the lock: it saves work; each request's claim (`evidence`) keeps a request to one license
and one email however runs overlap.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .tracker import Award

LOCK = "lock"  # the reaction's name


class LockStore(Protocol):
    def home_issue(self, *, create: tuple[str, str, str] | None = None) -> int | None: ...
    def me(self) -> dict: ...
    def award(self, iid: int, name: str) -> Award | None: ...
    def awards(self, iid: int) -> list[Award]: ...
    def unaward(self, iid: int, award_id: int) -> bool: ...


@dataclass(frozen=True)
class Holder:
    """Who holds the lock, as far as this run can tell: since when (GitLab's time), and the process when it
    ran on this host."""

    since: datetime
    pid: int | None = None

    def describe(self) -> str:
        who = f"pid {self.pid} on this host, " if self.pid else ""
        return f"{who}since {self.since:%H:%M:%S} UTC"


def is_stale(since: datetime, pid: int | None, now: datetime, stale_after: timedelta, pid_alive) -> bool:
    """Whether a lock may be taken over. Pure: the liveness check is passed in."""
    if pid is not None and not pid_alive(pid):
        return True
    return now - since > stale_after


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
    def __init__(self, store: LockStore, now: datetime, stale_after: timedelta, *, where: str = "",
                 hint_dir: str | None = None):
        self.store, self.now, self.stale_after = store, now, stale_after
        self.held: Award | None = None
        self.other: Holder | None = None  # who holds it, when acquire() fails
        self._iid: int | None = None
        key = hashlib.sha256(f"{where}|{socket.gethostname()}".encode()).hexdigest()[:16]
        self._hints = Path(hint_dir or tempfile.gettempdir())
        self._prefix = f"license-bot-lock-{key}"

    def acquire(self) -> bool:
        from .record import HOME_DESCRIPTION, HOME_EMOJI, HOME_TITLE  # only a run with work pays for these imports

        self._iid = self.store.home_issue(create=(HOME_TITLE, HOME_DESCRIPTION, HOME_EMOJI))
        me = self.store.me()["id"]
        for _ in range(3):
            self._hint("pending", os.getpid())  # first: a process killed right after reacting is still known
            mine = self.store.award(self._iid, LOCK)
            if mine is not None:
                self.held = mine
                self._hint("award", mine.id)
            self._unhint("pending", os.getpid())
            if mine is not None:
                return True
            current = next((a for a in self.store.awards(self._iid) if a.user_id == me and a.name == LOCK), None)
            if current is None:
                continue  # released in between: try again
            pid = self._hint_pid(current)
            self.other = Holder(current.created_at, pid)
            if not is_stale(current.created_at, pid, self.now, self.stale_after, pid_alive):
                return False
            self.store.unaward(self._iid, current.id)  # by id: never the lock a faster run just took
            self._unhint("award", current.id)
        return False

    def release(self) -> None:
        if self.held is not None and self._iid is not None:
            self.store.unaward(self._iid, self.held.id)
            self._unhint("award", self.held.id)
            self.held = None

    # --- the hint: which process on this host took which reaction (a file no GitLab user can write) ---

    def _hint(self, kind: str, key: int) -> None:
        """`award-<id>`: this process took that reaction; `pending-<pid>`: that process is about to react (written
        before, so that a process killed right after GitLab made its reaction is still known)."""
        data = {"pid": os.getpid(), "at": datetime.now(timezone.utc).isoformat()}
        with contextlib.suppress(OSError):  # without a hint, a dead run's lock is taken over once it is stale
            (self._hints / f"{self._prefix}-{kind}-{key}.json").write_text(json.dumps(data))

    def _unhint(self, kind: str, key: int) -> None:
        with contextlib.suppress(OSError):
            (self._hints / f"{self._prefix}-{kind}-{key}.json").unlink()

    def _hint_pid(self, current: Award) -> int | None:
        """The process of this host that holds the current reaction, as far as the hints tell: the one that
        took it, or a process that was about to react when it was made and never said how it went (killed);
        of several, a live one (GitLab's clock and this host's may differ by a minute)."""
        def read(path: Path) -> dict | None:
            try:
                return json.loads(path.read_text())
            except (OSError, ValueError):
                return None
        took = read(self._hints / f"{self._prefix}-award-{current.id}.json")
        if took is not None:
            return int(took.get("pid") or 0) or None
        candidates = []
        for path in self._hints.glob(f"{self._prefix}-pending-*.json"):
            data = read(path)
            try:
                pid, at = int(data["pid"]), datetime.fromisoformat(data["at"])
            except (TypeError, KeyError, ValueError):
                continue
            if pid != os.getpid() and abs(current.created_at - at) <= timedelta(minutes=1):
                candidates.append(pid)  # it was about to react when the reaction was made
            elif pid != os.getpid() and not pid_alive(pid) and self.now - at > self.stale_after:
                path.unlink(missing_ok=True)  # a long-dead process's: tells nothing any more
        return next((pid for pid in candidates if pid_alive(pid)), candidates[0] if candidates else None)
