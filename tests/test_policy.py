"""The workflow's rules at their boundaries."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from bot import policy
from bot.policy import Facts, PriorLicense
from bot.request import parse

from .conftest import TODAY


def _doc(email="jane@example.com", users="250", expired="2026-11-13", ticket="512345", boxes=("x", "x")) -> str:
    return (f"### Zendesk ticket\n{ticket}\n### Customer email\n{email}\n### User count\n{users}\n"
            f"### License expiration date\n{expired}\n### Checklist\n- [{boxes[0]}] paid plan, not a prospect\n"
            f"- [{boxes[1]}] both screenshots on the ticket\n")


def judge(config, facts=None, today=TODAY, **fields) -> policy.Verdict:
    return policy.evaluate(parse(_doc(**fields)), today, config.policy, config.tickets, facts or Facts())


def fields_of(verdict) -> list[str]:
    return [e.field for e in verdict.errors]


# Grace period 14 days, window 3 days, judged on 2026-11-27: the grace period must have ended
# (expiry + 14 days) between 2026-11-24 and 2026-11-27.
@pytest.mark.parametrize("expired,ok,says", [
    ("2026-11-14", False, "grace period runs until 2026-11-28"),   # still read-write tomorrow: not an emergency
    ("2026-11-13", True, ""),                                      # grace ended today
    ("2026-11-10", True, ""),                                      # ended 3 days ago: last day in scope
    ("2026-11-09", False, "ended on 2026-11-23, 4 days ago"),      # a renewal case
    ("2026-12-01", False, "not an emergency"),                     # not expired yet
])
def test_scope_window_edges(config, expired, ok, says):
    verdict = judge(config, expired=expired)
    assert verdict.ok is ok
    if not ok:
        assert fields_of(verdict) == ["expired_on"] and says in verdict.errors[0].message


def test_scope_follows_configuration(config):
    wider = replace(config, policy=replace(config.policy, scope=replace(config.policy.scope, window_days=5)))
    assert judge(wider, expired="2026-11-08").ok
    assert not judge(wider, expired="2026-11-07").ok


@pytest.mark.parametrize("users,ok", [("1", True), ("100,000", True), ("100,001", False), ("0", False),
                                      ("-3", False)])
def test_max_users_edges(config, users, ok):
    verdict = judge(config, users=users)
    assert verdict.ok is ok
    if not ok:
        assert fields_of(verdict) == ["user_count"] and "from 1 to 100,000" in verdict.errors[0].message


@pytest.mark.parametrize("email,ok", [
    ("jane@example.com", True), ("someone@gitlab.com", False), ("someone@eu.gitlab.com", False),
    ("someone@GitLab.com", False), ("someone@notgitlab.com", True), ("jane@exаmple.com", False),
    ("jané@example.com", False), ("jane@@example.com", False), ("jane@localhost", False),
])
def test_email_rules(config, email, ok):
    verdict = judge(config, email=email)
    assert verdict.ok is ok, verdict.errors
    if not ok:
        assert fields_of(verdict) == ["email"]


def test_non_ascii_email_says_to_retype(config):
    message = judge(config, email="jane@exаmple.com").errors[0].message
    assert "non-ASCII" in message and "retype" in message and "а" in message


def test_ticket_host_must_be_the_configured_one(config):
    assert judge(config, ticket="https://gitlab.zendesk.com/agent/tickets/1").ok
    verdict = judge(config, ticket="https://gitlab.zendesk.com.evil.example/agent/tickets/1")
    assert fields_of(verdict) == ["ticket"] and "gitlab.zendesk.com" in verdict.errors[0].message


@pytest.mark.parametrize("boxes,missing", [(("x", " "), ["screenshots"]), ((" ", "x"), ["paid plan"]),
                                           ((" ", " "), ["paid plan", "screenshots"])])
def test_both_checklist_boxes_must_be_ticked_each_said_apart(config, boxes, missing):
    verdict = judge(config, boxes=boxes)
    assert fields_of(verdict) == ["checklist"] * len(missing)
    assert all(m in e.message for m, e in zip(missing, verdict.errors, strict=True))


def test_author_must_be_allowed(config):
    verdict = judge(config, Facts(author="mallory", author_allowed=False))
    assert fields_of(verdict) == ["author"] and "@mallory" in verdict.errors[0].message
    assert judge(config, Facts(author="alice", author_allowed=True)).ok


def _prior(days_ago: int, email="jane@example.com", ticket=999) -> PriorLicense:
    return PriorLicense("#7", "https://gitlab.example.com/s/r/-/issues/7", email, ticket,
                        TODAY - timedelta(days=days_ago))


def test_one_license_per_ticket_ever(config):
    verdict = judge(config, Facts(prior_licenses=(_prior(400, email="other@example.com", ticket=512345),)))
    assert fields_of(verdict) == ["ticket"]
    assert "#7" in verdict.errors[0].message and "one license per ticket" in verdict.errors[0].message


@pytest.mark.parametrize("days_ago,ok", [(0, False), (29, False), (30, True), (31, True)])
def test_email_cooldown_edges(config, days_ago, ok):
    verdict = judge(config, Facts(prior_licenses=(_prior(days_ago, email="JANE@example.com"),)))
    assert verdict.ok is ok
    if not ok:
        assert fields_of(verdict) == ["email"] and "#7" in verdict.errors[0].message


@pytest.mark.parametrize("earlier,later", [("ops@acme.example.com", "ops+again@acme.example.com"),
                                            ("Ops+a@acme.example.com", "ops+b@ACME.example.com")])
def test_a_plus_tag_reaches_the_same_inbox_so_the_cooldown_holds(config, earlier, later):
    # Issue 19, finding 7: ops+again@ got a second license the minute after ops@.
    verdict = judge(config, Facts(prior_licenses=(_prior(0, email=earlier),)), email=later)
    assert fields_of(verdict) == ["email"]
    assert f"is the mailbox of {earlier} (a +tag reaches the same inbox)" in verdict.errors[0].message


def test_the_subaddress_rule_is_a_setting(config):
    whole = replace(config, policy=replace(config.policy, cooldown_ignores_subaddress=False))
    verdict = judge(whole, Facts(prior_licenses=(_prior(0, email="ops@acme.example.com"),)),
                    email="ops+again@acme.example.com")
    assert verdict.ok
    assert config.policy.cooldown_ignores_subaddress  # on by default


def test_override_turns_scope_and_duplicates_into_warnings_only(config):
    facts = Facts(override=True, prior_licenses=(_prior(1, email="x@example.com", ticket=512345), _prior(2)))
    verdict = judge(config, facts, expired="2026-10-01")
    assert verdict.ok
    assert sorted(w.field for w in verdict.warnings) == ["email", "expired_on", "ticket"]
    assert all(w.message.startswith("overridden: ") for w in verdict.warnings)
    # Input validity is never waived.
    for kwargs, field in [({"users": "0"}, "user_count"), ({"email": "x@gitlab.com"}, "email"),
                          ({"boxes": (" ", "x")}, "checklist")]:
        assert fields_of(judge(config, facts, **kwargs)) == [field]
    assert fields_of(judge(config, Facts(override=True, author="m", author_allowed=False))) == ["author"]


def test_offline_check_skips_what_only_gitlab_knows(config):
    verdict = judge(config, Facts())
    assert verdict.ok and verdict.warnings == ()


def test_judged_date_is_passed_in_never_read_from_a_clock(config):
    assert judge(config, today=date(2026, 11, 27)).ok
    assert not judge(config, today=date(2026, 12, 27)).ok


def test_a_field_that_does_not_parse_does_not_hide_rule_violations_in_the_others(config):
    verdict = judge(config, users="lots", email="me@gitlab.com", expired="2026-10-01",
                    ticket="https://evil.example.com/agent/tickets/1")
    assert fields_of(verdict) == ["ticket", "email", "user_count", "expired_on"]
    assert verdict.request is None


def _ticket(status="open", requester="jane@example.com") -> policy.TicketFacts:
    return policy.TicketFacts(512345, status, requester, "Jane", "ACME Corp", (), 2)


@pytest.mark.parametrize("status, says", [("solved", "ticket 512345 is solved"),
                                          ("closed", "ticket 512345 is closed, and Zendesk does not reopen it")])
def test_the_ticket_is_checked_in_the_same_pass_as_a_user_count_that_did_not_parse(config, status, says):
    """Issue 18, finding 1: a bad "User count" hid a solved or closed ticket until the next run (the ticket was
    looked at only once the whole request parsed)."""
    verdict = judge(config, Facts(ticket_checked=True, ticket=_ticket(status)), users="lots")
    assert verdict.request is None and fields_of(verdict) == ["ticket", "user_count"]
    assert says in verdict.errors[0].message


def test_a_ticket_zendesk_does_not_know_or_will_not_show_is_said_with_a_field_that_did_not_parse(config):
    missing = judge(config, Facts(ticket_checked=True, ticket=None), expired="soon")
    assert fields_of(missing) == ["ticket", "expired_on"]
    assert "ticket 512345 does not exist in Zendesk" in missing.errors[0].message
    hidden = judge(config, Facts(ticket_checked=True, ticket_unreadable="Zendesk answered 403"), users="lots")
    assert fields_of(hidden) == ["ticket", "user_count"] and "may not read ticket 512345" in hidden.errors[0].message


def test_the_email_is_held_against_the_ticket_while_another_field_does_not_parse(config):
    verdict = judge(config, Facts(ticket_checked=True, ticket=_ticket(requester="boss@acme.example")), users="lots")
    assert fields_of(verdict) == ["email", "user_count"]
    assert "neither the ticket's requester (boss@acme.example)" in verdict.errors[0].message


def test_the_ticket_rule_that_needs_an_email_that_did_not_parse_is_skipped_the_others_are_said(config):
    """No address to compare with the ticket's requester: that rule waits (the email's own error says what to
    fix); the ticket's state is still said."""
    verdict = judge(config, Facts(ticket_checked=True, ticket=_ticket("solved", requester="boss@acme.example")),
                    email="ask the customer")
    assert fields_of(verdict) == ["ticket", "email"]
    assert "is solved" in verdict.errors[0].message and "requester" not in verdict.errors[1].message


