"""The record's pure core (bot/record.py), fast and in-process (issue 22, finding 3): reading old entries and
auditing entry issues, checking a key against its entry, the retry path of `Record.add`. Each test names the
bug it catches; the record as one signed, chained issue per license is pinned in tests/test_record*.py too, but
over whole runs: these catch the same bugs in milliseconds, so mutation testing stays fast."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from bot import license as lic_mod
from bot import record
from bot.policy import PriorLicense
from bot.record import Record, Recorded, audit, entry_note, sign, verify, verify_with
from bot.signer import FileSigner

from .fakes import FakeTracker
from .test_record import _chain, _entry, _issue


@pytest.fixture
def trusted(vector):
    return [vector["public"]]


# --- old entries, as comments on the old record issue ---------------------------------------------------------

def _legacy(tracker: FakeTracker, *comments: tuple[str, int]) -> int:
    legacy = tracker.file("the old record", author=tracker.bot_user, author_id=tracker.bot_id, labels=(), iid=850)
    for body, user_id in comments:
        tracker.comment(legacy.iid, body, user="license-bot" if user_id == tracker.bot_id else "mallory",
                        user_id=user_id)
    return legacy.iid


def test_a_comment_not_by_the_bot_hides_no_later_old_entry(vector, trusted):
    # Bug caught: `continue` -> `break` on a comment by someone else dropped every later license from the record.
    one, key1 = _entry(vector["private"], 1, email="one@example.org")
    two, key2 = _entry(vector["private"], 2, email="two@example.org")
    tracker = FakeTracker()
    iid = _legacy(tracker, ("thanks!", 10), (entry_note(replace(one, seq=0), key1), 99),
                  (entry_note(replace(two, seq=0, license_id="forged"), key2), 66),
                  ("not an entry", 99), (entry_note(replace(two, seq=0), key2), 99))
    found = record.read(tracker.comments(iid), 99, trusted)
    assert [(r.entry.email, r.entry.legacy_note) for r in found] == [("one@example.org", 850002),
                                                                    ("two@example.org", 850005)]
    assert [r.license.email for r in found] == ["one@example.org", "two@example.org"]


def test_an_old_entry_written_twice_counts_once_and_hides_no_later_one(vector, trusted):
    one, key1 = _entry(vector["private"], 1, email="one@example.org")
    two, key2 = _entry(vector["private"], 2, email="two@example.org")
    bad = replace(two, seq=0, user_count=two.user_count + 1)  # its key says otherwise: not verified
    tracker = FakeTracker()
    iid = _legacy(tracker, (entry_note(replace(one, seq=0), key1), 99), (entry_note(replace(one, seq=0), key1), 99),
                  (entry_note(bad, key2), 99), (entry_note(replace(two, seq=0), key2), 99))
    found = record.read(tracker.comments(iid), 99, trusted)
    assert [(r.entry.email, r.entry.user_count, r.entry.legacy_note) for r in found] == [
        ("one@example.org", 8, 850001), ("two@example.org", 9, 850004)]


# --- the audit of entry issues -----------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["erase", "unsigned", "forged signature", "key changed"])
def test_a_damaged_entry_hides_no_later_license(vector, trusted, damage):
    # Bug caught: `continue` -> `break` after a damaged entry: every later license vanished from the record, so
    # its ticket and address could get a second one once the damage was put right... or before.
    tracker, (one, two, three) = _chain(vector, 3)
    entry, key, signature = record._parse(two.description)
    other_key = _entry(vector["private"], 5)[1]
    text = {"erase": "nothing here",
            "unsigned": entry_note(entry, key),
            "forged signature": entry_note(entry, key, "AAAA" + signature[4:]),
            "key changed": entry_note(entry, other_key, signature)}[damage]
    tracker.issues[two.iid] = replace(two, description=text)
    checked = audit(tracker.bot_issues(), trusted)
    assert [(r.entry.seq, r.where) for r in checked.entries] == [(1, one.iid), (3, three.iid)]
    assert [p.where for p in checked.problems] == [f"record entry issue #{two.iid}",
                                                   f"record entry 3 (issue #{three.iid})"]
    assert checked.damaged == (record.Damaged(two.iid, None if damage == "erase" else 2),)


def test_the_audit_names_what_is_wrong_with_each_damaged_entry(vector, trusted):
    tracker, (one, two, three) = _chain(vector, 3)
    entry, key, signature = record._parse(two.description)
    tracker.issues[two.iid] = replace(two, description=entry_note(replace(entry, user_count=99), key, signature))
    tracker.issues[three.iid] = replace(three, description="erased")
    (edited, erased) = audit(tracker.bot_issues(), trusted).problems
    assert edited.line() == (
        f"record entry issue #{two.iid}: its entry (license {entry.license_id} for c2@example.org, 99 users, ticket 2, "
        "issue #2, made 2026-11-27) carries no signature by a trusted key (1 trusted) over what it says now: it was "
        "edited after the bot wrote it, or signed by a key that is no longer trusted (after a rotation, list the "
        "earlier key in license.trusted_public_keys), so none of it is trusted")
    assert erased.line() == (f"record entry issue #{three.iid}: holds no readable record entry: its description was "
                             "changed or erased after the bot wrote it")


def test_an_entry_whose_key_was_swapped_for_another_license_is_named(vector, trusted):
    tracker, (one,) = _chain(vector, 1)
    entry, _, signature = record._parse(one.description)
    tracker.issues[one.iid] = replace(one, description=entry_note(entry, _entry(vector["private"], 4)[1], signature))
    (problem,) = audit(tracker.bot_issues(), trusted).problems
    assert problem.line() == (f"record entry issue #{one.iid}: entry 1's key is not the license it names "
                              f"({entry.license_id}): the key was changed")


def test_an_entry_with_seq_0_and_a_signature_is_no_signed_entry(vector, trusted):
    # An entry numbered 0 is an old unsigned one: it never passes for a chained entry (it has no place in the chain).
    tracker, (one, two) = _chain(vector, 2)
    entry, key = _entry(vector["private"], 2, email="c2@example.org", ticket=2)
    zero = replace(entry, seq=0)
    tracker.issues[two.iid] = replace(two, description=entry_note(zero, key, sign(zero, FileSigner(vector["private"]))))
    checked = audit(tracker.bot_issues(), trusted)
    assert [r.entry.seq for r in checked.entries] == [1] and [p.where for p in checked.problems] == [
        f"record entry issue #{two.iid}"]


def test_an_intact_chain_keeps_its_order_keys_and_places(vector, trusted):
    tracker, issues = _chain(vector, 3)
    checked = audit(list(reversed(tracker.bot_issues())), trusted)  # listed in any order, read oldest first
    assert [(r.entry.seq, r.where) for r in checked.entries] == [(1, 901), (2, 902), (3, 903)]
    assert checked.problems == () and checked.damaged == () and checked.legacy_iid is None
    assert not checked.legacy_pending and checked.exposed == () and checked.open_entries == ()
    assert checked.authors == ((901, 99), (902, 99), (903, 99)) and checked.head.entry.seq == 3
    assert all(r.entry_key == r.license_key == record.key_id(vector["public"]) for r in checked.entries)
    assert [r.license.email for r in checked.entries] == ["c1@example.org", "c2@example.org", "c3@example.org"]


def test_an_entry_issue_anyone_can_read_or_left_open_is_reported(vector, trusted):
    tracker, (one, two) = _chain(vector, 2)
    tracker.issues[one.iid] = replace(one, confidential=False)
    tracker.issues[two.iid] = replace(two, state="opened")
    checked = audit(tracker.bot_issues(), trusted)
    assert [i.iid for i in checked.exposed] == [one.iid] and [i.iid for i in checked.open_entries] == [two.iid]


def test_an_entry_that_follows_a_missing_or_later_one_is_named(vector, trusted):
    tracker, (one, two, three) = _chain(vector, 3)
    del tracker.issues[one.iid]
    (gap,) = audit(tracker.bot_issues(), trusted).problems
    assert gap.line() == ("record entry 2 (issue #902): entry 1, the one it follows, is missing or was changed: "
                          "the license it held cannot be checked")
    tracker, (one, two, three) = _chain(vector, 3)
    tracker.issues[one.iid], tracker.issues[two.iid] = (replace(one, description=two.description),
                                                        replace(two, description=one.description))
    (moved,) = audit(tracker.bot_issues(), trusted).problems
    assert moved.line() == ("record entry 2 (issue #901): it is older than entry 1 (issue #902) that it follows: the "
                            "entries were moved")


def test_an_entry_numbered_after_a_gap_is_named_even_when_it_names_a_real_entry(vector, trusted):
    # Entry 3 naming entry 1's digest: it skipped a number, so an entry 2 was there and is gone.
    tracker, (one,) = _chain(vector, 1)
    first = audit(tracker.bot_issues(), trusted).entries[0]
    entry, key = _entry(vector["private"], 3, email="c3@example.org", ticket=3)
    entry = replace(entry, seq=3, prev=first.digest)
    _issue(tracker, entry_note(entry, key, sign(entry, FileSigner(vector["private"]))), 903)
    (gap,) = audit(tracker.bot_issues(), trusted).problems
    assert gap.where == "record entry 3 (issue #903)" and gap.what.startswith("entry 2, the one it follows")


def test_the_same_license_written_twice_counts_once_the_first(vector, trusted):
    tracker, (one, two) = _chain(vector, 2)
    _issue(tracker, two.description, 910)  # an overlapping run wrote entry 2 again
    checked = audit(tracker.bot_issues(), trusted)
    assert [(r.entry.seq, r.where) for r in checked.entries] == [(1, 901), (2, 902)] and checked.problems == ()


def test_an_old_record_issue_is_pending_until_all_its_entries_are_migrated(vector, trusted):
    tracker = FakeTracker()
    legacy = _legacy(tracker)
    one, key = _entry(vector["private"], 1)
    migrated = replace(one, seq=1, prev=f"legacy:#{legacy}:2", legacy_note=850001)
    _issue(tracker, entry_note(migrated, key, sign(migrated, FileSigner(vector["private"]))), 901)
    checked = audit(tracker.bot_issues(), trusted)
    assert (checked.legacy_iid, checked.legacy_author, checked.legacy_pending) == (legacy, 99, True)
    assert checked.problems == () and [r.where for r in checked.entries] == [901]
    # A chain that does not start from the old issue: an older bot issue that is no old record issue.
    fresh = replace(one, seq=1, prev="")
    tracker.issues[901] = replace(tracker.issues[901],
                                  description=entry_note(fresh, key, sign(fresh, FileSigner(vector["private"]))))
    assert audit(tracker.bot_issues(), trusted).legacy_pending is False
    del tracker.issues[901]
    assert audit(tracker.bot_issues(), trusted).legacy_pending is True  # not read yet


def test_a_follow_up_counts_only_for_the_license_the_chain_holds(vector, trusted):
    tracker, (one,) = _chain(vector, 1)
    first = audit(tracker.bot_issues(), trusted).entries[0]
    follow = replace(first.entry, seq=2, prev=first.digest, delivery=record.REFUSED, delivery_why="550",
                     delivery_on="2026-11-28")
    _issue(tracker, entry_note(follow, first.key_text, sign(follow, FileSigner(vector["private"]))), 902)
    checked = audit(tracker.bot_issues(), trusted)
    assert [r.where for r in checked.entries] == [901] and [r.where for r in checked.follow_ups] == [902]
    assert checked.head.where == 902 and checked.authors == ((901, 99), (902, 99))


# --- a key against its entry --------------------------------------------------------------------------------------

def test_a_key_for_another_address_with_the_same_user_count_does_not_match_its_entry(vector, trusted):
    # Bug caught: an entry whose email does not match its key was accepted when the user count matched.
    entry, key = _entry(vector["private"], 1, email="ops@example.org")
    assert verify(entry, key, trusted).email == "ops@example.org"
    assert verify(replace(entry, email="OPS@Example.org"), key, trusted) is not None  # addresses ignore case
    assert verify(replace(entry, email="mallory@example.org"), key, trusted) is None
    assert verify(replace(entry, user_count=entry.user_count + 1), key, trusted) is None
    assert verify(replace(entry, sha256="0" * 64), key, trusted) is None
    assert verify(replace(entry, license_id="another"), key, trusted) is None


def test_a_key_checks_out_with_any_trusted_key_after_a_rotation(vector, private_key):
    entry, key = _entry(vector["private"], 1)
    found = verify_with(entry, key, [private_key.public_key(), vector["public"]])
    assert found is not None and found[1] == record.key_id(vector["public"])
    assert verify(entry, key, vector["public"]) is not None  # one key, not in a list
    assert verify(entry, key, [private_key.public_key()]) is None


# --- the entry's text ---------------------------------------------------------------------------------------------

def test_an_entry_reads_back_exactly_as_written(vector):
    entry, key = _entry(vector["private"], 2, email="o<p>@example.org")
    entry = replace(entry, prev="abc", anchored=True, upload_markdown="[f](/uploads/x/f)")
    body = entry_note(entry, key, "c2lnbmF0dXJl")
    assert "<p>" not in body.split("```")[-1]  # no value can end the hidden comment
    assert record._parse(body) == (entry, key, "c2lnbmF0dXJl")
    assert record.parse_entry(body) == (entry, key)
    assert body.startswith(f"License `{entry.license_id}` for o<p>@example.org, 9 users, ticket 5, made 2026-11-27 "
                           f"for #2, expires {entry.expires_on}. [f](/uploads/x/f)\n\n```\n{key.strip()}\n```\n\n")
    no_ticket = replace(entry, ticket_id=None, ticket_url=None)
    assert ", no ticket, " in entry_note(no_ticket, key) and record._parse(entry_note(no_ticket, key))[2] == ""


@pytest.mark.parametrize("change", [
    ('"seq":2', '"seq":"2"'), ('"user_count":9', '"user_count":true'), ('"made_on":"2026-11-27"', '"made_on":"soon"'),
    ('"expires_on":"', '"expires_on":"x'), ('"anchored":true', '"anchored":1'),
    ('"email":', '"delivery":"lost","email":'),
    ('{"anchored"', '["anchored"'), ('"issue_iid":2,', ''), ('"ticket_id":5', '"ticket_id":"5"'),
])
def test_an_entry_with_a_wrong_field_reads_as_no_entry(vector, change):
    entry, key = _entry(vector["private"], 2)
    body = entry_note(replace(entry, anchored=True), key, "c2ln")
    assert record._parse(body) is not None and change[0] in body
    assert record._parse(body.replace(*change, 1)) is None


def test_text_without_a_key_or_an_entry_is_no_entry(vector):
    entry, key = _entry(vector["private"], 2)
    body = entry_note(entry, key)
    assert record._parse(body.replace(key.strip(), "no key")) is None
    assert record._parse(body.split("<!--")[0]) is None
    assert record._parse("") is None and record._parse(None) is None


def test_a_follow_up_reads_and_says_what_became_of_the_license(vector):
    entry, key = _entry(vector["private"], 2)
    refused = replace(entry, delivery=record.REFUSED, delivery_why="550 no such user", delivery_on="2026-11-28")
    body = entry_note(refused, key)
    assert body.startswith(f"License `{entry.license_id}` (#2) was refused by the mail server for ops@example.org on "
                           "2026-11-28 and never delivered: 550 no such user. It does not count for the "
                           "one-license-per-ticket or the cooldown rule.\n")
    assert record._parse(body)[0] == refused
    assert refused.refusal() == record.Refusal(entry.license_id, 2, "ops@example.org", True, "550 no such user",
                                               "2026-11-28")
    delivered = replace(refused, delivery=record.DELIVERED, delivery_why="re-sent by alice")
    assert entry_note(delivered, key).startswith(
        f"License `{entry.license_id}` (#2) was delivered to ops@example.org on 2026-11-28 after all (re-sent by "
        "alice); it counts again.\n")
    assert delivered.refusal().refused is False
    assert refused.describe() == (f"license {entry.license_id} for ops@example.org, 9 users, ticket 5, issue #2, made "
                                  "2026-11-27, refused on 2026-11-28")


def test_the_signature_covers_the_optional_fields_only_when_set(vector):
    entry, _ = _entry(vector["private"], 2)
    assert set(entry.fields()) == {f for f in record.asdict(entry) if f not in record._OPTIONAL_FIELDS}
    marked = replace(entry, anchored=True, delivery="refused", delivery_why="w", delivery_on="d")
    assert set(marked.fields()) == set(record.asdict(marked))
    assert marked.payload() != entry.payload() and b" " not in entry.payload()


def test_an_entry_is_a_prior_license_for_the_duplicate_rules(vector):
    entry, _ = _entry(vector["private"], 3, email="x@example.org", ticket=7)
    assert entry.prior() == PriorLicense("#3", "u/3", "x@example.org", 7, date(2026, 11, 27))


def test_addresses_compare_whole_and_case_insensitively():
    assert record.same_address(" Jane@X.com ", "jane@x.com")
    assert not record.same_address("jane@x.com", "jane@x.com.au")
    assert not record.same_address("xjane@x.com", "jane@x.com")


# --- Record.add, when the POST that writes the entry failed -----------------------------------------------------

class RetryingTracker(FakeTracker):
    """The first POST of an entry fails; `landed` looks for it among the bot's issues, as bot/tracker.py does,
    before posting again. `landed_too`: the failed POST had landed after all."""

    landed_too: bool = False

    def open_entry(self, title: str, description: str, landed):
        if self.landed_too:
            issue = super().open_entry(title, description, landed)
            assert landed(self.bot_issues()) == issue
            return issue
        found = landed(self.bot_issues())
        return found if found is not None else super().open_entry(title, description, landed)


@pytest.mark.parametrize("landed_too", [False, True])
def test_a_retried_entry_is_written_once_and_an_earlier_entry_is_not_taken_for_it(vector, trusted, landed_too):
    # Bug caught: the retry path of `Record.add` took any earlier entry for the one it was writing, so the
    # license was emailed with no entry of its own (and counted for no rule).
    tracker = RetryingTracker()
    tracker.landed_too = landed_too
    rec = Record(tracker, trusted, FileSigner(vector["private"]))
    one, key1 = _entry(vector["private"], 1, email="one@example.org")
    two, key2 = _entry(vector["private"], 2, email="two@example.org")
    rec.add(replace(one, seq=0), key1)
    second = rec.add(replace(two, seq=0), key2)
    assert second.entry.seq == 2 and second.where == 901
    assert rec.added == [r.entry for r in rec.entries()] and [e.email for e in rec.added] == [
        "one@example.org", "two@example.org"]
    checked = audit(tracker.bot_issues(), trusted)
    assert [(r.entry.email, r.entry.seq, r.where) for r in checked.entries] == [
        ("one@example.org", 1, 900), ("two@example.org", 2, 901)] and checked.problems == ()
    assert rec.add(replace(two, seq=0), key2) == second and len(tracker.entry_issues()) == 2  # idempotent


def test_landed_finds_only_this_license_at_this_place(vector, trusted):
    # The same license at another place (a follow-up, a second run's copy) is not the entry being written.
    captured = []

    class Capturing(FakeTracker):
        def open_entry(self, title, description, landed):
            captured.append(landed)
            return super().open_entry(title, description, landed)

    tracker = Capturing()
    rec = Record(tracker, trusted, FileSigner(vector["private"]))
    one, key1 = _entry(vector["private"], 1)
    rec.add(replace(one, seq=0), key1)
    (issue,) = tracker.entry_issues()
    entry, key, signature = record._parse(issue.description)
    moved = replace(entry, seq=2)
    assert captured[0]([issue]) == issue
    assert captured[0]([replace(issue, description=entry_note(moved, key, signature))]) is None
    assert captured[0]([replace(issue, description=entry_note(replace(entry, license_id="x"), key))]) is None
    assert captured[0]([replace(issue, description="erased")]) is None


def test_a_key_that_does_not_match_its_entry_is_never_recorded(vector, trusted):
    tracker = FakeTracker()
    rec = Record(tracker, trusted, FileSigner(vector["private"]))
    entry, key = _entry(vector["private"], 1)
    with pytest.raises(lic_mod.LicenseError, match=f"license {entry.license_id} does not match its own record entry"):
        rec.add(replace(entry, seq=0, user_count=1), key)
    assert tracker.entry_issues() == [] and rec.added == []


def test_recorded_digest_covers_the_entry_and_its_signature(vector):
    entry, key = _entry(vector["private"], 1)
    a = Recorded(entry, key, None, "sig1")
    assert a.digest != Recorded(entry, key, None, "sig2").digest
    assert a.digest != Recorded(replace(entry, seq=2), key, None, "sig1").digest
    assert a.digest == Recorded(entry, "another key text", None, "sig1", where=5).digest


# --- what the rules ask the record --------------------------------------------------------------------------------

def _written(vector, trusted, *people: tuple[str, int, int]) -> tuple[FakeTracker, Record]:
    """A record the bot wrote: one license per (email, request issue, ticket), in that order."""
    tracker = FakeTracker()
    rec = Record(tracker, trusted, FileSigner(vector["private"]))
    for n, (email, iid, ticket) in enumerate(people, 1):
        entry, key = _entry(vector["private"], n, email=email, ticket=ticket)
        rec.add(replace(entry, seq=0, issue_iid=iid, issue_url=f"u/{iid}"), key)
    return tracker, Record(tracker, trusted, FileSigner(vector["private"]))


def test_licenses_for_an_address_are_found_whole_case_insensitively_newest_first(vector, trusted):
    _, rec = _written(vector, trusted, ("ops@example.org", 1, 5), ("other@example.org", 2, 6),
                      ("OPS@example.org", 3, 7), ("ops@example.org.au", 4, 8))
    assert [r.entry.issue_iid for r in rec.for_email("Ops@Example.org")] == [3, 1]
    assert [r.entry.issue_iid for r in rec.for_email("ops@example.org", ticket_id=5)] == [1]
    assert rec.for_email("nobody@example.org") == []


def test_prior_licenses_are_every_other_issues_newest_first_less_the_refused(vector, trusted):
    tracker, rec = _written(vector, trusted, ("a@example.org", 1, 5), ("b@example.org", 2, 6),
                            ("c@example.org", 3, 7))
    assert [p.issue_ref for p in rec.prior_licenses(exclude_iid=2)] == ["#3", "#1"]
    refused = rec.for_issue(3).entry
    rec.mark_refused(refused, True, "550 no such user", "2026-11-28")
    again = Record(tracker, trusted)
    assert [p.email for p in again.prior_licenses(exclude_iid=2)] == ["a@example.org"]
    assert again.refused(refused.license_id).why == "550 no such user" and again.refused("unknown") is None


def test_an_issue_whose_license_was_refused_is_answered_by_its_corrected_one(vector, trusted):
    tracker, rec = _written(vector, trusted, ("typo@example.og", 1, 5), ("right@example.org", 1, 5),
                            ("other@example.org", 2, 6))
    assert rec.for_issue(1).entry.email == "typo@example.og"  # the first, while none was refused
    rec.mark_refused(rec.for_issue(1).entry, True, "550", "2026-11-28")
    assert Record(tracker, trusted).for_issue(1).entry.email == "right@example.org"
    rec = Record(tracker, trusted, FileSigner(vector["private"]))
    rec.mark_refused(rec.for_issue(1).entry, True, "550", "2026-11-29")  # the corrected one refused too
    assert Record(tracker, trusted).for_issue(1).entry.email == "right@example.org"  # the last refused
    assert Record(tracker, trusted).for_issue(9) is None


def test_a_refusal_written_again_is_not_written_twice_and_a_delivery_after_all_counts_again(vector, trusted):
    tracker, rec = _written(vector, trusted, ("a@example.org", 1, 5))
    entry = rec.for_issue(1).entry
    rec.mark_refused(entry, True, "550", "2026-11-28")
    rec.mark_refused(entry, True, "550", "2026-11-28")
    assert len(tracker.entry_issues()) == 2 and rec.refused(entry.license_id) is not None
    rec.mark_refused(entry, False, "re-sent by alice", "2026-11-29")
    later = Record(tracker, trusted)
    assert later.refused(entry.license_id) is None and later.problems() == ()
    assert [p.email for p in later.prior_licenses(exclude_iid=2)] == ["a@example.org"]
    assert [(r.entry.seq, r.entry.delivery) for r in later.audit().follow_ups] == [(2, "refused"), (3, "delivered")]
    assert json_seq(tracker.anchor) == 3


def json_seq(anchor: str) -> int:
    import json

    return json.loads(anchor)["seq"]


def test_requests_holding_a_license_that_anyone_can_read_are_exposed(vector, trusted):
    tracker, rec = _written(vector, trusted, ("a@example.org", 1, 5), ("b@example.org", 2, 6))
    tracker.file("request one", iid=1)
    tracker.file("request two", iid=2, confidential=False)
    assert [i.iid for i in Record(tracker, trusted).exposed()] == [2]
    tracker.issues[900] = replace(tracker.issues[900], confidential=False)
    assert [i.iid for i in Record(tracker, trusted).exposed()] == [900, 2]


def test_the_damage_names_every_problem_on_one_line(vector, trusted):
    tracker, (one, two, three) = _chain(vector, 3)
    tracker.issues[one.iid] = replace(one, description="gone")
    rec = Record(tracker, trusted)
    assert rec.damage() == "; ".join(p.line() for p in rec.problems()) and rec.damage().count("; ") == 1
    assert Record(_chain(vector, 1)[0], trusted).damage() == ""


def test_the_first_run_with_work_anchors_the_chain_and_says_so_once(vector, trusted):
    tracker, _ = _chain(vector, 2)
    rec = Record(tracker, trusted, FileSigner(vector["private"]))
    assert rec.problems() == () and rec.notices == [
        "the record's head (entry 2) is now kept in the bot's private anchor snippet: trusted as found (trust on "
        "first use); from now on a deleted newest entry is detected"]
    assert json_seq(tracker.anchor) == 2 and rec.loaded
    empty = FakeTracker()
    fresh = Record(empty, trusted, FileSigner(vector["private"]))
    assert not fresh.loaded and fresh.problems() == () and fresh.notices == [] and json_seq(empty.anchor) == 0
    reader = FakeTracker()
    assert Record(reader, trusted).problems() == () and reader.anchor is None  # reading only: nothing written


def test_a_damaged_record_gets_no_anchor_and_a_missing_newest_entry_is_named(vector, trusted):
    tracker, (one, two) = _chain(vector, 2)
    tracker.issues[one.iid] = replace(one, description="gone")
    assert Record(tracker, trusted, FileSigner(vector["private"])).problems() and tracker.anchor is None
    tracker, (one, two) = _chain(vector, 2)
    Record(tracker, trusted, FileSigner(vector["private"])).problems()
    del tracker.issues[two.iid]
    (problem,) = Record(tracker, trusted).problems()
    assert problem.line() == ("record entry 2: missing: the bot wrote entry 2 last, the newest that checks out is 1 "
                              "(its issue was deleted): the license it held cannot be checked")
    del tracker.issues[one.iid]
    (problem,) = Record(tracker, trusted).problems()
    assert problem.where == "record entries 1, 2" and "the newest that checks out is none" in problem.what


def test_a_deleted_anchor_after_anchored_entries_is_named(vector, trusted):
    tracker, rec = _written(vector, trusted, ("a@example.org", 1, 5), ("b@example.org", 2, 6))
    tracker.anchor = None
    (problem,) = Record(tracker, trusted).problems()
    assert problem.line() == (
        "the record's head (the bot's private anchor snippet): is gone, yet entry 2 was written while it existed: "
        "only the bot's user or an admin can delete it, and entries after 2 may be missing")


# --- the old record issue and the home issue, as a run reads them ------------------------------------------------

def test_an_old_record_issue_emptied_of_its_entries_is_named_and_a_home_issue_is_not(vector, trusted):
    tracker = FakeTracker()
    legacy = _legacy(tracker, ("a comment by someone else", 10))
    (problem,) = Record(tracker, trusted).problems()
    assert problem.line() == (
        f"record entry issue #{legacy}: holds no record entry, and no old entries either: its description or its "
        "comments were erased (an Owner may delete it if it is an old record issue that never held one)")
    tracker.react(legacy, record.HOME_EMOJI, "carol", 30)  # someone else's :robot: makes no home
    assert Record(tracker, trusted).problems() == (problem,)
    tracker.react(legacy, record.HOME_EMOJI, tracker.bot_user, tracker.bot_id)
    assert Record(tracker, trusted).problems() == ()


def test_old_entries_already_migrated_are_not_read_twice(vector, trusted):
    one, key1 = _entry(vector["private"], 1, email="one@example.org")
    two, key2 = _entry(vector["private"], 2, email="two@example.org")
    tracker = FakeTracker()
    _legacy(tracker, (entry_note(replace(one, seq=0), key1), 99), (entry_note(replace(two, seq=0), key2), 99))
    rec = Record(tracker, trusted, FileSigner(vector["private"]))
    assert [r.entry.email for r in rec.unchained()] == ["one@example.org", "two@example.org"]
    assert [r.where for r in rec.unchained()] == [850, 850] and rec.audit().legacy_pending
    three, key3 = _entry(vector["private"], 3, email="three@example.org")
    rec.add(replace(three, seq=0), key3)  # migrates the old entries first, then chains the new one
    later = Record(tracker, trusted)
    assert later.unchained() == [] and later.problems() == () and not later.audit().legacy_pending
    assert [(r.entry.seq, r.entry.email, r.entry.legacy_note) for r in later.entries()] == [
        (1, "one@example.org", 850001), (2, "two@example.org", 850002), (3, "three@example.org", 0)]
    assert later.entries()[0].entry.prev == "legacy:#850:2" and rec.added == [later.entries()[2].entry]


def test_a_home_issue_of_another_bot_user_is_no_damaged_entry(vector, trusted):
    tracker, (one,) = _chain(vector, 1)
    home = _issue(tracker, record.HOME_DESCRIPTION, 950)
    tracker.react(home.iid, record.HOME_EMOJI, tracker.bot_user, tracker.bot_id)
    checked = Record(tracker, trusted).audit()
    assert checked.problems == () and checked.damaged == () and [r.where for r in checked.entries] == [one.iid]


# --- an edited entry, rebuilt from its request's status note -----------------------------------------------------

def _two_licensed(config, private_key):
    from .test_processor import World, filled, outcomes

    world = World(config, private_key)
    world.tracker.file(filled())
    world.tracker.file(filled(ticket="600001", email_="second@example.org"))
    assert outcomes(world.run()) == ["succeeded", "succeeded"]
    return world, world.tracker.entry_issues()


@pytest.mark.parametrize("which", [0, 1])
def test_an_edited_entry_is_rebuilt_to_the_very_text_the_bot_wrote(config, private_key, which):
    # The older entry is proved by the next entry's `prev`, the newest by the digest its status note kept.
    world, issues = _two_licensed(config, private_key)
    edited = issues[which]
    world.tracker.issues[edited.iid] = replace(edited, description=edited.description.replace('"user_count":250',
                                                                                              '"user_count":25'))
    trusted = [private_key.public_key()]
    assert Record(world.tracker, trusted).repairs() == []  # reading only: nothing to sign with
    rec = Record(world.tracker, trusted, FileSigner(private_key))
    assert [d.iid for d in rec.audit().damaged] == [edited.iid]
    assert rec.repairs() == [(edited.iid, edited.description)]


def test_an_entry_whose_status_note_says_otherwise_is_not_rebuilt(config, private_key):
    world, (one, two) = _two_licensed(config, private_key)
    world.tracker.issues[one.iid] = replace(one, description="erased")  # no hint which request it was for
    world.tracker.issues[two.iid] = replace(two, description=two.description.replace('"user_count":250',
                                                                                    '"user_count":25'))
    rec = Record(world.tracker, [private_key.public_key()], FileSigner(private_key))
    assert rec.problems() and rec.repairs() == []  # the place of the one after the erased one cannot be proved
    world, (one, two) = _two_licensed(config, private_key)
    note = world.note(2)
    world.tracker.notes[2] = [replace(n, body=n.body.replace("second@example.org", "other@example.org"))
                              if n.id == note.id else n for n in world.tracker.notes[2]]
    world.tracker.issues[two.iid] = replace(two, description=two.description.replace('"ticket_id":600001',
                                                                                    '"ticket_id":600002'))
    assert Record(world.tracker, [private_key.public_key()], FileSigner(private_key)).repairs() == []


@pytest.mark.parametrize("anchor", ["not json", '{"seq": 1, "digest": "d"}', '{"seq": "x", "digest": "d", "sig": ""}',
                                    '{"seq": 1, "digest": "d", "sig": "not base64!"}', '[1, 2]'])
def test_an_anchor_that_does_not_read_is_named_as_changed(vector, trusted, anchor):
    tracker, _ = _chain(vector, 1)
    assert record.parse_head(anchor, trusted) is None
    tracker.anchor = anchor
    (problem,) = Record(tracker, trusted).problems()
    assert problem.line() == (
        "the record's head (the bot's private anchor snippet): does not carry the bot's signature: it was changed "
        "after the bot wrote it (only the bot's user or an admin can), so the newest entries cannot be checked")


def test_a_license_among_the_old_entries_is_migrated_not_written_again(vector, trusted):
    one, key1 = _entry(vector["private"], 1, email="one@example.org")
    tracker = FakeTracker()
    _legacy(tracker, (entry_note(replace(one, seq=0), key1), 99))
    rec = Record(tracker, trusted, FileSigner(vector["private"]))
    recorded = rec.add(replace(one, seq=0), key1)
    assert (recorded.entry.seq, recorded.entry.legacy_note, recorded.where) == (1, 850001, 900)
    assert len(tracker.entry_issues()) == 1 and rec.added == []  # a migration is no license this run made


def test_reload_reads_the_record_again(vector, trusted):
    tracker, (one, two) = _chain(vector, 2)
    rec = Record(tracker, trusted)
    assert rec.problems() == ()
    tracker.issues[two.iid] = replace(two, description="erased")
    assert rec.problems() == ()  # read once per run
    rec.reload()
    assert [p.where for p in rec.problems()] == [f"record entry issue #{two.iid}"] and len(rec.entries()) == 1


def test_a_migration_stopped_halfway_leaves_only_the_rest_unchained(vector, trusted):
    one, key1 = _entry(vector["private"], 1, email="one@example.org")
    two, key2 = _entry(vector["private"], 2, email="two@example.org")
    tracker = FakeTracker()
    legacy = _legacy(tracker, (entry_note(replace(one, seq=0), key1), 99), (entry_note(replace(two, seq=0), key2), 99))
    migrated = replace(one, seq=1, prev=f"legacy:#{legacy}:2", legacy_note=850001)
    _issue(tracker, entry_note(migrated, key1, sign(migrated, FileSigner(vector["private"]))), 901)
    rec = Record(tracker, trusted)
    assert [(r.entry.email, r.where) for r in rec.unchained()] == [("two@example.org", legacy)]
    assert [(r.entry.email, r.entry.seq) for r in rec.entries()] == [("two@example.org", 0), ("one@example.org", 1)]
    assert rec.problems() == ()


def test_an_anchor_out_of_reach_after_a_token_change_is_no_damage_and_an_unanchored_chain_needs_none(vector, trusted):
    tracker, rec = _written(vector, trusted, ("a@example.org", 1, 5))
    chain = rec.entries()
    assert record.head_problems(chain, None, trusted, mine=False) == []  # the old user's anchor: out of reach
    assert len(record.head_problems(chain, None, trusted)) == 1
    old = [replace(r, entry=replace(r.entry, anchored=False)) for r in chain]  # written before anchors existed
    assert record.head_problems(old, None, trusted) == []


def test_an_entry_without_a_ticket_says_so(vector):
    entry, _ = _entry(vector["private"], 2)
    assert replace(entry, ticket_id=None).describe() == (
        f"license {entry.license_id} for ops@example.org, 9 users, no ticket, issue #2, made 2026-11-27")


def test_entry_issues_and_the_anchor_carry_the_titles_people_and_the_bot_find_them_by(vector, trusted):
    # The bot finds its anchor by title (GET /snippets lists the caller's own); people read the entry titles.
    saved = []

    class Titles(FakeTracker):
        def save_record_head(self, title, text):
            saved.append(title)
            super().save_record_head(title, text)

    tracker = Titles()
    home = tracker.home_issue(create=(record.HOME_TITLE, record.HOME_DESCRIPTION, record.HOME_EMOJI))
    rec = Record(tracker, trusted, FileSigner(vector["private"]))
    entry, key = _entry(vector["private"], 1)
    first = rec.add(replace(entry, seq=0), key)
    assert first.entry.prev == ""  # the home issue is no old record issue: the chain's root names none
    assert (first.entry_key, first.license_key) == (record.key_id(vector["public"]),) * 2
    rec.mark_refused(first.entry, True, "550", "2026-11-28")
    titles = [tracker.issues[i].title for i in sorted(tracker.issues) if i != home]
    assert titles == [f"License Bot record: license {entry.license_id} (written and signed by the bot; do not edit)",
                      f"License Bot record: license {entry.license_id} refused (written and signed by the bot; do not "
                      "edit)"]
    assert set(saved) == {record.ANCHOR_TITLE} and json_seq(tracker.anchor) == 2
    follow_up = Record(tracker, trusted).audit().follow_ups[0].entry
    assert (follow_up.delivery_on, follow_up.delivery_why, follow_up.legacy_note) == ("2026-11-28", "550", 0)


def test_a_follow_up_of_a_migrated_entry_is_no_old_entry_itself(vector, trusted):
    one, key1 = _entry(vector["private"], 1, email="one@example.org")
    tracker = FakeTracker()
    _legacy(tracker, (entry_note(replace(one, seq=0), key1), 99))
    rec = Record(tracker, trusted, FileSigner(vector["private"]))
    rec.mark_refused(replace(one, seq=0), True, "550", "2026-11-28")  # migrates the old entry first
    later = Record(tracker, trusted)
    assert [r.entry.legacy_note for r in later.audit().follow_ups] == [0] and later.problems() == ()
    assert later.refused(one.license_id) is not None and later.audit().entries[0].entry.legacy_note == 850001


def test_a_record_opened_to_read_only_never_writes(vector, trusted):
    one, key1 = _entry(vector["private"], 1)
    tracker = FakeTracker()
    _legacy(tracker, (entry_note(replace(one, seq=0), key1), 99))
    with pytest.raises(RuntimeError, match="^this record was opened to read only$"):
        Record(tracker, trusted).add(replace(one, seq=0), key1)
    assert tracker.entry_issues() == [] and tracker.anchor is None


def test_the_newest_entry_deleted_right_after_it_was_written_is_named(vector, trusted):
    # The anchor is brought up to the entry the run just wrote: else deleting it (a Planner may) went unseen.
    tracker, rec = _written(vector, trusted, ("a@example.org", 1, 5))
    assert json_seq(tracker.anchor) == 1
    del tracker.issues[900]
    (problem,) = Record(tracker, trusted).problems()
    assert problem.where == "record entry 1" and problem.what.startswith("missing: the bot wrote entry 1 last")


def test_the_signed_form_of_an_entry_is_fixed_so_entries_written_by_earlier_versions_still_verify():
    """The bug this catches: any change to what an entry's signature covers (its field names, their order, the
    separators, the escaping, which empty fields are left out) makes every entry already in a record fail to verify
    after an upgrade: the whole record reads as damaged and every request is held. The bytes are frozen here."""
    entry = record.Entry("0123456789abcdef", "ab" * 32, 7, "https://gitlab.example.com/s/r/-/issues/7",
                         "jos\u00e9@example.com", 25, 512345, "https://gitlab.zendesk.com/agent/tickets/512345",
                         "2026-11-27", "2026-12-07", "jose.gitlab-license", seq=3, prev="cd" * 32)
    assert entry.payload() == (
        b'{"email":"jos\\u00e9@example.com","expires_on":"2026-12-07","file_name":"jose.gitlab-license",'
        b'"issue_iid":7,"issue_url":"https://gitlab.example.com/s/r/-/issues/7","legacy_note":0,'
        b'"license_id":"0123456789abcdef","made_on":"2026-11-27",'
        b'"prev":"' + b"cd" * 32 + b'","seq":3,"sha256":"' + b"ab" * 32 + b'",'
        b'"ticket_id":512345,"ticket_url":"https://gitlab.zendesk.com/agent/tickets/512345","upload_markdown":"",'
        b'"user_count":25}')
    refused = replace(entry, delivery="refused", delivery_why="550 no such user", delivery_on="2026-11-28")
    assert refused.payload().startswith(b'{"delivery":"refused","delivery_on":"2026-11-28",'
                                        b'"delivery_why":"550 no such user","email":')
    assert replace(entry, anchored=True).payload().startswith(b'{"anchored":true,"email":')
