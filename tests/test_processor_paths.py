"""The processor's less travelled paths, each pinned by what a person sees (issue 22: mutants that survived)."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import replace
from datetime import timedelta

import pytest

from bot import processor, runner
from bot import status as status_mod
from bot.license import license_id
from bot.mailer import MailError

from .fakes import NOW, Crash
from .test_processor import World, filled, outcomes


@pytest.fixture
def world(config, private_key):
    return World(config, private_key)


def process(world: World, iid: int = 1, now=NOW) -> processor.Result:
    """One run's processing of one issue, whatever its state (the listing would leave a closed one out)."""
    world.tracker.new_run()
    ctx = runner.Context(config=world.config, tracker=world.tracker, mailer=world.mailer, signer=world.key, now=now)
    return processor.process(world.issue(iid), ctx)


def set_state(world: World, iid: int = 1, **changes) -> None:
    """Someone edits the machine-readable state of the status note (a Maintainer can edit any note)."""
    note = world.note(iid)
    head, _, rest = note.body.partition("<!-- license-bot:state ")
    state, _, tail = rest.partition(" -->")
    body = head + "<!-- license-bot:state " + json.dumps({**json.loads(state), **changes}) + " -->" + tail
    world.tracker.notes[iid] = [replace(n, body=body) if n.id == note.id else n for n in world.tracker.notes[iid]]


# --- who may request --------------------------------------------------------------------------------------

def test_a_member_with_exactly_the_minimum_role_may_request(world):
    """Issue 22: `>=` -> `>` refused a Reporter where the config asks for Reporter (requests.min_access_level:
    reporter; GitLab's Reporter is access level 20, lib/gitlab/access.rb). The rule itself lives in
    bot/evidence.py `member_rule`; the processor hands it the configured level."""
    world.tracker.members["support"][11] = 20  # bob: a Reporter of support
    world.tracker.members["support"][13] = 10  # gus: a Guest of support
    world.tracker.file(filled(), author="bob", author_id=11)
    world.tracker.file(filled(ticket="600001", email_="ops@example.com"), author="gus", author_id=13)
    assert outcomes(world.run()) == ["succeeded", "failed"]
    assert ("- **Requester**: @gus may not request emergency licenses (not a direct member with at least the "
            "Reporter role of support); ask someone on the Support team to file the request\n") in world.note(2).body


# --- the claimed issue --------------------------------------------------------------------------------------

def test_a_request_filed_as_a_public_issue_is_made_confidential_before_its_license_is_sent(world):
    """Issue 22: "the claimed issue is never made confidential" survived because every test issue already was.
    The status note carries the license key: only members may read it."""
    world.tracker.file(filled(), confidential=False)
    world.mailer.fail = [MailError("timed out", permanent=False)]
    assert outcomes(world.run()) == ["retrying"]
    assert world.issue().confidential  # before the first email attempt, not only once it is done
    assert outcomes(world.run()) == ["succeeded"]
    assert world.issue().confidential


# --- the key copy in the status note ----------------------------------------------------------------------

def test_a_refused_address_keeps_the_key_copy_in_the_note(world):
    """Issue 22: "the status note loses its key copy": the note written when the mail server refuses the address
    must still hold the license, so a person can send it through the ticket."""
    world.tracker.file(filled())
    world.mailer.fail = [MailError("the mail server refused the recipient (550 no such user)", permanent=True)]
    assert outcomes(world.run()) == ["failed"]
    (name, data), = world.tracker.uploads
    assert status_mod.key_text(world.note().body) == data.decode()


def test_a_note_naming_another_license_is_held_without_showing_the_recorded_key(world):
    """Issue 22: "the status note shows another license's": a note whose license is not the record's must not
    get the record's key as if it were its own."""
    world.tracker.file(filled())
    world.mailer.fail = [MailError("timed out", permanent=False)]
    world.run()
    recorded = world.status().license_id
    set_state(world, license_id="0123456789abcdef", license_sha256="0" * 64)
    (result,) = world.run()
    assert result.outcome == "failed"
    assert result.detail == ("held for a person: the status note names license 0123456789abcdef, but the record "
                             f"holds {recorded} "
                             "for this issue")
    assert world.status().step == "held" and status_mod.key_text(world.note().body) is None
    assert world.mailer.sent == [] and "license-request::failed" in world.issue().labels
    assert world.issue().assignee_ids == (10,) and result.iid == 1
    assert world.issue().title == "Emergency license"  # only a [Success] title becomes [Held]
    # Held: the next run says so again, and neither writes nor sends anything.
    writes = len(world.tracker.writes)
    assert world.run() == [result]
    assert len(world.tracker.writes) == writes and world.mailer.sent == []


# --- re-sends -------------------------------------------------------------------------------------------------