def test_no_ticket_rule_without_a_ticket_number(config):
    """A ticket field that did not parse names no ticket: nothing is said about Zendesk's (not) knowing it."""
    verdict = judge(config, Facts(ticket_checked=True, ticket=None), ticket="the customer's ticket")
    assert fields_of(verdict) == ["ticket"] and "does not exist" not in verdict.errors[0].message


def test_a_ticket_url_with_a_query_still_finds_its_duplicate_while_another_field_does_not_parse(config):
    """The duplicate rule took the ticket number from the URL's last path segment, so `.../512345?tab=x` named
    no ticket while the user count did not parse, and the duplicate came out one run later."""
    verdict = judge(config, Facts(prior_licenses=(_prior(400, email="other@example.com", ticket=512345),)),
                    ticket="https://gitlab.zendesk.com/agent/tickets/512345?tab=events", users="lots")
    assert fields_of(verdict) == ["ticket", "user_count"] and "one license per ticket" in verdict.errors[0].message


# --- issue 22: rules whose breaking no test noticed (mutation testing) ----------------------------------------

def test_a_ticket_that_passes_its_check_keeps_the_other_fields_errors(config):
    """Issue 22: with Zendesk on, a passing ticket check replaced the errors found so far (`errors = found`), so a
    10,000,000-user request for a GitLab address passed once its ticket was open and its requester matched."""
    facts = Facts(ticket_checked=True, ticket=_ticket(requester="someone@gitlab.com"))
    verdict = judge(config, facts, users="10,000,000", email="someone@gitlab.com", boxes=(" ", "x"))
    assert not verdict.ok
    assert fields_of(verdict) == ["email", "user_count", "checklist"]


