"""The record's entries are signed over every field, chained, and checked (issue 16, finding 6): the pure audit,
signing through the PKCS#11 token as through a file, and the one-time migration of the old unsigned entries."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import date

import pytest

from bot import license as lic_mod
from bot import record
from bot.record import Entry, Record, audit, entry_note, sign, signed_by
from bot.signer import FileSigner, Pkcs11Signer

from .fakes import NOW, FakeTracker
from .test_pkcs11 import MODULE, PIN, TOKEN, softhsm  # noqa: F401 - the SoftHSM token fixture
from .test_processor import World, filled, outcomes


def _entry(private, n=1, email="ops@example.org", ticket=5) -> tuple[Entry, str]:
    lic = lic_mod.build_trial(email, 7 + n, date(2026, 11, 27), lic_mod.TrialTerms())
    key = lic_mod.sign(lic, private, date(2026, 11, 27), boundary=lic_mod.DEFAULT_BOUNDARY)
    return Entry(lic_mod.license_id(key), lic_mod.fingerprint(key), n, f"u/{n}", email, 7 + n, ticket, f"t/{ticket}",
                 "2026-11-27", str(lic.expires_at), "f.gitlab-license", "", seq=n), key


def _changed(value):
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, int):
        return value + 1
    return value + "x"


def test_an_entry_signed_in_the_token_is_the_file_signers_and_covers_every_field(softhsm, vector):  # noqa: F811
    entry, _ = _entry(vector["private"])
    token = Pkcs11Signer(MODULE, TOKEN, "vector", PIN)
    signature = sign(entry, token)
    assert signature == sign(entry, FileSigner(vector["private"]))  # PKCS#1 v1.5: the same bytes either way
    assert signed_by(entry, signature, [vector["public"]])
    for f in fields(Entry):  # re-pointing, back-dating, re-numbering: any field changed breaks it
        assert not signed_by(replace(entry, **{f.name: _changed(getattr(entry, f.name))}), signature,
                             [vector["public"]]), f.name


def test_a_signature_by_another_key_does_not_count_and_a_list_of_trusted_keys_does(vector, private_key):
    entry, _ = _entry(vector["private"])
    theirs = sign(entry, FileSigner(private_key))
    assert not signed_by(entry, theirs, [vector["public"]])
    assert signed_by(entry, theirs, [vector["public"], private_key.public_key()])  # rotation can list both


def _issue(tracker: FakeTracker, body: str, iid: int):
    issue = tracker.file(body, author=tracker.bot_user, author_id=tracker.bot_id, labels=(), iid=iid)
    tracker.issues[iid] = replace(issue, state="closed")
    return tracker.issues[iid]


def _chain(vector, n=3) -> tuple[FakeTracker, list]:
    tracker, signer, out = FakeTracker(), FileSigner(vector["private"]), []
    prev = ""
    for k in range(1, n + 1):
        entry, key = _entry(vector["private"], k, email=f"c{k}@example.org", ticket=k)
        entry = replace(entry, seq=k, prev=prev)
        signature = sign(entry, signer)
        out.append(_issue(tracker, entry_note(entry, key, signature), 900 + k))
        prev = record.Recorded(entry, key, None, signature).digest
    return tracker, out


def test_an_intact_chain_has_no_problems(vector):
    tracker, _ = _chain(vector)
    checked = audit(tracker.bot_issues(), [vector["public"]])
    assert checked.problems == () and [r.entry.seq for r in checked.entries] == [1, 2, 3]


@pytest.mark.parametrize("attack,expected", [
    ("edit", "record entry issue #902: its entry (license"),
    ("erase", "record entry issue #902: holds no readable record entry"),
    ("delete", "record entry 3 (issue #903): entry 2, the one it follows, is missing"),
    ("swap", "it is older than entry"),
])
def test_an_edited_erased_deleted_or_moved_entry_is_named(vector, attack, expected):
    tracker, issues = _chain(vector)
    two, three = issues[1], issues[2]
    if attack == "edit":
        tracker.issues[two.iid] = replace(two, description=two.description.replace('"ticket_id":2', '"ticket_id":9'))
    elif attack == "erase":
        tracker.issues[two.iid] = replace(two, description="nothing to see")
    elif attack == "delete":
        del tracker.issues[two.iid]
    else:  # entries 2 and 3 trade places
        tracker.issues[two.iid] = replace(two, description=three.description)
        tracker.issues[three.iid] = replace(three, description=two.description)
    problems = audit(tracker.bot_issues(), [vector["public"]]).problems
    assert any(expected in p.line() for p in problems), problems


def test_old_unsigned_entries_are_read_as_before_then_moved_into_the_chain_once(config, private_key):
    world = World(config, private_key)
    old, key = _entry(private_key, 1, email="old@example.org", ticket=41)
    old = replace(old, issue_iid=300, seq=0)  # as the code before signing wrote it
    legacy = world.tracker.file("the old record", author="license-bot", author_id=99, labels=(), iid=950,
                                created=NOW.replace(year=2025))
    world.tracker.comment(legacy.iid, entry_note(old, key), user="license-bot", user_id=99)
    world.tracker.comment(legacy.iid, entry_note(replace(old, license_id="forged"), key), user="mallory", user_id=66)

    reader = Record(world.tracker, [private_key.public_key()])
    assert [r.entry.email for r in reader.unchained()] == ["old@example.org"] and reader.problems() == ()

    world.tracker.file(filled(ticket="41", email_="other@example.org"))  # the old entry's ticket: refused
    world.tracker.file(filled(ticket="42", email_="new@example.org"))
    assert outcomes(world.run()) == ["failed", "succeeded"]
    assert "ticket 41 already got a license" in world.note(1).body
    chain = audit(world.tracker.bot_issues(), [private_key.public_key()])
    assert chain.problems == () and chain.legacy_iid == legacy.iid and not chain.legacy_pending
    assert [(r.entry.seq, r.entry.email, bool(r.entry.legacy_note)) for r in chain.entries] == [
        (1, "old@example.org", True), (2, "new@example.org", False)]
    assert chain.entries[0].entry.prev == f"legacy:#{legacy.iid}:1"

    world.tracker.new_run()
    later = Record(world.tracker, [private_key.public_key()])
    assert len(later.entries()) == 2 and later.unchained() == [] and world.tracker.api_calls == 2  # issues, anchor


def test_a_run_signing_in_the_token_writes_record_entries_that_verify(softhsm, sandbox, tmp_path, vector):  # noqa: F811
    """The PKCS#11 path end to end: the record entry is signed by the key in SoftHSM, and checks out with its
    public half; doctor's record check agrees."""
    from .e2e import client, request_text
    from .test_pkcs11 import _cli, _config

    config = _config(tmp_path, "vector", sandbox.url, sandbox.smtp_port)
    client(sandbox.url).issues.create({"title": "x", "description": request_text(1)})
    assert _cli(config, "run").returncode == 0
    issues = client(sandbox.url, "bot-token").issues.list(author_username="license-bot", state="all", get_all=True)
    checked = audit([_as_issue(i) for i in issues], [vector["public"]])
    assert checked.problems == () and [r.entry.seq for r in checked.entries] == [1]
    assert signed_by(checked.entries[0].entry, checked.entries[0].signature, [vector["public"]])