def test_a_resend_a_person_asks_for_starts_its_attempts_from_zero(world):
    """Issue 22: "a re-send does not reset its attempt count": after five failed attempts, one more failure
    of the re-send failed it at once instead of trying it again."""
    world.tracker.file(filled())
    world.mailer.fail = [MailError("timed out", permanent=False)] * 6
    for _ in range(5):
        world.run()
    assert world.status().step == "undelivered"
    assert world.run(now=NOW + timedelta(minutes=1)) == [processor.Result(
        1, "skipped", "its license was not delivered; waiting for a person")]
    world.tracker.label_as(1, "license-request::processing", "alice", 10)
    claim = world.status().claim
    world.crash.after = world.crash.effects + 1  # the re-send's claim announced, then gone
    with pytest.raises(Crash):
        world.run()
    world.crash.after = None
    status = world.status()
    assert (status.step, status.attempts, status.last_error, status.resends) == ("persisted", 0, None, 1)
    assert status.claim == claim + 1  # claimed like any delivery: two runs never both send it
    (result,) = world.run()
    assert (result.outcome, result.detail) == ("retrying", "email attempt 1 failed: timed out")
    assert "delivery attempt 1 of 5 failed" in world.note().body
    assert world.status().resends == 1
    assert outcomes(world.run()) == ["succeeded"]
    assert world.status().attempts == 2


def test_an_undelivered_license_waits_for_a_person_and_says_so(world):
    world.tracker.file(filled())
    world.mailer.fail = [MailError("the mail server refused the recipient (550 no such user)", permanent=True)]
    world.run()
    (result,) = world.run(now=NOW + timedelta(minutes=1))
    assert (result.outcome, result.detail) == ("skipped", "its license was not delivered; waiting for a person")
    assert world.mailer.sent == [] and world.status().claimer is None


# --- holds ------------------------------------------------------------------------------------------------

def test_a_hold_edits_the_one_status_note_and_retitles_a_success_title(world):
    """Issue 22: "a hold writes a second status note". The request's license was emailed and the issue closed;
    someone deletes the bot's status note and reopens it: the bot holds it, in one new note, and a later run
    edits that note rather than adding another."""
    world.tracker.file(filled())
    world.run()
    world.tracker.notes[1] = []
    # GitLab moves updated_at on every change (the deletion, the reopening).
    world.tracker.issues[1] = replace(world.issue(), state="opened", user_notes_count=0,
                                      updated_at=NOW + timedelta(minutes=1))
    result = process(world)
    why = ("its license was emailed and the issue closed [Success] before, then the bot's status note was deleted")
    assert (result.outcome, result.detail, result.problems) == ("failed", "held for a person: " + why,
                                                                (("license", why),))
    (note,) = world.tracker.bot_notes(1)
    status = world.status()
    assert (status.step, status.last_error, status.license_id) == ("held", why, _recorded_id(world))
    assert status_mod.key_text(note.body) == world.tracker.uploads[0][1].decode()
    assert world.issue().title == "[Held] - Created a license under jane.doe@example.com for 250 users"
    assert "license-request::failed" in world.issue().labels and world.issue().assignee_ids == (10,)
    assert process(world).outcome == "skipped"
    assert [n.id for n in world.tracker.bot_notes(1)] == [note.id] and len(world.mailer.sent) == 1


def test_a_claim_taken_before_without_any_trace_is_held(world):
    """The bot announced and took a claim (then its run died), and the status note was deleted: the bot cannot
    tell what that run did, so a person looks before anything is made."""
    world.tracker.file(filled())
    world.crash.after = 2  # the claim's note, then its reaction
    with pytest.raises(Crash):
        world.run()
    world.crash.after = None
    world.tracker.notes[1] = []
    (result,) = world.run()
    why = "the bot claimed this issue before, yet its license is neither in the record nor in a status note: they " \
          "were deleted"
    assert (result.outcome, result.detail, result.problems) == ("failed", "held for a person: " + why,
                                                                (("license", why),))
    assert len(world.tracker.bot_notes(1)) == 1
    status = world.status()
    assert (status.step, status.author, status.judged_at, status.claimer) == ("held", "alice", NOW.isoformat(), None)
    assert status.description_sha256 == status_mod.description_hash(world.issue().description)
    assert world.tracker.uploads == [] and world.mailer.sent == []


def test_a_recorded_claim_whose_note_was_deleted_is_held(world):
    world.tracker.file(filled())
    world.mailer.fail = [MailError("timed out", permanent=False)]
    world.run()
    world.tracker.notes[1] = []
    (result,) = world.run()
    assert result.detail == ("held for a person: the bot claimed and recorded this request before, then its status "
                             "note was deleted, so the bot cannot tell whether the license was emailed")
    assert world.status().license_id == _recorded_id(world) and world.mailer.sent == []
    assert world.run() == [processor.Result(1, "skipped", result.detail)]  # held: said, nothing done


def _recorded_id(world: World) -> str:
    return license_id(world.tracker.uploads[0][1].decode())


# --- skipped issues -----------------------------------------------------------------------------------------

