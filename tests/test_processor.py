"""The processor over a stateful fake tracker: every path, crashes between every pair of steps."""

from __future__ import annotations

import email
import email.policy
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from bot import messages, processor, runner
from bot import status as status_mod
from bot.license import decode, fingerprint
from bot.mailer import MailError
from bot.request import HEADINGS
from bot.tracker import TrackerError

from .fakes import NOW, Crash, CrashPlan, FakeMailer, FakeNotifier, FakeTracker

TEMPLATE = (Path(__file__).resolve().parent.parent / "templates" / "Emergency License Request.md").read_text()


def filled(ticket="512345", email_="jane.doe@example.com", users="250", expired="2026-11-13", tick="x") -> str:
    text = TEMPLATE
    for heading, value in [("### Zendesk ticket\n", ticket), ("### Customer email\n", email_),
                           ("### User count\n", users), (HEADINGS["expired_on"] + "\n", expired)]:
        text = text.replace(heading, f"{heading}{value}\n", 1)
    return text.replace("- [ ]", f"- [{tick}]")


class World:
    def __init__(self, config, private_key, slack=False, zendesk=None):
        self.config, self.key, self.zendesk = config, private_key, zendesk
        self.crash = CrashPlan()
        self.tracker = FakeTracker(crash=self.crash)
        self.mailer = FakeMailer(crash=self.crash)
        self.notifier = FakeNotifier() if slack else None

    def run(self, now=NOW) -> list[processor.Result]:
        """One `license-bot run`: list, then process each request."""
        self.tracker.new_run()
        ctx = runner.Context(config=self.config, tracker=self.tracker, mailer=self.mailer,
                             signer=self.key, now=now, notifier=self.notifier, zendesk=self.zendesk)
        self.tracker.ensure_can_work()
        return [processor.process(issue, ctx) for issue in self.tracker.open_requests()]

    def issue(self, iid=1):
        return self.tracker.issues[iid]

    def note(self, iid=1):
        notes = [n for n in self.tracker.bot_notes(iid) if status_mod.is_status_note(n.body)]
        assert len(notes) <= 1, "more than one status note"
        return notes[0] if notes else None

    def status(self, iid=1):
        return status_mod.read(self.note(iid).body)


@pytest.fixture
def world(config, private_key):
    return World(config, private_key)


def outcomes(results):
    return [r.outcome for r in results]


# --- the happy path -------------------------------------------------------------------------------------

def test_a_valid_request_ends_closed_with_its_license(world, private_key):
    world.tracker.file(filled())
    assert outcomes(world.run()) == ["succeeded"]
    issue = world.issue()
    assert issue.title == "[Success] - Created a license under jane.doe@example.com for 250 users"
    assert issue.state == "closed" and issue.confidential
    assert set(issue.labels) == {"license-request", "license-request::success"}

    (name, data), = world.tracker.uploads
    lic = decode(data.decode(), private_key.public_key())
    assert name == "GitLabSupportEmergencyTrial.gitlab-license"
    assert (lic.email, lic.user_count, lic.plan, lic.trial) == ("jane.doe@example.com", 250, "ultimate", True)
    assert (str(lic.issued_at), str(lic.expires_at)) == ("2026-11-26", "2026-12-07")

    note, status = world.note(), world.status()
    assert status.step == "delivered" and status.license_sha256 == fingerprint(data.decode())
    assert status_mod.key_text(note.body) == data.decode()
    assert name in note.body and "<details>" in note.body
    assert "emailed to **jane.doe@example.com** on 2026-11-27 03:00 UTC, and this issue was closed" in note.body
    # Issue 18: what happened first; the Message-ID is a detail, after the license's facts.
    assert note.body.index(f"- **Message-ID:** `{status.message_id}`") > note.body.index("- **File:**")
    (entry,) = world.tracker.entry_issues()  # recorded in an issue the bot's user opened, with the key
    assert entry.author_id == world.tracker.bot_id and data.decode() in entry.description

    (msg,) = world.mailer.sent
    assert msg["To"] == "jane.doe@example.com"
    assert msg["Message-ID"] == f"<license-{status.license_id}@example.com>"
    attachment = next(msg.iter_attachments())
    assert attachment.get_filename() == name and attachment.get_content() == data