def _as_issue(api_issue):
    from bot.tracker import Issue

    return Issue.from_api(api_issue.attributes)


def test_a_request_held_for_a_damaged_record_is_judged_once_it_checks_out_even_hours_later(config, private_key):
    from datetime import timedelta

    world = World(config, private_key)
    world.tracker.file(filled())
    assert outcomes(world.run()) == ["succeeded"]
    (entry,) = world.tracker.entry_issues()
    original = entry.description
    world.tracker.issues[entry.iid] = replace(entry, description=original.replace('"user_count":250',
                                                                                  '"user_count":25'))
    world.tracker.file(filled(ticket="600001", email_="other@example.org"))
    assert outcomes(world.run()) == ["failed"]
    assert world.status(2).step == "held" and f"record entry issue #{entry.iid}" in world.note(2).body
    assert "license-request::failed" not in world.issue(2).labels  # else it would not be looked at again
    writes = len(world.tracker.writes)
    assert outcomes(world.run()) == ["skipped"] and len(world.tracker.writes) == writes  # nothing written again
    world.tracker.issues[entry.iid] = replace(entry, description=original)  # a person restores the entry
    assert outcomes(world.run(now=NOW + timedelta(hours=5))) == ["succeeded"]
    assert len(world.mailer.sent) == 2


def test_erasing_the_only_entry_does_not_pass_it_off_as_an_empty_old_record_issue(vector):
    tracker, (one,) = _chain(vector, 1)
    tracker.issues[one.iid] = replace(one, description="License Bot: record of issued licenses")
    problems = Record(tracker, [vector["public"]]).problems()
    assert [p.where for p in problems] == [f"record entry issue #{one.iid}"] and "erased" in problems[0].what