@pytest.mark.parametrize("status, says", [
    ("closed", "ticket 512345 is closed, and Zendesk does not reopen it: create a follow-up ticket for the customer "
               "and put that ticket in the request"),
    ("merged", "ticket 512345 is merged into another ticket, and Zendesk does not reopen it: use the ticket it was "
               "merged into and put that ticket in the request"),
    ("solved", "ticket 512345 is solved: the emergency workflow is for an open ticket; reopen it with the "
               "customer, or file a new ticket"),
])
def test_a_request_on_a_closed_merged_or_solved_ticket_is_refused_saying_what_to_do(config, status, says):
    """Issue 22: only `solved` was tested, so a request on a closed (or merged) ticket could have been accepted.
    Zendesk's statuses are new, open, pending, hold, solved, closed; a closed ticket cannot be reopened (Zendesk,
    "Updating and solving tickets": https://support.zendesk.com/hc/en-us/articles/4408832151834, as cited in
    gitlab-org/gitlab#8549), and a merged ticket is closed (bot/zendesk.py reads its closed_by_merge tag)."""
    verdict = judge(config, Facts(ticket_checked=True, ticket=_ticket(status)))
    assert not verdict.ok
    assert [(e.field, e.message) for e in verdict.errors] == [("ticket", says)]


@pytest.mark.parametrize("status", ["new", "open", "pending", "hold"])
def test_a_request_on_an_unsolved_ticket_passes(config, status):
    assert judge(config, Facts(ticket_checked=True, ticket=_ticket(status))).ok


