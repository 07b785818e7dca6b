"""Golden files for the notes the status-note steps do not cover (issue 18, "How it must be shown": every note):
the Zendesk internal note, the Slack post, the record's refusal entry, the failure note with every kind of actor,
and the status note's less common states. A wording change is a reviewed diff."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot import messages, record
from bot.status import Status

from . import golden
from .test_what_people_read import NOW, _status, delivery  # noqa: F401 - the fixture
from .test_who_can_act import _policy_messages

LABELS = {"failed": "license-request::failed", "processing": "license-request::processing"}
DELIVERED = {"step": "delivered", "emailed_at": "2026-11-27T03:00:05+00:00", "attempts": 1,
             "message_id": "<license-abc@example.com>"}


def test_the_zendesk_internal_note_says_what_happened_first(delivery):  # noqa: F811
    status = _status(delivery, **DELIVERED)
    body = messages.render("zendesk_note.txt.j2", status=status, duration_days=10,
                           issue_url="https://gitlab.example.com/support/internal-requests/-/issues/1").strip()
    golden.check("zendesk-note.txt", body + "\n")
    assert body.index("was emailed to") < body.index("Message-ID")


def test_the_slack_post(delivery):  # noqa: F811
    text = messages.slack_text(_status(delivery, **DELIVERED), "https://gitlab.example.com/x/-/issues/1", 10)
    golden.check("slack.txt", text + "\n")


def test_the_records_refusal_entry():
    # A refusal is a follow-up entry in the signed chain (one bot-opened issue): the license restated, with what
    # became of its delivery. The golden file is what a person reads on that issue.
    entry = record.Entry("3f437e97f4c64a48", "ab" * 32, 12, "https://gitlab.example.com/x/-/issues/12",
                         "jane@exmaple.com", 250, 512345, None, "2026-11-27", "2026-12-07", "x.gitlab-license",
                         seq=3, prev="cd" * 32)
    key = "-----BEGIN GITLAB LICENSE-----\nZmFrZQ==\n-----END GITLAB LICENSE-----"
    refused = replace(entry, seq=4, prev="ef" * 32, delivery=record.REFUSED,
                      delivery_why="the address does not exist (550 5.1.1)", delivery_on="2026-11-27")
    body = record.entry_note(refused, key, "c2lnbmF0dXJl")
    golden.check("record-refusal.md", body)
    assert record.parse_entry(body) == (refused, key)
    assert refused.refusal() == record.Refusal("3f437e97f4c64a48", 12, "jane@exmaple.com", True,
                                               "the address does not exist (550 5.1.1)", "2026-11-27")
    delivered = replace(refused, seq=5, delivery=record.DELIVERED, delivery_why="a person's re-send",
                        delivery_on="2026-11-28")
    golden.check("record-refusal-lifted.md", record.entry_note(delivered, key, "c2lnbmF0dXJl"))
    assert not delivered.refusal().refused
    # The license's own entry signs exactly the fields it signed before follow-ups existed.
    assert b"delivery" not in entry.payload() and "delivery" not in record.entry_note(entry, key)


def test_the_failure_note_with_every_actor():
    made = _policy_messages()
    problems = [made[k] for k in ("user count", "screenshots box", "same ticket", "author", "renewal",
                                  "unreadable ticket")]
    golden.check("failure-every-actor.md", messages.failure("alice", problems))


@pytest.mark.parametrize("name, changes", [
    ("emailed-ticket-note-waits", {**DELIVERED, "ticket_noted": False, "ticket_attempts": 1,
                                   "last_error": "the internal note on ticket 512345 failed (Zendesk is down or "
                                                 "overloaded for now (503))"}),
    ("internal-error", {"internal_errors": 1, "last_error": "the bot hit an internal error (KeyError at "
                                                            "processor.py:120) on attempt 1 of 5"}),
])
def test_the_status_note_in_its_less_common_states(delivery, name, changes):  # noqa: F811
    body = messages.status_note(_status(delivery, **changes), key_text=delivery.key_text, labels=LABELS,
                                duration_days=10, max_attempts=5)
    golden.check(f"status-note-{name}.md", body)


def test_a_rejected_request_retrying_starts_with_a_capital_and_keeps_success_as_written():
    status = Status(step="rejected", description_sha256="0", judged_at=NOW.isoformat(), author="alice",
                    last_error="the issue was closed [Success] by hand while the bot judged it")
    body = messages.status_note(status, labels=LABELS, duration_days=10, max_attempts=5)
    golden.check("status-note-retrying-rejected.md", body)
    assert "The issue was closed [Success] by hand" in body  # Jinja's capitalize said "[success]"