def test_each_skipped_issue_says_why(world):
    """Issue 22: the outcomes of skipped issues were never asserted; the run prints each reason."""
    world.tracker.file(filled())
    world.tracker.issues[1] = replace(world.issue(), state="closed")
    assert process(world) == processor.Result(1, "skipped", "the issue is closed")

    world.tracker.file(filled(), author="license-bot", author_id=99)
    assert process(world, 2) == processor.Result(
        2, "skipped", "the bot opened this issue itself: never a request, whatever it says")

    world.tracker.file("Please fix the CI", labels=())
    assert process(world, 3) == processor.Result(
        3, "skipped", "not a license request (no request label or form marker)")
    assert world.tracker.writes == []


def test_a_failed_request_is_skipped_saying_why_and_looked_at_again_once_updated(world):
    world.tracker.file(filled(expired="11/12/2026"))
    world.run()
    later = NOW + timedelta(minutes=world.config.run.recheck_minutes + 1)
    assert process(world, now=later) == processor.Result(1, "skipped", "failed earlier and not updated since")
    # Updated exactly run.recheck_minutes ago is still recent: looked at (and found unchanged).
    result = process(world, now=NOW + timedelta(minutes=world.config.run.recheck_minutes))
    assert result == processor.Result(1, "skipped", "failed earlier; its description has not changed")


# --- after the email -------------------------------------------------------------------------------------------

def test_a_success_reopened_by_a_person_is_closed_again_and_nothing_is_sent(world):
    """The bot never sends a license twice: a reopened [Success] issue is closed again, saying how to get the
    license to the customer."""
    world.tracker.file(filled())
    world.run()
    world.tracker.issues[1] = replace(world.issue(), state="opened", updated_at=NOW + timedelta(minutes=1))
    (result,) = world.run()
    assert result == processor.Result(1, "skipped", "reopened after its license was emailed; closed again, nothing "
                                                    "sent")
    assert world.issue().state == "closed" and len(world.mailer.sent) == 1
    assert world.status().notices == (
        "Reopened after its license was emailed on 2026-11-27; closed again. The bot never sends a license twice: "
        "if the customer lost it, send them the attached file through the ticket (`license-bot find "
        "jane.doe@example.com --download DIR` fetches it).",)
    # Reopened again: the notice is said once.
    world.tracker.issues[1] = replace(world.issue(), state="opened", updated_at=NOW + timedelta(minutes=2))
    world.run()
    assert len(world.status().notices) == 1 and world.issue().state == "closed"


def test_a_run_that_died_before_the_close_is_finished_as_a_success(world):
    world.tracker.file(filled())
    world.crash.after = 7  # claim's note, reaction, upload, entry, label, email, emailed note: then gone
    with pytest.raises(Crash):
        world.run()
    world.crash.after = None
    assert world.run() == [processor.Result(1, "succeeded", f"license {world.status().license_id} sent to "
                                                            "jane.doe@example.com")]
    assert world.issue().title == "[Success] - Created a license under jane.doe@example.com for 250 users"
    assert world.issue().state == "closed" and len(world.mailer.sent) == 1 and world.status().notices == ()


def test_a_resend_that_died_before_the_close_ends_without_the_failed_label(world):
    """A person's re-send (GitLab Free keeps ~failed next to ~processing): emailed, then the run died; the
    next run closes it as a success, never labelled failed."""
    world.tracker.file(filled(email_="first@example.org"))
    world.mailer.fail = [REFUSED]
    world.run()
    world.tracker.label_as(1, "license-request::processing", "alice", 10)
    # The claim's note, its reaction, the label, the email, the record's "delivered after all", the emailed note:
    # then gone.
    world.crash.after = world.crash.effects + 6
    with pytest.raises(Crash):
        world.run()
    world.crash.after = None
    assert outcomes(world.run()) == ["succeeded"]
    assert set(world.issue().labels) == {"license-request", "license-request::success"}
    assert world.issue().state == "closed" and len(world.mailer.sent) == 1


# --- who is assigned --------------------------------------------------------------------------------------------

def test_a_failed_request_is_assigned_to_its_author_first_keeping_the_others(world):
    """GitLab Free keeps only the first of several assignees (Multiple assignees: Premium and Ultimate,
    doc/user/project/issues/multiple_assignees_for_issues.md): the author must come first."""
    world.tracker.file(filled(expired="11/12/2026"))
    world.tracker.issues[1] = replace(world.issue(), assignee_ids=(12, 10))
    world.run()
    assert world.issue().assignee_ids == (10, 12)


def test_an_author_already_first_is_not_assigned_again(world):
    world.tracker.file(filled(expired="11/12/2026"))
    world.tracker.issues[1] = replace(world.issue(), assignee_ids=(10, 12))
    world.run()
    assert world.issue().assignee_ids == (10, 12)
    assert not any(kind == "edit" and "assignee_ids" in what for kind, _, what in world.tracker.writes)


# --- the run's words ----------------------------------------------------------------------------------------------

def test_a_failed_request_counts_its_problems_in_words(world):
    world.tracker.file(filled(expired="11/12/2026"))
    world.tracker.file(filled(ticket="600001", users="lots", expired="11/12/2026"))
    assert [r.detail for r in world.run()] == ["1 problem", "2 problems"]


