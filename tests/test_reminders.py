"""Reminders before a trial ends (issue 21): once per license, on its [Success] issue and in Slack, however runs
crash or overlap; never for an expired, undelivered or unverifiable license; no call at all when off.

End to end: the sandbox over real HTTP, the bot as a real process, its clock moved ahead by
tests/clock_hook/sitecustomize.py (and stopped there at an exact GitLab call), Slack a real HTTP listener.
GitLab facts relied on: a second identical reaction by the same user is refused ("has already been taken",
`lib/api/award_emoji.rb`, `AwardEmoji` uniqueness validation, as bot/gitlab/awards.py's `award` cites); only the
bot's own user can add or remove its reactions (`lib/api/award_emoji.rb`, `award_emoji` owned by the user);
a note's author is who posted it and no API call changes it (`lib/api/notes.rb`)."""

from __future__ import annotations

import json
import threading
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from bot import reminders

from .e2e import api_calls, client, request_text

HOOK = Path(__file__).resolve().parent / "clock_hook"
DUE = 9  # days ahead: a 10-day license made today is one day from its end


class SlackCapture:
    """A Slack incoming webhook on loopback: keeps every message posted to it."""

    def __init__(self):
        self.posts: list[dict] = []
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the stdlib's name
                capture.posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def slack():
    capture = SlackCapture()
    yield capture
    capture.server.shutdown()


def configure(bot, slack=None, enabled=True, days_before=2):
    config = yaml.safe_load(bot.config_path.read_text())
    config["reminders"] = {"enabled": enabled, "days_before": days_before}
    config["slack"]["enabled"] = slack is not None
    bot.config_path.write_text(yaml.safe_dump(config))


def env(bot, slack=None, shift=DUE, kill_at=None):
    e = {**bot.env(), "PYTHONPATH": f"{HOOK}:{bot.env()['PYTHONPATH']}", "LB_TEST_SHIFT_DAYS": str(shift)}
    if slack is not None:
        e["SLACK_WEBHOOK_URL"] = slack.url
    if kill_at is not None:
        e.update(LB_TEST_KILL_AT=str(kill_at), LB_TEST_GITLAB_URL=bot.url)
    return e


def run(bot, **kw):
    import subprocess

    return subprocess.run(bot.command(), capture_output=True, text=True, env=env(bot, **kw), timeout=120)


