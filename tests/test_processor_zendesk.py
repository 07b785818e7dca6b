"""The license left on its Zendesk ticket (issue 11), in-process over an in-memory Zendesk (`fakes.FakeZendesk`),
so that a mutation tool sees what these paths cover (issue 22): test_zendesk.py runs the same over HTTP.

Zendesk facts relied on: an internal note is a ticket comment with `"public": false`, added by updating the
ticket with `{"ticket": {"comment": {"body": ..., "public": false, "uploads": [token]}}}`, and the Ticket Comments
API lists every comment with its `public` flag (developer.zendesk.com/api-reference/ticketing/tickets/
ticket_comments/; bot/zendesk.py `add_internal_note`, `comments`); a closed ticket takes no update (422,
/work/shared/reference/zendesk-notes.md).
"""

from __future__ import annotations

import pytest

from bot.zendesk import CLOSED, TICKET, ZendeskError

from .fakes import NOW, FakeZendesk
from .test_processor import World, filled, outcomes


@pytest.fixture
def zd():
    zendesk = FakeZendesk()
    zendesk.add_ticket()
    return zendesk


@pytest.fixture
def zworld(config, private_key, zd):
    return World(config, private_key, zendesk=zd)


def details(results):
    return [r.detail for r in results]


def test_the_license_note_goes_on_the_ticket_once_with_the_file_and_the_tag(zworld, zd):
    zworld.tracker.file(filled())
    (result,) = zworld.run()
    status = zworld.status()
    assert result.detail == (f"license {status.license_id} sent to jane.doe@example.com; internal note on ticket "
                             "512345 posted")
    (note,) = zd.internal_notes()
    assert note["body"].startswith(f"License Bot: emergency license {status.license_id} was emailed to "
                                   "jane.doe@example.com on 2026-11-27 03:00 UTC.")
    assert zworld.issue().web_url in note["body"]
    assert ("\n\nA 10-day Ultimate trial for 250 users, from 2026-11-26 to 2026-12-07. The license file is attached "
            "to this note") in note["body"]
    (attached,) = note["attachments"]
    assert attached == {"file_name": "GitLabSupportEmergencyTrial.gitlab-license",
                        "data": zworld.tracker.uploads[0][1]}
    assert zd.tickets[512345]["tags"] == {"emergency_license_issued"}
    assert (status.ticket_noted, status.ticket_file, status.ticket_attempts) == (True, True, 0)
    assert "internal note and tag added" in zworld.note().body
    assert zworld.issue().state == "closed"


def test_an_agents_internal_note_on_the_ticket_does_not_stop_the_license_note(zworld, zd):
    """Issue 22: "any internal note on the ticket stops the license note" survived. Agents leave internal notes
    on a ticket all the time; only the bot's own note (it carries the license id) means it was posted."""
    zd.tickets[512345]["comments"].append({"public": False, "body": "Customer called, very urgent", "attachments": []})
    zworld.tracker.file(filled())
    zworld.run()
    notes = zd.internal_notes()
    assert len(notes) == 2 and zworld.status().license_id in notes[1]["body"]


def test_a_public_comment_quoting_the_license_id_does_not_stop_the_license_note(zworld, zd):
    """The customer replying to the email (which names the license id) is a public comment, not the note."""
    zworld.tracker.file(filled())
    zd.fail["note"] = [ZendeskError("could not add an internal note: Zendesk answered 503", transient=True)]
    assert outcomes(zworld.run()) == ["retrying"]
    license_id = zworld.status().license_id
    zd.tickets[512345]["comments"].append({"public": True, "body": f"Got license {license_id}, thanks",
                                           "attachments": []})
    assert outcomes(zworld.run()) == ["succeeded"]
    assert len(zd.internal_notes()) == 1