def test_the_refusal_reason_is_the_servers_words_without_the_address():
    assert processor._refusal_reason("the mail server refused the recipient (jane@example.com: 550 5.1.1 no such "
                                     "user)") == "550 5.1.1 no such user"
    assert processor._refusal_reason("the mail server refused the recipient (550 no such user)") == "550 no such user"


def test_a_claim_by_a_dead_process_on_this_host_is_not_alive_and_one_elsewhere_may_be():
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    assert processor._alive(f"{host}:{done.stdout.strip()}") is False
    assert processor._alive(f"{host}:{os.getpid()}") is True
    assert processor._alive(f"other-host:{done.stdout.strip()}") is True
    assert processor._alive(f"{host}:not-a-pid") is True


# --- a refused address ------------------------------------------------------------------------------------------

REFUSED = MailError("the mail server refused the recipient (first@example.org: the address does not exist "
                    "(550 5.1.1))", permanent=True)


def test_a_corrected_address_gets_a_new_license_that_says_what_it_replaces(world):
    """Issue 18's path (1), in-process: the requester corrects the address; the refused license was never
    delivered, so a new one for the corrected address is made, its delivery counted from the start."""
    world.tracker.file(filled(email_="first@example.org"))
    world.mailer.fail = [REFUSED, MailError("timed out", permanent=False)]
    assert outcomes(world.run()) == ["failed"]
    first = world.status().license_id
    assert "the address does not exist (550 5.1.1)" in world.note().body
    world.tracker.edit_description(1, filled(email_="second@example.org"))
    (result,) = world.run()
    assert (result.outcome, result.detail) == ("retrying", "email attempt 1 failed: timed out")
    status = world.status()
    assert status.license_id != first and status.email == "second@example.org"
    assert status.notices == (f"License {first} for first@example.org was refused by the mail server (the address "
                              "does not exist (550 5.1.1)) and never delivered; this license, for the corrected "
                              "address, replaces it.",)
    assert outcomes(world.run()) == ["succeeded"]
    (msg,) = world.mailer.sent
    assert msg["To"] == "second@example.org" and world.status().attempts == 2
    assert world.issue().state == "closed"


def test_an_edit_that_keeps_a_refused_address_is_refused_saying_how_to_send_it_again(world):
    world.tracker.file(filled(email_="first@example.org"))
    world.mailer.fail = [REFUSED]
    world.run()
    world.tracker.edit_description(1, filled(email_="first@example.org", users="251"))
    (result,) = world.run()
    assert result.outcome == "failed"
    assert result.problems == (("email", "the mail server refused first@example.org (the address does not exist "
                                         "(550 5.1.1)), so its license was never delivered; correct the address, or "
                                         "add the ~\"license-request::processing\" label to send it there again"),)
    assert len(world.tracker.uploads) == 1 and world.mailer.sent == []
    assert world.status().claim == 0  # the claim this request took is kept: the next attempt takes the next one
    world.tracker.edit_description(1, filled(email_="second@example.org", users="251"))
    assert outcomes(world.run()) == ["succeeded"]


def test_a_persons_resend_of_a_refused_license_sends_the_same_license_and_lifts_the_refusal(world):
    world.tracker.file(filled(email_="first@example.org"))
    world.mailer.fail = [REFUSED]
    world.run()
    first = world.status().license_id
    world.tracker.label_as(1, "license-request::processing", "alice", 10)
    assert outcomes(world.run()) == ["succeeded"]
    (msg,) = world.mailer.sent
    assert msg["To"] == "first@example.org" and world.status().license_id == first
    assert len(world.tracker.uploads) == 1
    assert set(world.issue().labels) == {"license-request", "license-request::success"}
    world.tracker.new_run()
    ctx = runner.Context(config=world.config, tracker=world.tracker, mailer=world.mailer, signer=world.key, now=NOW)
    assert ctx.record.refused(first) is None  # the record says it was delivered after all


# --- the claim ------------------------------------------------------------------------------------------------------

def test_a_claim_another_live_run_holds_is_left_alone_until_it_is_stale(world):
    """Of overlapping runs exactly one makes and emails the license (issue 16): a claim whose run may still be
    working (on another host, where the bot cannot tell) is left alone until run.lock_stale_minutes."""
    world.tracker.file(filled())
    world.crash.after = 2  # the claim's note, its reaction: the run stops there, as if still working
    with pytest.raises(Crash):
        world.run()
    world.crash.after = None
    status = world.status()  # the claim is announced in the note first, naming the run that takes it
    assert (status.step, status.claim, status.claimer) == ("claimed", 0, f"{socket.gethostname()}:{os.getpid()}")
    assert (status.author, status.judged_at) == ("alice", NOW.isoformat())
    set_state(world, claimer="runner-7:4242")
    assert world.run() == [processor.Result(1, "retrying", "another run (runner-7:4242) claimed this request at "
                                                           "03:00:01 UTC and is making or emailing its license; "
                                                           "this run leaves it alone")]
    assert world.tracker.uploads == [] and world.mailer.sent == []
    stale = NOW + timedelta(minutes=world.config.run.lock_stale_minutes + 1)
    assert outcomes(world.run(now=stale)) == ["succeeded"]
    assert len(world.mailer.sent) == 1 and world.status().claim == 1


