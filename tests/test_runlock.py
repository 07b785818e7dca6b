"""The run lock kept in GitLab: atomic by label creation, taken over from dead runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import timedelta

from bot import runner
from bot.runlock import LABEL, Holder, RunLock, is_stale

from .fakes import NOW, FakeTracker
from .test_processor import filled
from .test_runner import make

STALE = timedelta(minutes=15)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_staleness():
    here = socket.gethostname()
    alive, dead = (lambda pid: True), (lambda pid: False)
    young, old = Holder(here, 1, NOW - timedelta(minutes=1)), Holder(here, 1, NOW - timedelta(minutes=16))
    assert not is_stale(young, NOW, STALE, here, alive)
    assert is_stale(young, NOW, STALE, here, dead)            # its process on this host is gone
    assert not is_stale(Holder("ci-runner-7", 1, young.since), NOW, STALE, here, dead)  # can't tell: wait
    assert is_stale(Holder("ci-runner-7", 1, old.since), NOW, STALE, here, alive)       # too old
    assert is_stale(None, NOW, STALE, here, alive)             # unreadable


def test_one_holder_at_a_time_and_release():
    store = FakeTracker()
    first, second = RunLock(store, NOW, STALE), RunLock(store, NOW, STALE)
    assert first.acquire() and not second.acquire()
    assert second.other.pid == os.getpid()  # this process holds it, and is alive
    first.release()
    assert LABEL not in store.labels and second.acquire()


def test_a_dead_local_runs_lock_is_taken_over_at_once():
    store = FakeTracker()
    store.create_label(LABEL, "#808080", Holder(socket.gethostname(), _dead_pid(), NOW).describe())
    lock = RunLock(store, NOW, STALE)
    assert lock.acquire() and Holder.parse(store.labels[LABEL]["description"]).pid == os.getpid()


def test_a_run_locked_out_writes_nothing_and_exits_2(config, private_key):
    tracker = FakeTracker()
    tracker.create_label(LABEL, "#808080", Holder("ci-runner-7", 4242, NOW).describe())
    tracker.writes.clear()
    ctx = make(config, private_key, tracker=tracker)
    tracker.file(filled())
    lines = []
    summary = runner.run(ctx, say=lines.append)
    assert summary.exit_code == 2 and summary.locked_out and summary.succeeded == 0
    assert "another run holds the run lock (ci-runner-7 pid 4242" in lines[0]
    assert tracker.writes == [] and tracker.labels[LABEL]  # someone else's lock is left alone