def test_a_note_posted_before_a_failed_tag_is_not_posted_twice(zworld, zd):
    """The note landed, then the tag failed: the next run finds the note by its license id and only tags."""
    zworld.tracker.file(filled())
    zd.fail["tag"] = [ZendeskError("could not tag ticket 512345: Zendesk answered 503", transient=True)]
    (result,) = zworld.run()
    status = zworld.status()
    assert (result.iid, result.outcome) == (1, "retrying")
    assert result.detail == (f"license {status.license_id} emailed; the internal note on ticket 512345 failed "
                             "(could not tag ticket 512345: Zendesk answered 503); the note is tried again at the "
                             "next run")
    assert (status.step, status.ticket_noted, status.ticket_attempts) == ("delivered", False, 1)
    assert zworld.issue().state == "opened"
    assert outcomes(zworld.run()) == ["succeeded"]
    assert len(zd.internal_notes()) == 1 and zd.tickets[512345]["tags"] == {"emergency_license_issued"}
    assert len(zworld.mailer.sent) == 1 and zworld.issue().state == "closed"
    assert (zworld.status().ticket_noted, zworld.status().last_error) == (True, None)


def test_a_note_that_keeps_failing_is_given_up_after_max_attempts_with_what_to_post(zworld, zd):
    zworld.tracker.file(filled())
    zd.fail["note"] = [ZendeskError("could not add an internal note: Zendesk answered 500", transient=True)] * 5
    results = [outcomes(zworld.run()) for _ in range(5)]
    assert results == [["retrying"]] * 4 + [["succeeded"]]
    status = zworld.status()
    assert (status.ticket_attempts, status.ticket_gave_up, status.ticket_noted) == (5, True, False)
    assert status.last_error is None  # given up: nothing is pending any more
    assert status.notices == (
        "the internal note on ticket 512345 failed (could not add an internal note: Zendesk answered 500); the bot "
        "gave up after 5 attempts. Post it by hand: an internal note on ticket 512345 with this issue's link and "
        "the attached license file, and the tag `emergency_license_issued`.",)
    assert zd.internal_notes() == [] and len(zworld.mailer.sent) == 1 and zworld.issue().state == "closed"


def test_the_run_says_when_the_note_was_not_posted(zworld, zd):
    zworld.tracker.file(filled())
    zd.fail["note"] = [ZendeskError("could not add an internal note: the ticket is closed", kind=CLOSED,
                                    status=422)]
    (result,) = zworld.run()
    assert result.outcome == "succeeded"
    assert result.detail.endswith("; the internal note on ticket 512345 was NOT posted: post it by hand (see the "
                                  "issue)")


def test_a_closed_ticket_is_given_up_at_once_and_points_at_a_follow_up(zworld, zd):
    zworld.tracker.file(filled())
    zd.fail["note"] = [ZendeskError("could not add an internal note: the ticket is closed", kind=CLOSED,
                                    status=422)]
    assert outcomes(zworld.run()) == ["succeeded"]
    (notice,) = zworld.status().notices
    assert notice == (
        "the internal note on ticket 512345 failed (could not add an internal note: the ticket is closed); the bot "
        "gave up after 1 attempt. Post it by hand: an internal note on the follow-up ticket of ticket 512345 "
        "(closed tickets take no notes) with this issue's link and the attached license file, and the tag "
        "`emergency_license_issued`.")


def test_a_deleted_ticket_is_given_up_at_once_and_says_so(zworld, zd):
    zworld.tracker.file(filled())
    zd.fail["comments"] = [ZendeskError("could not read the comments: Zendesk answered 404", kind=TICKET, status=404)]
    assert outcomes(zworld.run()) == ["succeeded"]
    (notice,) = zworld.status().notices
    assert "on the ticket where the customer's case continues (ticket 512345 no longer exists)" in notice
    assert "gave up after 1 attempt." in notice


def test_a_ticket_the_api_user_may_not_change_is_tried_again(zworld, zd):
    """A 403 can be a group or brand setting someone fixes: not final, unlike a 404."""
    zworld.tracker.file(filled())
    zd.fail["note"] = [ZendeskError("could not add an internal note: Zendesk does not let the API user do this "
                                    "(403)", kind=TICKET, status=403)]
    assert outcomes(zworld.run()) == ["retrying"]
    assert outcomes(zworld.run()) == ["succeeded"]
    assert len(zd.internal_notes()) == 1 and zworld.status().notices == ()


def test_a_refused_file_type_is_said_on_the_run_line(zworld, zd):
    zd.refuse_files = True
    zworld.tracker.file(filled())
    (result,) = zworld.run()
    assert result.detail.endswith("; internal note on ticket 512345 posted WITHOUT the file (its type is refused)")
    assert zworld.status().ticket_file is False