def test_a_request_whose_delivery_was_started_ten_times_is_held(world):
    """Every claim name used: each run that tried died between its claim and its outcome."""
    world.tracker.file(filled())
    for _ in range(10):
        world.crash.after = world.crash.effects + 2  # announce, react, die
        with pytest.raises(Crash):
            world.run()
    world.crash.after = None
    (result,) = world.run()
    assert (result.outcome, result.detail) == ("failed", "held for a person: the bot started this request's "
                                                         "delivery 10 times without finishing it (each run that "
                                                         "tried stopped or crashed)")
    assert result.iid == 1 and result.problems == (("license", result.detail.removeprefix("held for a person: ")),)
    status = world.status()
    assert (status.step, status.claimer) == ("held", None)  # the hold releases the claim
    assert world.tracker.uploads == [] and world.mailer.sent == []


def test_a_status_note_changed_under_the_run_makes_it_leave_the_request_alone(world, monkeypatch):
    world.tracker.file(filled())
    world.mailer.fail = [MailError("timed out", permanent=False)]
    world.run()
    body = world.note().body
    monkeypatch.setattr(world.tracker, "note_body", lambda iid, note_id: body + "\nanother run's words")
    writes = len(world.tracker.writes)
    assert world.run() == [processor.Result(1, "retrying", "the status note changed since this run read it: another "
                                                           "run is at this request, and this run leaves it alone")]
    assert len(world.tracker.writes) == writes and world.mailer.sent == []


def test_a_claim_lost_to_a_run_at_the_same_moment_takes_back_its_own_new_note(world, monkeypatch):
    world.tracker.file(filled())
    monkeypatch.setattr(world.tracker, "award", lambda iid, name: None)  # GitLab: that reaction exists already
    assert world.run() == [processor.Result(1, "retrying", "another run claimed this request at the same moment; "
                                                           "it makes and emails the license, this run leaves it "
                                                           "alone")]
    assert world.tracker.bot_notes(1) == [] and world.tracker.uploads == []


def test_a_claim_lost_on_a_request_with_a_note_keeps_the_note(world, monkeypatch):
    world.tracker.file(filled())
    world.mailer.fail = [MailError("timed out", permanent=False)]
    world.run()
    note_id = world.note().id
    monkeypatch.setattr(world.tracker, "award", lambda iid, name: None)
    assert outcomes(world.run()) == ["retrying"]
    assert [n.id for n in world.tracker.bot_notes(1)] == [note_id] and world.mailer.sent == []


# --- what people are told -------------------------------------------------------------------------------------------

def test_an_edit_by_someone_who_may_not_request_fails_the_request_naming_who_and_when(world):
    """A request is the request of everyone who wrote its description (README, "The request")."""
    world.tracker.file(filled())
    world.tracker.edit_description(1, filled(users="2500"), user="mallory", user_id=66)
    (result,) = world.run()
    assert result.problems == (("author", (
        "@mallory changed this request's description at 2026-11-27 03:00 UTC but may not request licenses (not a "
        "direct member with at least the Reporter role of support). A request counts as the request of everyone "
        "who wrote its description: @alice can file it again as a new issue, or a requester can check every field "
        "and save the description again")),)
    assert world.tracker.uploads == []


def test_a_recorded_license_gitlab_would_no_longer_accept_is_never_sent(world):
    """Delivery that failed until the license expired: the key would be refused on upload, so it is not sent."""
    world.tracker.file(filled())
    world.mailer.fail = [MailError("timed out", permanent=False)]
    world.run()
    (result,) = world.run(now=NOW + timedelta(days=30))
    assert result.outcome == "failed"
    assert result.detail.startswith(f"license {world.status().license_id} not delivered: GitLab would no longer "
                                    "accept this license (")
    assert result.detail.endswith("), so it was not sent. File a new request; a Support manager's override lets it "
                                  "through the one-license-per-ticket rule")
    assert world.status().step == "undelivered" and world.mailer.sent == []


def test_a_slack_failure_tells_where_to_post_by_hand(config, private_key):
    w = World(config, private_key, slack=True)
    w.notifier.fail = True
    w.tracker.file(filled())
    w.run()
    assert w.status().notices == ("The Slack post failed (Slack answered 500: oops); post the ticket URL in "
                                  "#support_licensing-subscription by hand.",)


def test_the_slack_post_names_the_trial_users_ticket_and_request(config, private_key):
    w = World(config, private_key, slack=True)
    w.tracker.file(filled())
    w.run()
    assert w.notifier.posts == ["Emergency license generated: 10-day Ultimate trial for 250 users, ticket "
                                "https://gitlab.zendesk.com/agent/tickets/512345, request "
                                "https://gitlab.example.com/support/internal-requests/-/issues/1"]