def start(bot, **kw):
    import subprocess

    return subprocess.Popen(bot.command(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env(bot, **kw))


def issue_licenses(bot, sandbox, n):
    """n licenses made today (reminders off), their request issues."""
    issues = [client(sandbox.url).issues.create({"title": f"Emergency {i}", "description": request_text(i)})
              for i in range(1, n + 1)]
    assert bot.run().returncode == 0
    return [client(sandbox.url, "bot-token").issues.get(i.iid) for i in issues]


def reminder_notes(url, iid):
    issue = client(url, "bot-token").issues.get(iid)
    return [n for n in issue.notes.list(get_all=True) if "license-bot:reminder" in n.body]


def test_due_from_days_before_until_the_day_before_expiry_never_after():
    """Finding: a reminder for a license that already expired, or one missed because no run fell on the day."""
    entries = [SimpleNamespace(entry=SimpleNamespace(expires_on="2026-12-10", seq=1, license_id="a" * 16), where=7)]
    assert reminders.due(entries, date(2026, 12, 7), 2) == []
    assert reminders.due(entries, date(2026, 12, 8), 2) == [(7, "a" * 16)]
    assert reminders.due(entries, date(2026, 12, 9), 2) == [(7, "a" * 16)]  # a missed run is caught up
    assert reminders.due(entries, date(2026, 12, 10), 2) == []  # expired: too late to help, never said
    unsigned = [SimpleNamespace(entry=SimpleNamespace(expires_on="2026-12-10", seq=0, license_id="b" * 16), where=3)]
    assert reminders.due(unsigned, date(2026, 12, 9), 2) == []  # an old entry not yet migrated: no entry issue


def _entry_text(expires_on: str, seq=1) -> str:
    from bot import record

    entry = record.Entry("a" * 16, "0" * 64, 7, "https://gitlab.example.com/x/-/issues/7", "jane@example.com", 5,
                         512345, None, "2026-11-30", expires_on, "x.gitlab-license", seq=seq)
    return record.entry_note(entry, "-----BEGIN TEST LICENSE-----\nAAAA\n-----END TEST LICENSE-----")


def test_the_one_read_looks_further_only_when_an_entry_may_be_due():
    """Finding: the idle check must never be the reason a due license goes unreminded, nor trust what it reads:
    it names an entry inside its window; the home issue, other text, unchained entries, entries outside their
    window and entries nobody can read (damage, which reminds no one) cost nothing more."""
    today = date(2026, 12, 8)
    assert reminders.candidates([(7, _entry_text("2026-12-10"))], today, 2) == [7]
    assert reminders.candidates([(7, _entry_text("2026-12-11")), (8, _entry_text("2026-12-08"))], today, 2) == []
    assert reminders.candidates([(7, _entry_text("2026-12-10", seq=0)), (1, "License Bot's home issue."), (2, None)],
                                today, 2) == []
    assert reminders.candidates([(7, _entry_text("2026-12-10").replace('"seq":1', '"seq":"1"'))], today, 2) == []
    # A license can run at most MAX_DURATION_DAYS: entries opened before that (and a day for clocks) never are due.
    assert reminders.window_start(today, 30) == date(2026, 11, 7)


def test_two_overlapping_runs_post_one_note_and_one_slack_message_per_license(bot, sandbox, slack):
    """Finding: two scheduled runs at once each reminding the same requester (two notes, two Slack posts)."""
    issues = issue_licenses(bot, sandbox, 3)
    configure(bot, slack)
    first, second = start(bot, slack=slack), start(bot, slack=slack)
    a, b = first.communicate(timeout=120), second.communicate(timeout=120)
    assert first.returncode in (0, 2) and second.returncode in (0, 2), (a, b)
    assert run(bot, slack=slack).returncode == 0  # and a later run adds nothing
    for issue in issues:
        notes = reminder_notes(sandbox.url, issue.iid)
        assert len(notes) == 1, (a, b, [(n.id, n.created_at) for n in notes])
        (note,) = notes
        assert note.author["username"] == "license-bot" and note.body.startswith(f"@{issue.author['username']} ")
        n = issues.index(issue) + 1
        assert f"admin{n}@customer{n}.example.com" in note.body and str(512000 + n) in note.body
        assert "renewal" in note.body
    assert len(slack.posts) == 3
    ids = sorted(p["text"].split("license ")[1][:16] for p in slack.posts)
    assert len(set(ids)) == 3


def test_a_run_killed_at_each_gitlab_call_leaves_one_note_and_one_slack_message_per_license(bot, sandbox, slack):
    """Finding: a run killed between its claim and its note leaving no reminder (claimed, never posted) or a
    rerun posting a second one. Each run is SIGKILLed just before its k-th GitLab call, for every k."""
    issues = issue_licenses(bot, sandbox, 4)
    configure(bot, slack)
    before = api_calls(sandbox.url)
    assert run(bot, slack=slack, shift=0).returncode == 0  # nothing due yet: how long a reminder run is, below
    idle = api_calls(sandbox.url) - before
    kills = 0
    for k in range(1, idle + 4 * 5 + 2):
        if run(bot, slack=slack, kill_at=k).returncode == -9:
            kills += 1
    assert run(bot, slack=slack).returncode == 0
    assert kills >= 10
    for issue in issues:
        assert len(reminder_notes(sandbox.url, issue.iid)) == 1, issue.iid
    assert len(slack.posts) == 4 and len({p["text"] for p in slack.posts}) == 4


def test_none_for_an_expired_or_undelivered_license_or_while_an_entry_is_tampered(bot, sandbox, slack):
    """Finding: a reminder for a trial already over, for a license the customer never received, or one read
    from a record entry someone edited (any Reporter may edit an issue's description: the entry's signature
    no longer verifies, and nothing read from it is said to anyone)."""
    sandbox._inbox.refuse["admin2@customer2.example.com"] = "550 no such user"
    issues = issue_licenses(bot, sandbox, 2)
    configure(bot, slack)
    assert run(bot, slack=slack, shift=10).returncode == 0  # the day it expires: too late
    assert [reminder_notes(sandbox.url, i.iid) for i in issues] == [[], []] and slack.posts == []
    entry = next(i for i in client(sandbox.url, "maya-token").issues.list(get_all=True, state="all")
                 if "record: license" in i.title and "admin1@customer1" in i.description)
    original = entry.description
    entry.description = original.replace("admin1@customer1", "admin9@customer1")
    entry.save()
    # An idle run (a run with work restores an edited entry first, from the request's status note, and then
    # reminds from the restored, verified entry): the undelivered request is closed by a person, so none is open.
    undelivered = client(sandbox.url).issues.get(issues[1].iid)
    undelivered.state_event = "close"
    undelivered.save()
    assert run(bot, slack=slack).returncode == 0  # the record is damaged: nothing read from it is said
    assert [reminder_notes(sandbox.url, i.iid) for i in issues] == [[], []] and slack.posts == []
    entry.description = original
    entry.save()
    assert run(bot, slack=slack).returncode == 0
    assert len(reminder_notes(sandbox.url, issues[0].iid)) == 1
    assert reminder_notes(sandbox.url, issues[1].iid) == []  # never delivered: no reminder
    assert len(slack.posts) == 1


def test_reminders_off_cost_no_call_and_on_one_read_when_none_is_due(bot, sandbox):
    """Finding: reminders making every idle run pay for them: off, not one call more; on, three reads or more (the
    bot's user, the whole record at a call per 100 licenses, the anchor) while no reminder was due. Now one: the
    issues the bot's own user opened since a license made then could still run (`scope=created_by_me`, the
    token's own user, so no GET /user; `created_after`, on or after: `lib/api/issues.rb`, `issues_stats_params`;
    `IssuableFinder#by_scope` in `app/finders/issuable_finder.rb`; `CreatedAtFilterable` in
    `app/models/concerns/created_at_filterable.rb`; the twin is held to them in tests/test_sandbox_twin.py)."""
    issue_licenses(bot, sandbox, 2)
    configure(bot, enabled=False)
    before = api_calls(sandbox.url)
    assert run(bot).returncode == 0
    off = api_calls(sandbox.url) - before
    assert off == 2  # the idle run of before reminders: the project, the open issues (benchmarks/bench_run.py)
    configure(bot, days_before=1)
    for shift in (DUE - 1, 45):  # due tomorrow, not today; long expired (opened before the listing's window)
        before = api_calls(sandbox.url)
        assert run(bot, shift=shift).returncode == 0
        log = _requests(sandbox.url, before)
        assert len(log) == off + 1, log
        (listing,) = [path for method, path, _ in log if "scope=created_by_me" in path]
        assert "created_after=" in listing and "author_id" not in listing
        assert not any(path.endswith("/api/v4/user") or "snippets" in path for _, path, _ in log)
    assert [reminder_notes(sandbox.url, iid) for iid in (1, 2)] == [[], []]


def test_a_due_license_is_reminded_after_the_one_read_and_the_verified_record(bot, sandbox):
    """The one read only decides whether to look further: a license due today is reminded from the verified
    record (the bot's user, its entries and their signatures, the anchor), never from what the read returned;
    once reminded, an idle run inside its window costs two reads, not the record."""
    (issue,) = issue_licenses(bot, sandbox, 1)
    configure(bot)
    before = api_calls(sandbox.url)
    assert run(bot).returncode == 0
    log = _requests(sandbox.url, before)
    paths = [path for _, path, _ in log]
    assert any("scope=created_by_me" in p for p in paths) and any(p.endswith("/api/v4/user") for p in paths)
    assert any("snippets" in p for p in paths)  # the anchor: a deleted newest entry would be damage
    assert len(reminder_notes(sandbox.url, issue.iid)) == 1
    # Reminded, still inside its window: the next idle run asks which the bot marked done (its own :bell:) and
    # stops there (`my_reaction_emoji`: the token user's own reactions, `Awardable.awarded` in
    # app/models/concerns/awardable.rb; an issues_stats_params filter in lib/api/issues.rb).
    before = api_calls(sandbox.url)
    assert run(bot).returncode == 0
    log = _requests(sandbox.url, before)
    assert len(log) == 2 + 2 and "my_reaction_emoji=bell" in log[-1][1], log
    assert len(reminder_notes(sandbox.url, issue.iid)) == 1


def _requests(url: str, since: int) -> list:
    import urllib.request

    with urllib.request.urlopen(f"{url}/sandbox/requests?since={since}", timeout=60) as response:
        return json.load(response)["requests"]


def test_the_one_read_lists_only_the_bots_issues_opened_since_and_those_it_marked_done(bot, sandbox):
    """The adapter's half of the one read, through python-gitlab over HTTP: the filters reach GitLab as query
    parameters (a filter dropped on the way would list every issue, or none), without asking who the bot is."""
    from datetime import datetime, timedelta, timezone

    from bot import config as config_mod
    from bot.gitlab.tracker import GitLabTracker

    issue_licenses(bot, sandbox, 1)
    client(sandbox.url).issues.create({"title": "alice's"})
    tracker = GitLabTracker(config_mod.load(bot.config_path, environ={}), "bot-token")
    now = datetime.now(timezone.utc)
    before = api_calls(sandbox.url)
    recent = tracker.recent_bot_issues(now - timedelta(days=1))
    assert recent and {i.author_username for i in recent} == {"license-bot"}
    assert tracker.recent_bot_issues(now + timedelta(minutes=1)) == []
    assert tracker.recent_bot_issues(now - timedelta(days=1), reacted=reminders.DONE_EMOJI) == []
    assert not any(path.endswith("/api/v4/user") for _, path, _ in _requests(sandbox.url, before))
    (entry,) = [i for i in recent if "license-bot:record-entry" in i.description]
    tracker.award(entry.iid, reminders.DONE_EMOJI)
    client(sandbox.url).issues.get(entry.iid).awardemojis.create({"name": "alarm_clock"})  # alice's, not the bot's
    assert [i.iid for i in tracker.recent_bot_issues(now - timedelta(days=1), reacted=reminders.DONE_EMOJI)] \
        == [entry.iid]
    assert tracker.recent_bot_issues(now - timedelta(days=1), reacted=reminders.CLAIM_EMOJI) == []
