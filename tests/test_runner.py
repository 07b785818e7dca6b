"""The run loop: summary, exit codes, webhook triggers, and dry runs that show the real writes."""

from __future__ import annotations

import json

from bot import processor, runner, trigger
from bot.dryrun import DryRunMailer, DryRunNotifier, DryRunTracker
from bot.mailer import MailError

from .fakes import NOW, CrashPlan, FakeMailer, FakeNotifier, FakeTracker
from .test_processor import filled


def make(config, private_key, tracker=None, mailer=None, notifier=None):
    crash = CrashPlan()
    tracker = tracker or FakeTracker(crash=crash)
    return runner.Context(config=config, tracker=tracker, mailer=mailer or FakeMailer(crash=crash),
                             signer=private_key, now=NOW, notifier=notifier)


def test_summary_counts_each_outcome_and_exit_0(config, private_key):
    ctx = make(config, private_key)
    ctx.tracker.file(filled())
    ctx.tracker.file(filled(ticket="600001", email_="ops@example.org", expired="11/12/2026"))
    lines = []
    summary = runner.run(ctx, say=lines.append)
    assert (summary.found, summary.succeeded, summary.failed, summary.retrying) == (2, 1, 1, 0)
    assert summary.exit_code == 0
    assert summary.line().startswith(
        "found 2, succeeded 1, failed 1, retrying 0, skipped 0, licenses made 1, API calls ")
    assert summary.recorded == [ctx.record.entries()[0].entry.license_id]
    license_id = summary.recorded[0]
    # Finding 20.6: the log names the issue, the outcome, the license id and the field at fault, not the customer.
    # Issue 18: the run says how many it will process, and ends with the failed issues listed.
    assert lines == ["2 requests to process", f"#1 succeeded: license {license_id}", "#2 failed: 1 problem",
                     "    Expiry date of the customer's expired license"]
    assert summary.line().endswith("\nfailed: #2 (each status note says what to do)")
    report = json.loads(summary.to_json())
    assert report["exit_code"] == 0 and report["api_calls"] == summary.api_calls > 0
    assert report["results"] == [
        {"iid": 1, "outcome": "succeeded", "license_id": license_id, "fields": [], "reason": None},
        {"iid": 2, "outcome": "failed", "license_id": None, "fields": ["expired_on"], "reason": None}]


def test_exit_2_when_a_request_waits_for_a_retry(config, private_key):
    ctx = make(config, private_key)
    ctx.mailer.fail = [MailError("timed out", permanent=False)]
    ctx.tracker.file(filled())
    summary = runner.run(ctx, say=lambda _: None)
    assert summary.retrying == 1 and summary.exit_code == 2


def test_exit_1_when_gitlab_refuses_the_token(config, private_key):
    ctx = make(config, private_key)
    ctx.tracker.file(filled())
    ctx.tracker.file(filled(ticket="600001", email_="ops@example.org"))
    ctx.tracker.refuse_token = True
    summary = runner.run(ctx, say=lambda _: None)
    assert summary.exit_code == 1 and "401" in summary.error
    assert ctx.tracker.uploads == []


def test_one_broken_request_does_not_stop_the_others(config, private_key, monkeypatch):
    ctx = make(config, private_key)
    ctx.tracker.file(filled())
    ctx.tracker.file(filled(ticket="600001", email_="ops@example.org"))
    real = processor.process

    def flaky(issue, c):
        if issue.iid == 1:
            raise ValueError("boom")
        return real(issue, c)
    monkeypatch.setattr(processor, "process", flaky)
    summary = runner.run(ctx, say=lambda _: None)
    assert (summary.retrying, summary.succeeded) == (1, 1) and summary.exit_code == 2
    assert "internal error (ValueError at test_runner.py" in summary.results[0].detail
    assert "internal error (ValueError" in ctx.tracker.status_note(1).body  # said on the issue, and counted