# --- an unexpected error ------------------------------------------------------------------------------------------

def _broken_runs(world: World, monkeypatch, n: int) -> list[processor.Result]:
    """`n` runs in which processing the request hits a bug (the run loop catches it: processor.internal_error)."""
    def broken(issue, ctx):
        raise KeyError("boom")

    monkeypatch.setattr(processor, "process", broken)
    results = []
    for _ in range(n):
        world.tracker.new_run()
        ctx = runner.Context(config=world.config, tracker=world.tracker, mailer=world.mailer, signer=world.key,
                             now=NOW)
        results.append(runner.run(ctx, say=lambda _: None).results[0])
    monkeypatch.undo()
    return results


def _what(result: processor.Result) -> str:
    return result.detail.split("(", 1)[1].split(")", 1)[0]  # "KeyError at test_processor_paths.py:LINE"


def test_a_bug_on_a_new_request_is_said_on_the_issue_then_fails_it_after_max_attempts(world, monkeypatch):
    world.tracker.file(filled())
    results = _broken_runs(world, monkeypatch, 5)
    what = _what(results[0])
    assert what.startswith("KeyError at test_processor_paths.py:")
    assert results[0] == processor.Result(1, "retrying", f"the bot hit an internal error ({what}) on attempt 1 of 5")
    assert [r.outcome for r in results] == ["retrying"] * 4 + ["failed"]
    why = (f"the bot hit an internal error ({what}) on attempt 5 of 5; it gives up. Report it to the bot's "
           "maintainers with this issue's link")
    assert results[-1] == processor.Result(1, "failed", "1 problem", (("form", why),))
    status = world.status()
    assert (status.step, status.errors, status.claim, status.author) == ("rejected", (("form", why),), -1, "alice")
    assert status.description_sha256 == status_mod.description_hash(world.issue().description)
    assert "license-request::failed" in world.issue().labels and world.issue().assignee_ids == (10,)
    assert len(world.tracker.bot_notes(1)) == 1
    assert world.run() == [processor.Result(1, "skipped", "failed earlier; its description has not changed")]
    # Failed for good: judged again once the description changes, and then it goes through.
    world.tracker.edit_description(1, filled(users="251"))
    assert outcomes(world.run()) == ["succeeded"]


def test_the_first_bug_on_a_new_request_writes_a_note_that_says_so(world, monkeypatch):
    world.tracker.file(filled())
    (result,) = _broken_runs(world, monkeypatch, 1)
    status = world.status()
    assert (status.step, status.internal_errors, status.author, status.judged_at) == (
        "rejected", 1, "alice", NOW.isoformat())
    assert status.last_error == result.detail
    assert f"the bot hit an internal error ({_what(result)}) on attempt 1 of 5" in world.note().body


def test_a_claimed_request_failed_by_a_bug_keeps_its_claim(world, monkeypatch):
    world.tracker.file(filled())
    world.crash.after = 2  # the claim's note, its reaction; then gone
    with pytest.raises(Crash):
        world.run()
    world.crash.after = None
    _broken_runs(world, monkeypatch, 5)
    assert (world.status().step, world.status().claim) == ("rejected", 0)
    world.tracker.edit_description(1, filled(users="251"))
    assert outcomes(world.run()) == ["succeeded"]  # the next claim, at once


def test_a_bug_after_the_license_is_made_ends_undelivered_keeping_the_key(world, monkeypatch):
    world.tracker.file(filled())
    world.mailer.fail = [MailError("timed out", permanent=False)]
    world.run()
    results = _broken_runs(world, monkeypatch, 5)
    why = (f"the bot hit an internal error ({_what(results[0])}) on attempt 5 of 5; it gives up. Report it to the "
           "bot's maintainers with this issue's link")
    license_id = world.status().license_id
    assert results[-1] == processor.Result(1, "failed", f"license {license_id} not delivered: {why}", (("email", why),))
    status = world.status()
    assert (status.step, status.internal_errors, status.last_error) == ("undelivered", 5, why)
    assert status_mod.key_text(world.note().body) == world.tracker.uploads[0][1].decode()
    assert world.mailer.sent == []


def test_a_bug_after_the_email_whose_record_does_not_match_is_held(world, monkeypatch):
    """Emailed, so never "not delivered"; but the note's license is not the record's: a person looks."""
    world.tracker.file(filled())
    world.run()
    world.tracker.issues[1] = replace(world.issue(), state="opened", updated_at=NOW + timedelta(minutes=1))
    set_state(world, license_sha256="0" * 64)
    results = _broken_runs(world, monkeypatch, 5)
    why = (f"the bot hit an internal error ({_what(results[0])}) on attempt 5 of 5; it gives up. Report it to the "
           "bot's maintainers with this issue's link")
    assert results[-1] == processor.Result(1, "failed", f"held for a person: {why}", (("license", why),))
    status = world.status()
    assert (status.step, status.internal_errors) == ("held", 5)
    assert status.notices == (why + "; anything still missing on the ticket is posted by hand",)
    assert status.ticket_gave_up is False  # no note on a ticket was wanted
    assert world.issue().state == "opened" and len(world.mailer.sent) == 1


