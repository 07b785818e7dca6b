"""The run lock kept in GitLab: atomic by label creation, taken over from dead runs."""

from __future__ import annotations

import json
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


# Issue 16, finding 5: a lock label anyone below the bot can write must never stop the bot or crash it.

def test_a_lock_without_a_time_zone_or_dated_in_the_future_is_taken_over_with_a_message_not_a_crash():
    for since in ("2026-11-27T03:00:00", "2099-01-01T00:00:00+00:00", "yesterday"):
        store = FakeTracker()
        store.create_label(LABEL, "#808080", json.dumps({"host": "ci-runner-7", "pid": 4242, "since": since}))
        lock = RunLock(store, NOW, STALE)
        assert lock.acquire(), since
        assert "not written by a run" in lock.warning
        assert Holder.parse(store.labels[LABEL]["description"]).pid == os.getpid()


def test_a_group_label_shadowing_the_lock_lets_the_run_go_on_and_says_so():
    """GitLab: a group label is available to the project (`available_labels_for`): a project label of that
    name answers 409 and GET finds the group label (`is_project_label: false`, lib/api/entities/label_basic),
    but the project's DELETE cannot remove it. Before issue 16 every run exited 2 forever."""
    store = FakeTracker()
    store.labels[LABEL] = {"name": LABEL, "description": "made by a Reporter of the group",
                           "is_project_label": False}
    lock = RunLock(store, NOW, STALE)
    assert lock.acquire() and not lock.held and "group label" in lock.warning
    lock.release()
    assert LABEL in store.labels


def test_release_leaves_alone_a_lock_another_run_took_after_ours_was_deleted():
    store = FakeTracker()
    ours = RunLock(store, NOW, STALE)
    assert ours.acquire()
    store.labels.pop(LABEL)  # a Reporter deletes it mid-run
    store.create_label(LABEL, "#808080", Holder("ci-runner-7", 4242, NOW).describe())  # another run takes it
    ours.release()
    assert Holder.parse(store.labels[LABEL]["description"]).host == "ci-runner-7"


def test_a_stale_takeover_does_not_delete_the_lock_a_faster_run_just_took():
    store = FakeTracker()
    store.create_label(LABEL, "#808080", Holder("ci-runner-7", 4242, NOW - timedelta(hours=1)).describe())
    faster = RunLock(store, NOW, STALE)
    real_get = store.get_label
    calls = []

    def get_label(name):  # between our read of the stale lock and our delete, a faster run takes it over
        calls.append(name)
        if len(calls) == 2:
            store.labels.pop(LABEL)
            assert faster.acquire()
        return real_get(name)
    store.get_label = get_label
    slower = RunLock(store, NOW, STALE)
    assert not slower.acquire()
    store.get_label = real_get
    assert faster.held and Holder.parse(store.labels[LABEL]["description"]) == faster.me
