"""The run lock kept in GitLab: the bot's own :lock: reaction on its home issue (issue 16, finding 5).

GitLab facts (gitlabhq): a user's second identical reaction on an awardable is refused (`AwardEmoji` validates
`name` unique per user and awardable; lib/api/award_emoji.rb answers 404), only the reaction's own user or an
admin may delete it (`unauthorized! unless award.user == current_user || current_user.admin?`), and
`created_at` is GitLab's. So nobody below the bot can remove, forge or back-date the lock; a label lock could
be deleted, written with any holder and date, or shadowed by a group label by any Reporter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

from bot import runner
from bot.runlock import LOCK, RunLock, is_stale

from .fakes import NOW, FakeTracker
from .test_processor import filled
from .test_runner import make

STALE = timedelta(minutes=15)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def lock(store, tmp_path, now=NOW) -> RunLock:
    return RunLock(store, now, STALE, where="test", hint_dir=str(tmp_path))


def other_runs_lock(store: FakeTracker, *, created=None):
    """Another run of the bot holds the lock: the bot's reaction on its home issue."""
    iid = store.home_issue(create=("home", "d", "robot"))
    award = store.react(iid, LOCK, store.bot_user, store.bot_id)
    if created is not None:
        store.reactions[iid] = [a if a.id != award.id else type(a)(a.id, a.name, a.user_id, a.username, created)
                                for a in store.reactions[iid]]
    store.writes.clear()
    return iid, award


def test_staleness():
    alive, dead = (lambda pid: True), (lambda pid: False)
    young, old = NOW - timedelta(minutes=1), NOW - timedelta(minutes=16)
    assert not is_stale(young, 1, NOW, STALE, alive)
    assert is_stale(young, 1, NOW, STALE, dead)          # its process on this host is gone
    assert not is_stale(young, None, NOW, STALE, dead)   # another host's: can't tell, wait
    assert is_stale(old, None, NOW, STALE, alive)        # too old


def test_one_holder_at_a_time_and_release(tmp_path):
    store = FakeTracker()
    first, second = lock(store, tmp_path), lock(store, tmp_path)
    assert first.acquire() and not second.acquire()
    assert second.other.pid == os.getpid()  # this process holds it (the hint), and is alive
    first.release()
    assert second.acquire()


def test_a_dead_local_runs_lock_is_taken_over_at_once(tmp_path):
    store = FakeTracker()
    iid, award = other_runs_lock(store)
    probe = lock(store, tmp_path)
    (tmp_path / f"{probe._prefix}-award-{award.id}.json").write_text(json.dumps({"pid": _dead_pid()}))
    assert probe.acquire() and probe.held.id != award.id
    assert [a.id for a in store.reactions[iid] if a.name == "lock"] == [probe.held.id]


def test_a_run_locked_out_writes_nothing_and_exits_2(config, private_key):
    tracker = FakeTracker()
    other_runs_lock(tracker)
    ctx = make(config, private_key, tracker=tracker)
    tracker.file(filled())
    lines = []
    summary = runner.run(ctx, say=lines.append)
    assert summary.exit_code == 2 and summary.locked_out and summary.succeeded == 0
    assert lines[0].startswith("another run holds the run lock (") and "since" in lines[0]
    assert tracker.writes == []  # someone else's lock is left alone


def test_nobody_else_makes_or_breaks_the_lock(tmp_path):
    """A person's own :lock: reaction is not the bot's: it neither holds the lock nor stops the bot."""
    store = FakeTracker()
    iid = store.home_issue(create=("home", "d", "robot"))
    store.react(iid, LOCK, "carol", 11)
    assert lock(store, tmp_path).acquire()


def test_a_stale_takeover_never_removes_the_lock_a_faster_run_just_took(tmp_path):
    """Both runs judge the same dead reaction stale; the takeover removes it by id, so the slower run's removal
    finds nothing, and its reaction is refused: one holder."""
    store = FakeTracker()
    iid, stale = other_runs_lock(store, created=NOW - timedelta(hours=1))
    faster, slower = lock(store, tmp_path), lock(store, tmp_path)
    real_unaward = store.unaward

    def unaward(i, award_id):  # the slower run is about to remove the stale reaction: the faster run wins first
        store.unaward = real_unaward
        assert faster.acquire()
        return real_unaward(i, award_id)
    store.unaward = unaward
    assert not slower.acquire()
    assert [a.id for a in store.reactions[iid] if a.name == "lock"] == [faster.held.id] and stale.id != faster.held.id


def test_a_run_killed_right_after_gitlab_made_its_reaction_is_known_dead_at_once(tmp_path):
    """A run notes its process before it reacts: killed before it could note which reaction it took, it is
    still known as the process that was about to react when the reaction was made."""
    store = FakeTracker()
    iid, award = other_runs_lock(store)
    probe = lock(store, tmp_path)
    dead = _dead_pid()
    (tmp_path / f"{probe._prefix}-pending-{dead}.json").write_text(json.dumps(
        {"pid": dead, "at": award.created_at.isoformat()}))
    assert probe.acquire() and [a.id for a in store.reactions[iid] if a.name == "lock"] == [probe.held.id]


def test_an_old_dead_process_note_does_not_make_a_fresh_lock_look_abandoned(tmp_path):
    store = FakeTracker()
    iid, award = other_runs_lock(store)  # another host's run, say: no note of its own here
    probe = lock(store, tmp_path)
    (tmp_path / f"{probe._prefix}-pending-1.json").write_text(json.dumps(
        {"pid": _dead_pid(), "at": (award.created_at - timedelta(hours=2)).isoformat()}))
    assert not probe.acquire() and probe.other.pid is None