def test_an_error_that_repeats_ends_after_max_attempts_with_a_message(config, private_key, monkeypatch):
    ctx = make(config, private_key)
    ctx.tracker.file(filled())
    monkeypatch.setattr(processor, "process", lambda issue, c: 1 / 0)
    outcomes = [runner.run(ctx, say=lambda _: None).results[0].outcome for _ in range(5)]
    assert outcomes == ["retrying"] * 4 + ["failed"]
    issue, body = ctx.tracker.issues[1], ctx.tracker.status_note(1).body
    assert "license-request::failed" in issue.labels and "gives up" in body and "Traceback" not in body


def test_an_idle_run_costs_the_listing_only(config, private_key):
    ctx = make(config, private_key)
    summary = runner.run(ctx, say=lambda _: None)
    assert summary.found == 0 and summary.api_calls <= 2 and summary.exit_code == 0


# --- webhook triggers ---------------------------------------------------------------------------------

def _event(iid=1, user="alice", kind="issue", project="support/internal-requests"):
    return json.dumps({"object_kind": kind, "user": {"username": user},
                       "project": {"id": 7, "path_with_namespace": project},
                       "object_attributes": {"iid": iid, "action": "update"}})


def test_trigger_decisions():
    assert trigger.decide(_event(3), "support/internal-requests", "license-bot").iid == 3
    assert trigger.decide(_event(3), "7", "license-bot").iid == 3
    for text, why in [(_event(user="license-bot"), "caused by the bot itself"),
                      (_event(kind="merge_request"), "not an issue event"),
                      (_event(project="other/project"), "not on support/internal-requests"),
                      ("not json", "not JSON"), (json.dumps([1]), "not an issue event")]:
        decision = trigger.decide(text, "support/internal-requests", "license-bot")
        assert decision.iid is None and why in decision.reason


def test_a_confidential_issue_event_is_handled_like_an_issue_event():
    """GitLab's "Confidential issues events" payload: object_kind issue, event_type confidential_issue."""
    payload = json.loads(_event(5))
    payload.update(event_type="confidential_issue", object_attributes={"iid": 5, "action": "open",
                                                                       "confidential": True})
    assert trigger.decide(json.dumps(payload), "support/internal-requests", "license-bot").iid == 5


def test_a_racing_label_creation_that_answers_400_means_the_label_exists(config):
    """`setup` creates the labels (the run lock is no longer one): a 400 "has already been taken", which two
    creations racing get, means the label exists, as a 409 does (GitLabTracker.create_label)."""
    import responses

    from bot.gitlab.tracker import GitLabTracker

    tracker = GitLabTracker(config, "t")
    with responses.RequestsMock() as mocked:
        mocked.post("https://gitlab.example.com/api/v4/projects/support%2Finternal-requests/labels", status=400,
                    json={"message": {"title": ["has already been taken"]}})
        assert tracker.create_label("license-request", "#808080", "x") is False


def test_a_trigger_processes_just_that_issue(config, private_key):
    ctx = make(config, private_key)
    ctx.tracker.file(filled())
    ctx.tracker.file(filled(ticket="600001", email_="ops@example.org"))
    summary = runner.run(ctx, trigger_payload=_event(2), say=lambda _: None)
    assert summary.found == 1 and summary.results[0].iid == 2 and summary.succeeded == 1
    assert ctx.tracker.issues[1].state == "opened"


def test_the_bots_own_event_does_nothing(config, private_key):
    ctx = make(config, private_key)
    ctx.tracker.file(filled())
    summary = runner.run(ctx, trigger_payload=_event(1, user="license-bot"), say=lambda _: None)
    assert summary.found == 0 and summary.exit_code == 0 and ctx.tracker.writes == []


# --- dry runs -----------------------------------------------------------------------------------------

def _world_pair(config, private_key):
    """Two identical trackers: one for the dry run, one for the real run."""
    out = []
    for _ in range(2):
        crash = CrashPlan()
        t = FakeTracker(crash=crash)
        t.file(filled())
        t.file(filled(ticket="600001", email_="ops@example.org", users="x"))
        out.append((t, FakeMailer(crash=crash), FakeNotifier()))
    return out