def test_a_successful_request_costs_at_most_nine_api_calls(world):
    """Announce and take the claim (status note, reaction), upload, record entry (opened, closed), the record's
    anchor, label, status note, close: the claim keeps overlapping runs to one email without labels, the entry
    is its own issue so that reading the record costs a call per 100 licenses, and the anchor is one write per
    license (issue 16); an issue untouched since it was filed has no evidence to read."""
    world.tracker.file(filled())
    world.tracker.new_run()
    ctx = runner.Context(config=world.config, tracker=world.tracker, mailer=world.mailer,
                            signer=world.key, now=NOW)
    issue, = world.tracker.open_requests()
    # Per-run cached lookups, paid once whatever the number of requests.
    ctx.tracker.ensure_can_work()
    ctx.tracker.member_level("support", issue.author_id)
    ctx.record.entries()
    before = world.tracker.api_calls
    assert processor.process(issue, ctx).outcome == "succeeded"
    assert world.tracker.api_calls - before <= 9


def test_slack_gets_the_ticket_and_the_issue(config, private_key):
    w = World(config, private_key, slack=True)
    w.tracker.file(filled())
    w.run()
    (post,) = w.notifier.posts
    assert "https://gitlab.zendesk.com/agent/tickets/512345" in post and w.issue().web_url in post


def test_a_slack_failure_is_noted_not_fatal(config, private_key):
    w = World(config, private_key, slack=True)
    w.notifier.fail = True
    w.tracker.file(filled())
    assert outcomes(w.run()) == ["succeeded"]
    assert "Slack post failed" in w.note().body and w.issue().state == "closed"


def test_request_found_by_its_form_marker_when_the_label_did_not_apply(world):
    world.tracker.file(filled(), labels=())
    assert outcomes(world.run()) == ["succeeded"]
    assert "license-request" in world.issue().labels


# --- invalid requests ------------------------------------------------------------------------------------

def test_an_invalid_request_stays_open_assigned_and_explained(world):
    world.tracker.file(filled(users="11/12", expired="11/12/2026", tick=" "))
    assert outcomes(world.run()) == ["failed"]
    issue, note = world.issue(), world.note()
    assert issue.state == "opened" and "license-request::failed" in issue.labels
    assert issue.assignee_ids == (10,)
    assert note.body.count("@alice") == 1
    for name in ("User count", "Expiry date of the customer's expired license", "Checklist"):
        assert f"**{name}**" in note.body
    assert world.tracker.uploads == [] and world.mailer.sent == []


def test_a_failed_request_is_judged_again_only_when_its_description_changes(world):
    world.tracker.file(filled(expired="11/12/2026"))
    world.run()
    writes = world.crash.effects
    assert outcomes(world.run()) == ["skipped"] and world.crash.effects == writes  # no write at all

    iid = 1
    world.tracker.issues[iid] = replace(world.issue(), description=filled(), updated_at=NOW)
    assert outcomes(world.run()) == ["succeeded"]
    assert world.issue().state == "closed" and "license-request::failed" not in world.issue().labels
    assert len(world.tracker.bot_notes(iid)) == 1  # the same note, edited in place


def test_an_old_failed_request_costs_no_api_call(world):
    world.tracker.file(filled(expired="11/12/2026"))
    world.run()
    later = NOW + timedelta(minutes=world.config.run.recheck_minutes + 1)
    world.tracker.new_run()
    ctx = runner.Context(config=world.config, tracker=world.tracker, mailer=world.mailer,
                            signer=world.key, now=later)
    assert processor.process(world.issue(), ctx).outcome == "skipped"
    assert world.tracker.api_calls == 0


def test_an_unauthorised_author_is_refused(world):
    world.tracker.file(filled(), author="mallory", author_id=66)
    assert outcomes(world.run()) == ["failed"]
    assert "**Requester**: @mallory may not request" in world.note().body
    assert world.tracker.uploads == []


def test_listed_users_may_request_without_a_group(config, private_key):
    cfg = replace(config, requests=replace(config.requests, requester_users=("mallory",)))
    w = World(cfg, private_key)
    w.tracker.file(filled(), author="mallory", author_id=66)
    assert outcomes(w.run()) == ["succeeded"]


def test_the_same_request_filed_twice_gets_one_license(world):
    world.tracker.file(filled())
    world.tracker.file(filled())
    assert outcomes(world.run()) == ["succeeded", "failed"]
    assert len(world.tracker.uploads) == 1 and len(world.mailer.sent) == 1
    body = world.note(2).body
    assert "ticket 512345 already got a license in #1" in body


def test_a_second_ticket_for_the_same_email_within_the_cooldown_is_refused(world):
    world.tracker.file(filled())
    world.run()
    world.tracker.file(filled(ticket="600001"))
    assert outcomes(world.run()) == ["failed"]
    assert "jane.doe@example.com already got a license in #1" in world.note(2).body


