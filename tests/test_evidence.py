"""Issue 16's trust decisions, pure: who wrote a request, whether an approval holds, which claim a run may take,
and outside text that can never start a quick action."""

from __future__ import annotations

from datetime import timedelta

from bot import messages
from bot.evidence import APPROVAL_EMOJI, Edit, Evidence, claim_attempt
from bot.inert import Verbatim, inert
from bot.status import Status
from bot.tracker import Award

from .fakes import NOW

ALICE, CAROL, MIKE, BOT = 10, 11, 12, 99


def at(seconds: int):
    return NOW + timedelta(seconds=seconds)


def evidence(edits=(), awards=(), requesters=None, approvers=None) -> Evidence:
    return Evidence(ALICE, "alice", BOT, tuple(edits), tuple(awards), False,
                    requesters if requesters is not None else {ALICE: True, CAROL: False, MIKE: True},
                    approvers if approvers is not None else {MIKE: True, ALICE: False, CAROL: False})


def key(user_id, name, seconds, award_id=1):
    return Award(award_id, APPROVAL_EMOJI, user_id, name, at(seconds))


# Finding 1: every writer of the description counts.

def test_an_edit_by_someone_who_may_not_request_stands_until_a_requester_saves_it_again():
    carol = Edit(CAROL, "carol", at(5))
    assert evidence([carol]).unauthorised_editor() == carol
    assert evidence([carol, Edit(CAROL, "carol", at(6))]).unauthorised_editor().created_at == at(6)
    assert evidence([carol, Edit(ALICE, "alice", at(7))]).unauthorised_editor() is None  # alice vouches for it
    assert evidence([Edit(ALICE, "alice", at(7)), carol]).unauthorised_editor() == carol  # the order matters
    assert evidence([Edit(MIKE, "mike", at(7))]).unauthorised_editor() is None
    # An author who may not request is refused as the author (the policy's rule), not once more as an editor.
    assert evidence([Edit(ALICE, "alice", at(7))], requesters={ALICE: False}).unauthorised_editor() is None


# Finding 3: an approval holds for the description the approver saw.

def test_an_approval_made_before_the_last_edit_is_void_and_says_why():
    approval, why = evidence([Edit(ALICE, "alice", at(9))], [key(MIKE, "mike", 5)]).approval()
    assert approval is None and "@mike approved at" in why and "@alice changed the description at" in why
    assert "so it is void" in why
    approval, why = evidence([Edit(ALICE, "alice", at(4))], [key(MIKE, "mike", 5)]).approval()
    assert approval.username == "mike" and why is None


def test_a_writer_or_a_non_approver_never_approves():
    assert evidence(awards=[key(ALICE, "alice", 5)]).approval()[1] == "@alice wrote this request and may not approve it"
    carol_edit = [Edit(CAROL, "carol", at(1))]
    # mike may approve, but he edited the description: a writer does not approve their own request.
    assert "wrote this request" in evidence([Edit(MIKE, "mike", at(1))], [key(MIKE, "mike", 5)]).approval()[1]
    assert evidence(carol_edit, [key(CAROL, "carol", 5)]).approval()[0] is None
    assert "no approver reacted" in evidence().approval()[1]


# Finding 5: one claim per attempt, taken over only from a run that is gone.

CLAIM_AT = at(0)


def claims(n):
    return [Award(i + 1, "one", BOT, "license-bot", CLAIM_AT) for i in range(n)]


def attempt(n, announced, holder, alive=True, now=None):
    return claim_attempt(claims(n), announced, holder, me="here:1", alive=lambda h: alive, now=now or at(60),
                         stale_after=timedelta(minutes=15))


def test_claims_are_taken_in_order_and_only_from_runs_that_are_gone():
    assert attempt(0, -1, None) == (0, "")                       # nobody claimed it
    assert attempt(1, 0, None)[0] == 1                           # the last attempt finished and said so
    assert attempt(1, 0, "here:7", alive=False)[0] == 1          # its run died: taken over, a crash re-send
    assert attempt(1, 0, "here:7", alive=True)[0] is None        # its run is still at it: left alone
    assert "is making or emailing" in attempt(1, 0, "ci-7:4", alive=True)[1]
    assert attempt(1, -1, None)[0] is None                       # claimed, holder unknown (note lost): wait...
    assert attempt(1, -1, None, now=at(16 * 60))[0] == 1         # ...until it is stale
    assert attempt(0, 0, "here:7", alive=True)[0] is None        # announced, not yet reacted, holder alive
    assert attempt(0, 0, "here:7", alive=False) == (0, "")       # announced and died before reacting
    assert attempt(1, 0, "here:1", alive=True)[0] == 1           # an earlier run of this same process


# Finding 7: outside text never reaches a line start as a quick action.

def test_inert_text_has_no_line_starting_with_a_slash_and_keeps_the_bots_own_text():
    """GitLab deletes every \\r first, then runs `/cmd` only at a line's very start
    (lib/gitlab/quick_actions/extractor.rb: `content.delete!("\\r")`, `^\\/(?<cmd>...)`)."""
    hostile = "/close\nACME\r\n/label ~x\n\r/reopen"
    text = inert(hostile)
    assert not any(line.startswith("/") for line in text.replace("\r", "").split("\n"))
    assert text == " /close\nACME\n /label ~x\n /reopen"
    assert inert(Verbatim("/own")) == "/own"


def test_every_outside_field_of_the_status_note_is_inert():
    hostile = "x\r\n/close\n/label ~\"license-request::success\""
    status = Status(step="delivered", description_sha256="0", judged_at=NOW.isoformat(), author="alice",
                    license_id="abc", license_sha256="0", email=hostile, user_count=5, ticket_url=hostile,
                    ticket_id=1, issued_at="2026-11-27", expires_at="2026-12-07", file_name=hostile,
                    upload_markdown=hostile, emailed_at=NOW.isoformat(), message_id=hostile, last_error=hostile,
                    notices=(hostile,), warnings=(("email", hostile),), approved_by=hostile, ticket_status=hostile,
                    ticket_requester=hostile, ticket_organization=hostile)
    body = messages.status_note(status, key_text="-----BEGIN GITLAB LICENSE-----\n/abc\n-----END GITLAB LICENSE-----",
                                labels={"failed": "f", "processing": "p"}, duration_days=10, max_attempts=3)
    starts = [line for line in body.split("\n") if line.startswith("/")]
    assert starts == ["/abc"]  # the bot's own key, written exactly
    rejected = Status(step="rejected", description_sha256="0", judged_at=NOW.isoformat(), author="alice",
                      errors=(("email", hostile),))
    body = messages.status_note(rejected, labels={"failed": "f", "processing": "p"}, duration_days=10,
                                max_attempts=3)
    assert not any(line.startswith("/") for line in body.split("\n"))