def test_two_overlapping_runs_writing_the_same_entry_or_two_after_the_same_one_is_no_damage(vector):
    """Runs can overlap if the run lock is broken: the same license recorded twice (the same signed text) and
    two licenses both chained after the same entry are genuine, not a gap: no request is held for them."""
    tracker, issues = _chain(vector, 2)
    _issue(tracker, issues[1].description, 910)  # entry 2 written again by an overlapping run
    fork, key = _entry(vector["private"], 7, email="fork@example.org", ticket=7)
    first = audit([issues[0]], [vector["public"]]).entries[0]
    fork = replace(fork, seq=2, prev=first.digest)
    _issue(tracker, entry_note(fork, key, sign(fork, FileSigner(vector["private"]))), 911)
    checked = audit(tracker.bot_issues(), [vector["public"]])
    assert checked.problems == () and sorted(r.entry.email for r in checked.entries) == [
        "c1@example.org", "c2@example.org", "fork@example.org"]


def test_a_dry_run_shows_a_record_repair_without_the_key(vector):
    from bot.dryrun import DryRunTracker
    from bot.tracker import IssueEdit

    entry, key = _entry(vector["private"])
    tracker, (one,) = _chain(vector, 1)
    printed: list[str] = []
    DryRunTracker(tracker, printed.append).edit_issue(one, IssueEdit(description=entry_note(entry, key)))
    assert len(printed) == 1 and "would change issue #901: rewrite its description, reading:" in printed[0]
    assert key not in printed[0] and "[the license key:" in printed[0]


def _refused_world(config, private_key, email="first@example.org"):
    from bot.mailer import MailError

    world = World(config, private_key)
    world.tracker.file(filled(email_=email))
    world.mailer.fail = [MailError("the mail server refused the recipient (x: the address does not exist (550 5.1.1))",
                                   permanent=True)]
    assert outcomes(world.run()) == ["failed"]
    return world


def test_a_refusal_is_a_signed_chained_entry_of_its_own(config, private_key):
    # Issue 18 in issue 16's record: "the record says so" for a refused license is a follow-up entry the bot
    # opens, signs and chains like any other, so a refused license counts for no rule only on the bot's word.
    world = _refused_world(config, private_key)
    license_entry, refusal = world.tracker.entry_issues()
    assert refusal.author_id == world.tracker.bot_id and refusal.confidential and refusal.state == "closed"
    checked = audit(world.tracker.bot_issues(), [private_key.public_key()])
    assert checked.problems == () and [r.entry.seq for r in checked.entries] == [1]
    (follow_up,) = checked.follow_ups
    assert (follow_up.entry.seq, follow_up.entry.prev) == (2, checked.entries[0].digest)
    assert follow_up.entry.delivery == record.REFUSED and checked.head == follow_up
    reader = Record(world.tracker, [private_key.public_key()])
    assert reader.refused(checked.entries[0].entry.license_id).why == "the address does not exist (550 5.1.1)"
    assert reader.problems() == ()  # the anchor names the follow-up as the chain's head
    # Deleting the newest follow-up (a Planner or Owner may) is seen through the anchor: no silent "never refused".
    del world.tracker.issues[refusal.iid]
    assert any("record entry 2" in p.line() and "missing" in p.line()
               for p in Record(world.tracker, [private_key.public_key()]).problems())


def test_nobody_below_the_bot_can_forge_a_refusal_to_get_a_second_license(config, private_key):
    # Finding: "refused" frees a ticket for a second license, so it must be as hard to forge as an entry. A
    # Maintainer who edits a delivered license's entry to say "refused" breaks its signature (the record is then
    # damaged and every new request held); a genuine refusal copied into an issue someone else opens does not
    # count (only issues the bot's user opened are read).
    world = World(config, private_key)
    world.tracker.file(filled(email_="first@example.org"))
    assert outcomes(world.run()) == ["succeeded"]
    (entry,) = world.tracker.entry_issues()
    forged = entry.description.replace('"email"', '"delivery":"refused","delivery_on":"2026-11-27",'
                                                  '"delivery_why":"550","email"')
    assert record.parse_entry(forged)[0].delivery == record.REFUSED
    world.tracker.issues[entry.iid] = replace(entry, description=forged)
    reader = Record(world.tracker, [private_key.public_key()])
    license_id = record.parse_entry(entry.description)[0].license_id
    assert "carries no signature by a trusted key" in reader.damage() and reader.refused(license_id) is None

    genuine = _refused_world(config, private_key).tracker.entry_issues()[1].description  # signed by the same key
    world.tracker.issues[entry.iid] = entry  # restored
    world.tracker.file(genuine, author="mallory", author_id=66, labels=(), iid=950)
    reader = Record(world.tracker, [private_key.public_key()])
    assert reader.problems() == () and reader.audit().follow_ups == ()
    world.tracker.issues[1] = replace(world.issue(), state="opened", updated_at=NOW,
                                      description=filled(email_="second@example.org"))
    world.run()
    assert len(world.mailer.sent) == 1  # the one license the ticket got; no second for another address