# --- a rejection ----------------------------------------------------------------------------------------------------

def test_a_rejected_request_found_by_its_form_gets_the_request_label_and_loses_processing(world):
    """Labelled by hand with ~processing (or found by its form marker only): failed, it carries the request
    and failed labels, never ~processing, which would read as "being sent"."""
    world.tracker.file(filled(expired="11/12/2026"), labels=("license-request::processing",))
    assert outcomes(world.run()) == ["failed"]
    assert set(world.issue().labels) == {"license-request", "license-request::failed"}
    assert world.status().judged_at == NOW.isoformat()


def test_a_rejected_request_with_an_approval_is_not_judged_again_until_it_changes(world):
    """The override the request was judged with is kept in its note: the same approval on the same description
    is the same verdict, so the next runs leave it alone."""
    world.tracker.file(filled(tick=" "), labels=("license-request", "license-request-override"))
    world.tracker.react(1, "key", "mike", 12)
    assert outcomes(world.run()) == ["failed"]
    assert world.status().override > 0
    writes = len(world.tracker.writes)
    assert [(r.outcome, r.detail) for r in world.run()] == [("skipped", "failed earlier; its description has not "
                                                                        "changed")]
    assert len(world.tracker.writes) == writes


def test_a_request_recorded_without_note_or_claim_is_delivered_once(world):
    """A license recorded, then its status note and the bot's claim reactions gone (only an admin can remove
    another user's reaction): nothing says it was emailed, so it is emailed, once."""
    world.tracker.file(filled())
    world.crash.after = 4  # the claim's note, its reaction, the upload, the record entry: then gone
    with pytest.raises(Crash):
        world.run()
    world.crash.after = None
    world.tracker.notes[1] = []
    world.tracker.reactions[1] = []
    (result,) = world.run()
    assert result.outcome == "succeeded" and len(world.mailer.sent) == 1 and len(world.tracker.uploads) == 1
    status = world.status()
    assert (status.author, status.judged_at, status.step) == ("alice", NOW.isoformat(), "delivered")


def test_a_resumed_delivery_takes_the_next_claim(world):
    """A run died after recording the license: the run that resumes it claims it again (the next reaction),
    so two runs resuming at once still send one email."""
    world.tracker.file(filled())
    world.crash.after = 4
    with pytest.raises(Crash):
        world.run()
    world.crash.after = None
    assert outcomes(world.run()) == ["succeeded"]
    mine = [a.name for a in world.tracker.reactions[1] if a.user_id == world.tracker.bot_id]
    assert mine == ["one", "two"] and world.status().claim == 1


def test_a_fixed_request_forgets_its_old_problems(world):
    """Failed, then fixed: its status note speaks of the license, no longer of the problems it had."""
    world.tracker.file(filled(expired="11/12/2026"))
    world.run()
    assert world.status().errors
    world.tracker.edit_description(1, filled())
    world.crash.after = world.crash.effects + 1  # the claim announced, then gone
    with pytest.raises(Crash):
        world.run()
    world.crash.after = None
    status = world.status()
    assert (status.step, status.errors, status.last_error) == ("claimed", (), None)
    assert outcomes(world.run()) == ["succeeded"]
    assert world.status().errors == () and "Expiry date" not in world.note().body


# --- the delivery -------------------------------------------------------------------------------------------------

def _text(msg) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()


def test_without_zendesk_the_run_line_claims_no_note_on_the_ticket(world):
    world.tracker.file(filled())
    (result,) = world.run()
    assert result == processor.Result(1, "succeeded", f"license {world.status().license_id} sent to "
                                                      "jane.doe@example.com")


def test_the_email_links_the_customers_view_of_the_ticket(world):
    """The customer cannot open /agent/tickets/N: the email links the help center's request page
    (/work/shared/reference/zendesk-notes.md: the help center's request page, /hc/requests/N; bot/zendesk.py
    `customer_ticket_url`)."""
    world.tracker.file(filled())
    world.run()
    (msg,) = world.mailer.sent
    assert "your support ticket (https://gitlab.zendesk.com/hc/requests/512345)" in " ".join(_text(msg).split())


def test_the_email_links_the_configured_help_center(config, private_key):
    cfg = replace(config, zendesk=replace(config.zendesk, help_center_url="https://support.example.com"))
    w = World(cfg, private_key)
    w.tracker.file(filled())
    w.run()
    (msg,) = w.mailer.sent
    assert "your support ticket (https://support.example.com/hc/requests/512345)" in " ".join(_text(msg).split())