def test_an_approvers_override_waives_scope_and_duplicates_and_is_recorded(world):
    world.tracker.file(filled())
    world.run()
    world.tracker.file(filled(expired="2026-09-01"))
    world.tracker.label_as(2, "license-request-override", "mike", 12)  # mike manages Support
    world.tracker.react(2, "key", "mike", 12)  # and approves with his own reaction, which only he can remove
    assert outcomes(world.run()) == ["succeeded"]
    body = world.note(2).body
    assert "Override approved by @mike" in body and "overridden by @mike: ticket 512345 already got a license" in body


def test_an_override_label_from_anyone_but_an_approver_is_ignored(world):
    world.tracker.file(filled())
    world.run()
    world.tracker.file(filled(), labels=("license-request", "license-request-override"))
    world.tracker.react(2, "key", "alice", 10)  # the requester herself
    assert outcomes(world.run()) == ["failed"]
    body = world.note(2).body
    assert "ticket 512345 already got a license in #1" in body
    assert "was ignored: @alice wrote this request and may not approve it" in body
    # A manager approving the failed request makes the bot judge it again.
    world.tracker.react(2, "key", "mike", 12)
    assert outcomes(world.run()) == ["succeeded"]
    assert "Override approved by @mike" in world.note(2).body


def test_a_failed_read_of_the_record_is_an_error_never_no_duplicate(world):
    world.tracker.file(filled(ticket="1"))
    world.run()
    world.tracker.file(filled())
    world.tracker.uploads.clear()
    world.mailer.sent.clear()
    world.tracker.fail_record = 401
    with pytest.raises(TrackerError, match="401"):
        world.run()
    assert world.tracker.uploads == [] and world.mailer.sent == [] and world.note(2) is None


def test_a_public_tracker_is_refused_before_anything_is_written(world):
    world.tracker.visibility = "public"
    world.tracker.file(filled())
    with pytest.raises(TrackerError, match="public"):
        world.run()
    assert world.tracker.uploads == [] and world.crash.effects == 0


def test_a_token_blind_to_confidential_issues_is_refused(world):
    world.tracker.my_level = 10  # Guest: GitLab would list no confidential request at all
    world.tracker.file(filled())
    with pytest.raises(TrackerError, match="Guest"):
        world.run()
    assert world.tracker.uploads == [] and world.crash.effects == 0


def test_issues_that_are_not_requests_are_left_alone(world):
    world.tracker.file("Please fix the CI", labels=("license-request",))  # labelled by mistake
    assert outcomes(world.run()) == ["failed"]  # labelled: it is told what the form needs
    assert "Request form" in world.note().body


# --- delivery failures ---------------------------------------------------------------------------------

def test_smtp_down_then_back_retries_with_the_same_license(world):
    world.tracker.file(filled())
    world.mailer.fail = [MailError("could not reach the mail server localhost:25: the connection was refused",
                                   permanent=False)]
    assert outcomes(world.run()) == ["retrying"]
    assert "license-request::processing" in world.issue().labels and world.issue().state == "opened"
    assert "delivery attempt 1 of 5 failed" in world.note().body
    assert outcomes(world.run()) == ["succeeded"]
    assert len(world.tracker.uploads) == 1 and len(world.mailer.sent) == 1
    assert world.issue().state == "closed" and "on delivery attempt 2" in world.note().body
    assert "license-request::processing" not in world.issue().labels


def test_after_max_attempts_it_fails_with_what_to_do_and_a_person_can_retry(world):
    world.tracker.file(filled())
    world.mailer.fail = [MailError("timed out", permanent=False)] * 5
    assert [outcomes(world.run()) for _ in range(5)] == [["retrying"]] * 4 + [["failed"]]
    issue, body = world.issue(), world.note().body
    assert "license-request::failed" in issue.labels and issue.assignee_ids == (10,)
    assert "Not delivered" in body and "to the ticket" in body and "add the ~\"license-request::processing\"" in body
    assert outcomes(world.run(now=NOW + timedelta(minutes=1))) == ["skipped"]  # waits for a person

    # On GitLab Free scoped labels do not replace each other: both stay, and that still means "send again".
    world.tracker.label_as(1, "license-request::processing", "alice", 10)
    assert outcomes(world.run()) == ["succeeded"]
    assert len(world.tracker.uploads) == 1
    (msg,) = world.mailer.sent  # a re-send a person asked for gets its own Message-ID
    assert msg["Message-ID"] == f"<license-{world.status().license_id}-resend1@example.com>"


