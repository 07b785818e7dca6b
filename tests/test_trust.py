"""Issue 16 in the in-memory world, fast: the claim keeps overlapping runs to one email, and nothing the bot
believes about an issue's past rests on label history."""

from __future__ import annotations

from dataclasses import replace

from bot import processor, runner

from .fakes import NOW
from .test_processor import World, filled, outcomes


def test_a_run_working_from_a_stale_view_never_sends_again_and_leaves_one_status_note(config, private_key):
    """Run A listed the request and read the record; run B (the lock deleted under A) served it meanwhile.
    A's claim reaction is refused (GitLab creates a user's reaction once per issue), so A sends nothing and
    takes back the status note it had just announced its claim in."""
    world = World(config, private_key)
    world.tracker.file(filled())
    world.tracker.new_run()
    a = runner.Context(config=config, tracker=world.tracker, mailer=world.mailer, signer=private_key, now=NOW)
    stale, = world.tracker.open_requests()
    a.record.entries()  # A's view of the record: empty
    assert outcomes(world.run()) == ["succeeded"]  # B
    result = processor.process(stale, a)
    assert result.outcome == "retrying" and "another run claimed this request" in result.detail
    assert len(world.mailer.sent) == 1 and len(world.tracker.uploads) == 1
    assert world.note() is not None and world.status().step == "delivered"  # one status note, B's


def test_wiping_label_history_status_note_and_record_entry_still_never_yields_a_second_license(config, private_key):
    """Label history is rewritable (a Reporter deletes and re-creates a label: its events lose their label);
    the bot's claim reaction is not (only the bot or an admin removes it). Even with the record's entry and its
    anchor gone too, the claim alone holds the issue."""
    world = World(config, private_key)
    world.tracker.file(filled())
    world.run()
    world.tracker.notes[1] = []
    world.tracker.erase_record_entries()
    world.tracker.anchor = None  # and the record's anchor (only an admin could): the record looks empty
    world.tracker.system.pop(1, None)  # even GitLab's own "closed" note, which nobody below an admin can delete
    world.tracker.issues[1] = replace(world.issue(), state="opened", labels=("license-request",),
                                      updated_at=NOW.replace(hour=4), description=filled(email_="x@example.com"))
    assert outcomes(world.run()) == ["failed"]
    assert "the bot claimed this issue before" in world.note().body
    assert len(world.mailer.sent) == 1 and len(world.tracker.uploads) == 1


def test_an_override_label_alone_approves_nothing(config, private_key):
    """Before issue 16 the latest adder of the override label was the approver; a Reporter who renames labels
    can forge that. Now only an approver's own reaction approves."""
    world = World(config, private_key)
    world.tracker.file(filled(expired="2026-09-01"), labels=("license-request", "license-request-override"))
    world.tracker.label_as(1, "license-request-override", "mike", 12)
    assert outcomes(world.run()) == ["failed"]
    assert "no approver reacted with :key:" in world.note().body and world.mailer.sent == []