def test_a_dry_run_prints_exactly_the_writes_a_real_run_makes_and_makes_none(config, private_key):
    from dataclasses import replace
    config = replace(config, slack=replace(config.slack, enabled=True))
    (dry_t, _, _), (real_t, real_m, real_n) = _world_pair(config, private_key)
    printed: list[str] = []
    dry_ctx = make(config, private_key, tracker=DryRunTracker(dry_t, printed.append),
                   mailer=DryRunMailer(printed.append), notifier=DryRunNotifier(printed.append))
    runner.run(dry_ctx, say=lambda _: None)
    assert dry_t.writes == [] and dry_t.uploads == []

    runner.run(make(config, private_key, tracker=real_t, mailer=real_m, notifier=real_n), say=lambda _: None)
    kinds = {"edit": "would change issue", "upload": "would upload", "note": "would write a status note",
             "home-issue": "would open the bot's home issue", "record": "would record license",
             "award": "would react :", "unaward": "would remove reaction",
             "anchor": "would write the record's head"}
    noted: set[int] = set()  # an issue's first status note is created (for #1, to announce its claim); then edited
    edits_of_1 = 0
    expected = []
    for kind, iid, _ in real_t.writes:
        expected.append("would rewrite the status note" if kind == "note" and iid in noted else kinds[kind])
        noted |= {iid} if kind == "note" else set()
        edits_of_1 += kind == "edit" and iid == 1
        if kind == "edit" and iid == 1:  # the email after #1's label edit; Slack after its close
            expected.append("would email" if edits_of_1 == 1 else "would post to Slack")
    assert [next(p for p in expected if line.startswith(p)) for line in printed] == expected
    tracker_lines = [p for p in printed if not p.startswith(("would email", "would post"))]
    assert printed[:2] == ["would open the bot's home issue (where its run lock lives)",
                           "would react :lock: on issue #-1"]  # the run lock: the bot's reaction there
    for (kind, _, what), line in zip(real_t.writes, tracker_lines, strict=True):
        if kind == "edit":  # every change, in words (issue 18: not a payload's repr)
            words = {"title": lambda v: f"retitle it {v!r}", "add_labels": lambda v: v.replace(",", ", "),
                     "remove_labels": lambda v: v.replace(",", ", "), "state_event": lambda v: f"{v} it",
                     "confidential": lambda v: "make it confidential" if v else "not confidential",
                     "assignee_ids": lambda v: f"assign it to user id {', '.join(map(str, v))}"}
            assert all(words[k](v) in line for k, v in what.items()), (line, what)
    email_line = next(p for p in printed if p.startswith("would email"))
    assert "to jane.doe@example.com" in email_line and real_m.sent[0]["Message-ID"] in email_line
    note_line = next(p for p in printed
                     if p.startswith("would rewrite the status note it would have written on issue #1"))
    assert "[the license key:" in note_line and "BEGIN GITLAB" not in note_line
    # Issue 18: what a person reads, not the hidden state JSON or the Markdown marks.
    assert "license-bot:state" not in note_line and "<!--" not in note_line and "**" not in note_line


def test_a_request_skipped_for_the_same_reason_as_last_run_is_counted_not_printed(config, private_key):
    # Finding (issue 18): old failed requests printed a "skipped" line on every run, burying what changed.
    ctx = make(config, private_key)
    ctx.tracker.file(filled(expired="11/12/2026"))
    runner.run(ctx, say=lambda _: None)
    lines: list[str] = []
    again = runner.run(make(config, private_key, tracker=ctx.tracker), say=lines.append)
    assert (again.skipped, again.unchanged) == (1, 1)
    assert lines == ["1 request to process"]
    assert "1 of the skipped unchanged since an earlier run" in again.line()