def test_a_request_labelled_success_by_mistake_reads_processing_until_it_is_sent(world):
    world.tracker.file(filled(), labels=("license-request", "license-request::success"))
    world.mailer.fail = [MailError("timed out", permanent=False)]
    assert world.run() == [processor.Result(1, "retrying", "email attempt 1 failed: timed out")]
    assert set(world.issue().labels) == {"license-request", "license-request::processing"}
    status = world.status()
    assert (status.step, status.attempts, status.last_error, status.claimer) == ("persisted", 1, "timed out", None)
    # A confidential issue is not made confidential again (a dry run would say so).
    assert not any(kind == "edit" and "confidential" in what for kind, _, what in world.tracker.writes)


def test_a_refused_address_is_said_whole_and_recorded_with_its_reason_and_date(world):
    world.tracker.file(filled(email_="first@example.org"))
    world.mailer.fail = [REFUSED]
    (result,) = world.run()
    license_id = world.status().license_id
    assert result == processor.Result(1, "failed", f"license {license_id} not delivered: {REFUSED}",
                                      (("email", str(REFUSED)),))
    assert (world.status().attempts, world.status().step) == (1, "undelivered")
    world.tracker.new_run()
    ctx = runner.Context(config=world.config, tracker=world.tracker, mailer=world.mailer, signer=world.key, now=NOW)
    refusal = ctx.record.refused(license_id)
    assert (refusal.email, refusal.refused, refusal.why, refusal.on) == (
        "first@example.org", True, "the address does not exist (550 5.1.1)", "2026-11-27")
    # A person's re-send reaches it: the record says so, in words and with the date.
    world.tracker.label_as(1, "license-request::processing", "alice", 10)
    assert outcomes(world.run()) == ["succeeded"]
    lifted = world.tracker.entry_issues()[-1].description
    assert lifted.startswith(f"License `{license_id}` (#1) was delivered to first@example.org on 2026-11-27 after "
                             "all (a person's re-send); it counts again.")


def test_after_max_attempts_the_run_says_how_many_and_the_last_error(world):
    world.tracker.file(filled())
    world.mailer.fail = [MailError("timed out", permanent=False)] * 5
    for _ in range(4):
        world.run()
    (result,) = world.run()
    assert result.detail == (f"license {world.status().license_id} not delivered: 5 delivery attempts failed; the "
                             "last: timed out")
    assert world.status().attempts == 5


# --- a damaged record ---------------------------------------------------------------------------------------------

def test_a_claimed_request_held_for_a_damaged_record_goes_on_once_it_checks_out(world):
    """A request the bot had claimed when the record turned out damaged: held (nobody may tell whether this
    ticket already has a license), keeping its claim; once a person restores the entry it is judged and sent,
    not mistaken for a claim whose trace was deleted."""
    world.tracker.file(filled())
    world.run()
    (entry,) = world.tracker.entry_issues()
    world.tracker.file(filled(ticket="600001", email_="ops@example.org"))
    world.crash.after = world.crash.effects + 2  # request 2: the claim's note, its reaction; then gone
    with pytest.raises(Crash):
        world.run()
    world.crash.after = None
    world.tracker.issues[entry.iid] = replace(entry, description=entry.description.replace('"user_count":250',
                                                                                           '"user_count":25'))
    (result,) = world.run()
    why = world.status(2).last_error
    assert why.startswith("the record of issued licenses is damaged (") and why.endswith(
        "), so the bot cannot tell whether this ticket or address already has a license; it waits until a person "
        "restores the entry (license-bot doctor names it)")
    assert result == processor.Result(2, "failed", f"held for a person: {why}", (("license", why),))
    status = world.status(2)
    assert (status.step, status.claim, status.author) == ("held", 0, "alice")
    assert len(world.tracker.bot_notes(2)) == 1
    assert world.run() == [processor.Result(2, "skipped", f"held for a person: {why}")]
    world.tracker.issues[entry.iid] = entry  # a person restores the entry
    assert outcomes(world.run()) == ["succeeded"]
    status = world.status(2)
    assert (status.step, status.claim, status.last_error) == ("delivered", 1, None)


def test_a_new_request_held_for_a_damaged_record_says_who_filed_it(world):
    world.tracker.file(filled())
    world.run()
    (entry,) = world.tracker.entry_issues()
    world.tracker.issues[entry.iid] = replace(entry, description=entry.description.replace('"user_count":250',
                                                                                           '"user_count":25'))
    world.tracker.file(filled(ticket="600001", email_="ops@example.org"))
    assert outcomes(world.run()) == ["failed"]
    status = world.status(2)
    assert (status.step, status.author, status.judged_at, status.claim) == ("held", "alice", NOW.isoformat(), -1)
    assert status.description_sha256 == status_mod.description_hash(world.issue(2).description)


def test_a_success_reopened_and_labelled_failed_by_a_person_is_closed_without_the_failed_label(world):
    world.tracker.file(filled())
    world.run()
    world.tracker.issues[1] = replace(world.issue(), state="opened", updated_at=NOW + timedelta(minutes=1))
    world.tracker.label_as(1, "license-request::failed", "alice", 10)
    assert outcomes(world.run()) == ["skipped"]
    assert set(world.issue().labels) == {"license-request", "license-request::success"}
    assert world.issue().state == "closed" and len(world.mailer.sent) == 1