def test_a_ticket_zendesk_does_not_have_is_refused_with_the_fix(config):
    """Issue 22: no test filed a request whose ticket Zendesk does not have (the whole request otherwise fine)."""
    verdict = judge(config, Facts(ticket_checked=True, ticket=None))
    assert not verdict.ok
    assert [(e.field, e.message) for e in verdict.errors] == [
        ("ticket", "ticket 512345 does not exist in Zendesk; check the number and paste the ticket's address")]


def test_a_ticket_zendesk_will_not_show_says_why_and_who_can_fix_it(config):
    verdict = judge(config, Facts(ticket_checked=True, ticket_unreadable="Zendesk answered 403"))
    assert [(e.field, e.message) for e in verdict.errors] == [
        ("ticket", "the bot may not read ticket 512345 in Zendesk (Zendesk answered 403); check the number, or ask a "
                   "Zendesk admin to give the bot's API user access to the ticket's group or brand")]


def test_a_ticket_zendesk_was_not_asked_about_is_not_judged(config):
    """Zendesk off (ticket_checked False): no ticket facts, so no ticket error, even with ticket=None."""
    assert judge(config, Facts(ticket_checked=False, ticket=None)).ok


def test_an_email_on_the_tickets_ccs_passes_with_a_warning_naming_both(config):
    ticket = replace(_ticket(requester="boss@acme.example"), cc_emails=("ops@acme.example", "Jane@Example.com"))
    verdict = judge(config, Facts(ticket_checked=True, ticket=ticket), email="jane@EXAMPLE.com")
    assert verdict.ok
    assert [(w.field, w.message) for w in verdict.warnings] == [
        ("email", "jane@example.com is on the ticket's CCs, not its requester (boss@acme.example); the license "
                  "goes to jane@example.com")]


def test_the_requesters_email_matches_whatever_its_letter_case(config):
    verdict = judge(config, Facts(ticket_checked=True, ticket=_ticket(requester="JANE@example.COM")))
    assert verdict.ok and verdict.warnings == ()


def test_an_email_neither_requester_nor_cc_is_refused_whole_message(config):
    ticket = replace(_ticket(requester="boss@acme.example"), cc_emails=("ops@acme.example",))
    verdict = judge(config, Facts(ticket_checked=True, ticket=ticket))
    assert [(e.field, e.message) for e in verdict.errors] == [
        ("email", "`jane@example.com` is neither the ticket's requester (boss@acme.example) nor on its CCs: a typo "
                  "would send the license to a stranger; use the requester's address, or add the recipient to the "
                  "ticket's CCs first")]


@pytest.mark.parametrize("attachments, have", [(0, "0 attachments"), (1, "1 attachment")])
def test_a_ticket_without_both_screenshots_is_refused(config, attachments, have):
    ticket = replace(_ticket(), attachments=attachments)
    verdict = judge(config, Facts(ticket_checked=True, ticket=ticket, min_attachments=2))
    assert [(e.field, e.message) for e in verdict.errors] == [
        ("checklist", f"the ticket has {have}; ask the customer for both screenshots (Admin > Overview > Dashboard "
                      "and Admin > Subscription) and attach them to the ticket")]
    assert judge(config, Facts(ticket_checked=True, ticket=replace(ticket, attachments=2), min_attachments=2)).ok
    assert judge(config, Facts(ticket_checked=True, ticket=ticket, min_attachments=attachments)).ok