def test_the_bots_home_issue_is_no_erased_entry_and_its_text_alone_makes_no_home(vector):
    """Bugs caught: the home issue the run lock opens on a fresh project (the oldest issue the bot opened, which
    never holds an entry) read as an erased first entry, holding every request for a person; and a Reporter who
    writes the home's title and text over the only entry must not pass the erasure off as the home: only the
    bot's own :robot: reaction, which nobody below the bot can make, marks it."""
    tracker = FakeTracker()
    home = tracker.home_issue(create=(record.HOME_TITLE, record.HOME_DESCRIPTION, record.HOME_EMOJI))
    assert tracker.issues[home].confidential and Record(tracker, [vector["public"]]).problems() == ()
    forged, (one,) = _chain(vector, 1)
    forged.issues[one.iid] = replace(one, title=record.HOME_TITLE, description=record.HOME_DESCRIPTION)
    forged.react(one.iid, record.HOME_EMOJI, "carol", 30)  # someone else's :robot: is no mark
    problems = Record(forged, [vector["public"]]).problems()
    assert [p.where for p in problems] == [f"record entry issue #{one.iid}"] and "erased" in problems[0].what


def test_a_fresh_project_gets_one_home_issue_that_is_never_a_request_and_never_damages_the_record(config,
                                                                                                   private_key):
    """Bug caught: the lock's home on a project where the bot opened nothing yet. The run opens it once (marked),
    the license is recorded after it without a problem, the next run locks on the same issue, and the home
    made into a request (any Reporter may label it and rewrite it) is skipped as the bot's own issue."""
    from bot import runner

    world = World(config, private_key)

    def run() -> list[str]:
        world.tracker.new_run()
        ctx = runner.Context(config=config, tracker=world.tracker, mailer=world.mailer, signer=private_key, now=NOW)
        lines: list[str] = []
        runner.run(ctx, say=lines.append)
        return lines

    world.tracker.file(filled())
    assert "#1 succeeded" in " ".join(run())
    home = world.tracker.home_iid
    assert [w for w in world.tracker.writes if w[0] == "home-issue"] == [("home-issue", home, None)]
    assert any(a.name == record.HOME_EMOJI for a in world.tracker.reactions[home])
    assert Record(world.tracker, [private_key.public_key()]).problems() == ()
    world.tracker.issues[home] = replace(world.tracker.issues[home], labels=("license-request",),
                                         description=filled(email_="x@example.com"), updated_at=NOW)
    world.tracker.file(filled(email_="second@example.com", ticket="512399"))
    lines = " ".join(run())
    assert f"#{home} skipped: the bot opened this issue itself" in lines and "#2 succeeded" in lines
    assert [w for w in world.tracker.writes if w[0] == "home-issue"] == [("home-issue", home, None)]
    assert [m["To"] for m in world.mailer.sent] == ["jane.doe@example.com", "second@example.com"]


def test_a_second_home_issue_after_a_token_change_is_no_erased_entry(vector):
    """Bug caught: a run as a new bot user (a token change) before `requests.record_authors` listed the old one
    opened its own home issue; once the old user is listed, that home sits among the entries and read as an
    erased one, holding every request. Only an issue its own author marked with :robot: is passed over."""
    tracker, (one, two) = _chain(vector, 2)
    home = _issue(tracker, record.HOME_DESCRIPTION, 950)
    tracker.react(home.iid, record.HOME_EMOJI, tracker.bot_user, tracker.bot_id)
    assert Record(tracker, [vector["public"]]).problems() == ()
    tracker.reactions[home.iid] = []  # unmarked: an entry someone overwrote with the home's text
    problems = Record(tracker, [vector["public"]]).problems()
    assert [p.where for p in problems] == [f"record entry issue #{home.iid}"]