def test_a_refused_recipient_fails_at_once(world):
    world.tracker.file(filled())
    world.mailer.fail = [MailError("the mail server refused the recipient (550 no such user)", permanent=True)]
    assert outcomes(world.run()) == ["failed"]
    assert "550 no such user" in world.note().body and world.status().step == "undelivered"


def test_what_is_sent_is_the_recorded_key_never_the_copy_in_the_note(world):
    world.tracker.file(filled())
    world.mailer.fail = [MailError("timed out", permanent=False)]
    world.run()
    note = world.note()
    recorded = status_mod.key_text(note.body)
    tampered = note.body.replace(recorded[70:90], "A" * 20)
    world.tracker.notes[1] = [replace(note, body=tampered)]
    assert outcomes(world.run()) == ["succeeded"]
    (msg,) = world.mailer.sent
    assert next(msg.iter_attachments()).get_content().decode() == recorded
    assert status_mod.key_text(world.note().body) == recorded  # the copy is written again as recorded


# --- crashes ---------------------------------------------------------------------------------------------

def _final(world) -> dict:
    issue, status = world.issue(), world.status()
    return {"title": issue.title, "state": issue.state, "labels": set(issue.labels),
            "confidential": issue.confidential,
            # A crashed attempt is taken over with the next claim reaction (issue 16): which one is no outcome;
            # the upload's markdown and the entry's digest both name the upload.
            "status": replace(status, upload_markdown=None, record_digest=None, claim=0),
            "key": status_mod.key_text(world.note().body)}


def test_a_crash_between_any_two_steps_then_a_rerun_ends_as_an_uninterrupted_run(config, private_key):
    clean = World(config, private_key, slack=True)
    clean.tracker.file(filled())
    clean.run()
    expected, steps = _final(clean), clean.crash.effects
    assert steps >= 6  # upload, record, claim, email, note, close

    for k in range(1, steps + 1):
        w = World(config, private_key, slack=True)
        w.tracker.file(filled())
        w.crash.after = k
        with pytest.raises(Crash):
            w.run()
        w.crash.after = None
        w.run()
        assert _final(w) == expected, f"crash after step {k}"
        assert len({data for _, data in w.tracker.uploads}) == 1, f"two licenses after a crash at step {k}"
        assert len({m["Message-ID"] for m in w.mailer.sent}) == 1
        assert len(w.mailer.sent) >= 1


def test_a_crash_during_a_rejection_then_a_rerun_leaves_one_explanation(config, private_key):
    for k in (1, 2):
        w = World(config, private_key)
        w.tracker.file(filled(expired="11/12/2026"))
        w.crash.after = k
        with pytest.raises(Crash):
            w.run()
        w.crash.after = None
        w.run()
        assert w.status().step == "rejected" and "license-request::failed" in w.issue().labels


def test_two_overlapping_runs_would_make_byte_identical_keys(config, private_key):
    """Two processes that both pass the claim before either persists derive the same key."""
    a, b = World(config, private_key), World(config, private_key)
    for w in (a, b):
        w.tracker.file(filled())
        w.run()
    assert a.tracker.uploads == b.tracker.uploads
    other = World(config, private_key)
    other.tracker.file("placeholder")
    other.tracker.file(filled())  # another issue: another key
    other.run()
    assert other.tracker.uploads[0][1] != a.tracker.uploads[0][1]


def test_the_email_parses_back_as_sent(world):
    world.tracker.file(filled())
    world.run()
    raw = world.mailer.sent[0].as_bytes()
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == "Your 10-day GitLab Ultimate trial license (ticket #512345)"
    assert messages.success_title("a@b.co", 3) == "[Success] - Created a license under a@b.co for 3 users"


@pytest.mark.parametrize("status", [500, 403, 401])
def test_gitlab_refusing_the_close_after_the_email_never_sends_a_second_one(world, monkeypatch, status):
    """Issue 17: the emailed state is saved before any other outside call, so whatever GitLab answers next
    (here: the retitle-and-close refused), every later run converges on the one email."""
    world.tracker.file(filled())
    real_edit = world.tracker.edit_issue
    refusals = []

    def edit(issue, edit):
        if edit.state_event == "close" and not refusals:
            refusals.append(status)
            raise TrackerError(f"could not close: GitLab answered {status}", transient=status >= 500, status=status)
        return real_edit(issue, edit)

    monkeypatch.setattr(world.tracker, "edit_issue", edit)
    with pytest.raises(TrackerError):
        world.run()
    assert len(world.mailer.sent) == 1 and world.status().step == "delivered"
    assert outcomes(world.run()) == ["succeeded"]
    assert world.issue().state == "closed" and len(world.mailer.sent) == 1 and refusals == [status]