def test_with_internal_notes_off_only_the_tag_is_added(config, private_key, zd):
    from dataclasses import replace
    cfg = replace(config, zendesk=replace(config.zendesk, internal_note=False))
    w = World(cfg, private_key, zendesk=zd)
    w.tracker.file(filled())
    assert outcomes(w.run()) == ["succeeded"]
    assert zd.internal_notes() == [] and zd.tickets[512345]["tags"] == {"emergency_license_issued"}


def test_wrong_zendesk_credentials_after_the_email_stop_the_run_and_never_send_again(zworld, zd):
    zworld.tracker.file(filled())
    zd.fail["comments"] = [ZendeskError("could not read the comments: Zendesk refused the API user (401)",
                                        config=True, status=401)]
    with pytest.raises(ZendeskError) as raised:
        zworld.run()
    status = zworld.status()
    assert str(raised.value) == (
        f"#1: license {status.license_id} was emailed (saved on the issue; it is never sent again), then could not "
        "read the comments: Zendesk refused the API user (401)")
    assert raised.value.config and raised.value.status == 401
    assert (status.step, status.ticket_attempts) == ("delivered", 1)
    assert outcomes(zworld.run()) == ["succeeded"]
    assert len(zworld.mailer.sent) == 1 and len(zd.internal_notes()) == 1


def test_a_ticket_zendesk_will_not_show_fails_the_request_naming_the_answer(zworld, zd):
    zd.fail["ticket"] = [ZendeskError("could not read ticket 512345: Zendesk does not let the API user do this "
                                      "(403)", kind=TICKET, status=403)]
    zworld.tracker.file(filled())
    assert outcomes(zworld.run()) == ["failed"]
    assert "Zendesk answered 403" in zworld.note().body
    assert zworld.mailer.sent == [] and zworld.tracker.uploads == []


def test_zendesk_down_while_judging_makes_nothing(zworld, zd):
    zd.fail["ticket"] = [ZendeskError("could not read ticket 512345: Zendesk answered 503", transient=True)]
    zworld.tracker.file(filled())
    with pytest.raises(ZendeskError, match="503"):
        zworld.run()
    assert zworld.mailer.sent == [] and zworld.tracker.uploads == [] and zworld.note() is None


def test_a_request_without_a_ticket_number_is_not_looked_up(zworld, zd):
    zworld.tracker.file(filled(ticket="see the customer's email"))
    assert outcomes(zworld.run()) == ["failed"]
    assert zd.calls == []


def test_a_bug_that_repeats_after_the_email_ends_as_a_success_with_the_note_left_to_a_person(config, private_key, zd):
    """An unexpected error after the email (here in reading the ticket) gives up after run.max_attempts like any
    other, but an emailed license is never "not delivered": the issue is closed [Success] and the note on the
    ticket is left to a person, who is told so."""
    from bot import runner

    w = World(config, private_key, zendesk=zd)
    w.tracker.file(filled())
    zd.fail["comments"] = [RuntimeError("boom")] * 5
    results = []
    for _ in range(5):
        w.tracker.new_run()
        ctx = runner.Context(config=w.config, tracker=w.tracker, mailer=w.mailer, signer=w.key, now=NOW,
                             zendesk=zd)
        results.append(runner.run(ctx, say=lambda _: None).results[0])
    assert [r.outcome for r in results] == ["retrying"] * 4 + ["succeeded"]
    assert results[-1].detail.endswith("; the internal note on ticket 512345 was NOT posted: post it by hand (see "
                                       "the issue)")
    status = w.status()
    assert (status.step, status.internal_errors, status.ticket_gave_up) == ("delivered", 5, True)
    (notice,) = status.notices
    assert notice.startswith("the bot hit an internal error (RuntimeError at fakes.py:")
    assert notice.endswith("on attempt 5 of 5; it gives up. Report it to the bot's maintainers with this issue's "
                           "link; anything still missing on the ticket is posted by hand")
    assert w.issue().state == "closed" and len(w.mailer.sent) == 1 and zd.internal_notes() == []