def test_every_problem_is_said_at_once_in_the_forms_order(config):
    """The errors come in the order of the form's fields, then the author: what people read top to bottom."""
    verdict = judge(config, Facts(author="mallory", author_allowed=False), users="0", email="x@gitlab.com",
                    expired="2026-01-01", ticket="https://evil.example.com/agent/tickets/1", boxes=(" ", " "))
    assert fields_of(verdict) == ["ticket", "email", "user_count", "expired_on", "checklist", "checklist", "author"]
    empty = policy.evaluate(parse(""), TODAY, config.policy, config.tickets, Facts(author="m", author_allowed=False))
    assert fields_of(empty) == ["form", "author"]  # no form at all: no checklist errors beside it


def test_the_author_refusal_names_the_rule_or_says_no_requester_group(config):
    parsed = parse(_doc())
    facts = Facts(author="mallory", author_allowed=False)
    plain = policy.evaluate(parsed, TODAY, config.policy, config.tickets, facts)
    assert [e.message for e in plain.errors] == [
        "@mallory may not request emergency licenses (not in a requester group); ask someone on the Support team "
        "to file the request"]
    ruled = policy.evaluate(parsed, TODAY, config.policy, config.tickets, facts, requester_rule="not in @support")
    assert [e.message for e in ruled.errors] == [
        "@mallory may not request emergency licenses (not in @support); ask someone on the Support team to file "
        "the request"]


def test_an_override_names_its_approver_in_each_warning(config):
    verdict = judge(config, Facts(override=True, approver="alice"), expired="2026-10-01")
    assert verdict.ok
    assert [(w.field, w.message.split(": ")[0]) for w in verdict.warnings] == [("expired_on", "overridden by @alice")]


def test_the_rule_messages_people_read_whole(config):
    """Each refusal as the requester reads it: what is wrong, and how to fix it."""
    def said(**fields):
        return [(e.field, e.message) for e in judge(config, **fields).errors]

    assert said(users="100,001") == [
        ("user_count", "100,001 users is out of range: the user count must be from 1 to 100,000; use the \"Maximum "
                       "users\" on the Subscription page")]
    # The parser lower-cases a domain; the rule must not rely on it.
    assert [(e.field, e.message) for e in policy.check_email("ops@eu.GitLab.com", config.policy)] == [
        ("email", "`ops@eu.GitLab.com` is at gitlab.com: a license goes to the customer's own end user, never to "
                  "GitLab staff or a reseller; use the ticket requester's email")]
    assert said(email="jane@@example.com")[0][1].startswith("`jane@@example.com` is not a valid email address: ")
    assert said(email="jané@exаmple.com") == [  # a Cyrillic а as well
        ("email", "`jané@exаmple.com` contains non-ASCII characters (é а); retype the address by hand: look-alike "
                  "letters send the key to someone else")]
    assert policy.check_email("ja\x80ne@example.com", config.policy)[0].message.startswith(
        "`ja\x80ne@example.com` contains non-ASCII characters (\x80)")  # the first code point past ASCII
    assert said(email="ja\x7fne@example.com")[0][1].startswith("`ja\x7fne@example.com` is not a valid email address")
    assert said(ticket="https://evil.example.com/agent/tickets/1")[0][1].endswith(
        "; paste the Zendesk ticket's URL (https://gitlab.zendesk.com/agent/tickets/NUMBER) or just its number")
    assert said(boxes=(" ", " ")) == [
        ("checklist", "the box \"the customer has a paid plan and is not a prospect\" is not ticked. Confirm it on the "
                      "ticket, then tick it ([x]); the workflow does not cover prospects or customers without a paid "
                      "plan"),
        ("checklist", "the box \"both screenshots are on the ticket\" is not ticked. Ask the customer for the "
                      "Dashboard and Subscription screenshots, add them to the ticket, then tick it ([x])")]
    assert said(expired="2026-11-20") == [
        ("expired_on", "the license expired on 2026-11-20, so its 14-day grace period runs until 2026-12-04: the "
                       "instance is still working, which is not an emergency; it goes through the normal renewal "
                       "path on the next business day. If the date is wrong, correct it from the customer's "
                       "screenshot")]
    assert said(expired="2026-10-01") == [
        ("expired_on", "the license expired on 2026-10-01 and its grace period ended on 2026-10-15, 43 days ago, "
                       "more than the 3 days this workflow covers: this is a renewal case for the licensing team. If "
                       "the date is wrong, correct it from the customer's screenshot")]


def test_the_duplicate_messages_say_where_the_first_license_is_and_how_to_resend_it(config):
    ticket = judge(config, Facts(prior_licenses=(_prior(400, email="other@example.com", ticket=512345),)))
    assert [(e.field, e.message) for e in ticket.errors] == [
        ("ticket", "ticket 512345 already got a license in #7 (https://gitlab.example.com/s/r/-/issues/7) on "
                   "2025-10-23: one license per ticket. If the customer lost it, send that one again: `license-bot "
                   "find other@example.com --download DIR` writes its file; attach it to the ticket")]
    email = judge(config, Facts(prior_licenses=(_prior(3),)))
    assert [(e.field, e.message) for e in email.errors] == [
        ("email", "jane@example.com already got a license in #7 (https://gitlab.example.com/s/r/-/issues/7) on "
                  "2026-11-24: at most one per customer every 30 days. If it was lost, send that one again "
                  "(`license-bot find jane@example.com --download DIR` writes its file); if the customer needs "
                  "longer, that is a renewal case for the licensing team")]


def test_one_earlier_license_on_the_same_ticket_and_email_is_said_once(config):
    verdict = judge(config, Facts(prior_licenses=(_prior(3, ticket=512345),)))
    assert fields_of(verdict) == ["ticket"]


def test_a_recent_license_to_the_same_email_is_said_while_another_field_does_not_parse(config):
    verdict = judge(config, Facts(prior_licenses=(_prior(3),)), users="lots")
    assert fields_of(verdict) == ["email", "user_count"] and "already got a license in #7" in verdict.errors[0].message
    alone = judge(config, Facts(prior_licenses=(_prior(3),)), users="lots", ticket="the customer's ticket")
    assert fields_of(alone) == ["ticket", "email", "user_count"]


@pytest.mark.parametrize("address, inbox", [(" Ops+Again@ACME.example.com ", "ops@acme.example.com"),
                                            ("+tag@acme.example.com", "+tag@acme.example.com"),
                                            ("a+b+c@x.io", "a@x.io"), (" No-At-Sign ", "no-at-sign"),
                                            ("not+an-address", "not+an-address"),
                                            ('"ops@home"+tag@acme.example.com', '"ops@home"@acme.example.com')])
def test_the_mailbox_an_address_reaches(address, inbox):
    assert policy.mailbox(address) == inbox


def test_a_long_ticket_url_is_shown_to_its_first_100_characters(config):
    """The refused URL is quoted so the requester sees which one; a pasted URL with a long query is cut at 100."""
    url = "https://evil.example.com/agent/tickets/1?" + "x" * 60  # 101 characters
    assert [e.message for e in policy.check_ticket(url, config.tickets)] == [
        f"`{url[:100]}…` is not a ticket on gitlab.zendesk.com; paste the Zendesk ticket's URL "
        "(https://gitlab.zendesk.com/agent/tickets/NUMBER) or just its number"]
    assert policy.check_ticket(url[:100], config.tickets)[0].message.startswith(f"`{url[:100]}` is not a ticket")


def test_an_override_keeps_the_tickets_cc_warning(config):
    """The override's warnings are added to the ticket's, not put in their place: the note must still say the
    license goes to a CC, not the requester."""
    ticket = replace(_ticket(requester="boss@acme.example"), cc_emails=("jane@example.com",))
    verdict = judge(config, Facts(override=True, approver="alice", ticket_checked=True, ticket=ticket),
                    expired="2026-10-01")
    assert verdict.ok
    assert [(w.field, w.message.split(" ")[0]) for w in verdict.warnings] == [("email", "jane@example.com"),
                                                                            ("expired_on", "overridden")]
