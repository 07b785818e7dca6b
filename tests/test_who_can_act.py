"""Every problem at once, each with the one action that solves it, by who can act (issue 18, "What to build", 1).

Findings: a request failed only on "User count"; once fixed, the next run failed it on the 30-day email rule,
which was knowable already. And every failure said "fix the description", also for a renewal case, a duplicate,
a missing screenshot or a requester who may not request.
"""

from __future__ import annotations

from datetime import date

import pytest

from bot import actions, messages, policy, request
from bot import config as config_mod
from bot.actions import Actors

from .test_processor import World, filled, outcomes

TODAY = date(2026, 11, 27)


@pytest.fixture
def world(config, private_key):
    return World(config, private_key)


def test_a_duplicate_is_said_in_the_same_pass_as_a_field_that_did_not_parse(world):
    world.tracker.file(filled())
    assert outcomes(world.run()) == ["succeeded"]
    world.tracker.file(filled(ticket="600001", users="lots"))  # the same address, and a user count to fix
    assert outcomes(world.run()) == ["failed"]
    fields = [f for f, _ in world.status(2).errors]
    assert fields == ["email", "user_count"]  # both now: fixing the count would not have been enough


def _policy_messages() -> dict[str, tuple[str, str]]:
    """One real message of each rule, made by bot.policy itself (not typed here)."""
    cfg = config_mod.parse({}, {})
    wanted = policy.Wanted(512345, "jane@example.com")
    prior = (policy.PriorLicense("#1", "https://gitlab.example.com/x/-/issues/1", "jane@example.com", 512345,
                                 TODAY),)
    duplicates = policy.check_duplicates(wanted, prior, TODAY, cfg.policy)
    unticked = policy.check_checklist(request.parse("### Checklist\n- [ ] paid\n- [ ] screenshots\n"))
    ticket = policy.TicketFacts(512345, "open", "jane@example.com", "Jane", None, (), 0)
    attachments, _ = policy.check_against_ticket(512345, "jane@example.com", ticket, 2)
    unreadable = policy.evaluate(request.parse(filled(ticket="512345", expired="2026-11-12")), TODAY, cfg.policy,
                                 cfg.tickets, policy.Facts(ticket_checked=True, ticket_unreadable="403"))
    author = policy.evaluate(request.parse(filled(expired="2026-11-12")), TODAY, cfg.policy, cfg.tickets,
                             policy.Facts(author="mallory", author_allowed=False))
    return {
        "renewal": policy.check_scope(date(2026, 10, 1), TODAY, cfg.policy)[0],
        "in grace": policy.check_scope(date(2026, 11, 20), TODAY, cfg.policy)[0],
        "same ticket": duplicates[0],
        "user count": policy.check_user_count(0, cfg.policy)[0],
        "email": policy.check_email("x@gitlab.com", cfg.policy)[0],
        "paid plan box": unticked[0],
        "screenshots box": unticked[1],
        "attachments": next(e for e in attachments if e.field == "checklist"),
        "unreadable ticket": next(e for e in unreadable.errors if e.field == "ticket"),
        "author": next(e for e in author.errors if e.field == "author"),
    }


@pytest.mark.parametrize("rule, actor", [
    ("renewal", actions.LICENSING), ("in grace", actions.LICENSING), ("same ticket", actions.APPROVER),
    ("user count", actions.REQUESTER), ("email", actions.REQUESTER), ("paid plan box", actions.REQUESTER),
    ("screenshots box", actions.CUSTOMER), ("attachments", actions.CUSTOMER),
    ("unreadable ticket", actions.OPERATOR), ("author", actions.SUPPORT),
])
def test_each_rule_is_for_the_one_who_can_act_on_it(rule, actor):
    problem = _policy_messages()[rule]
    assert actions.who(problem.field, problem.message) == actor, problem


def test_the_note_lists_every_problem_under_who_can_act_naming_approvers_and_where_renewals_go():
    cfg = config_mod.parse({"requests": {"approver_groups": ["support-managers"], "approver_users": ["mike"],
                                         "renewals": "renewals@example.com"}}, {})
    made = _policy_messages()
    problems = [made[k] for k in ("user count", "screenshots box", "same ticket", "author", "renewal",
                                  "unreadable ticket")]
    note = messages.failure("alice", problems, actors=Actors.from_config(cfg.requests))
    order = ["You, the requester: fix the issue description", "**User count**", "The customer: ask them",
             "**Checklist**", "An approver (@mike or a direct member of support-managers, not the requester)",
             '~"license-request-override"', "Someone who may request (a direct member of support)",
             "The licensing team: this is a renewal case", "send it to renewals@example.com",
             "The bot's operator"]
    positions = [note.index(text) for text in order]
    assert positions == sorted(positions), note
    assert note.count("@alice") == 1  # one notification
    assert "license-bot find jane@example.com --download DIR" in made["same ticket"].message  # resend: how


def test_an_override_still_turns_only_scope_and_duplicates_into_warnings():
    cfg = config_mod.parse({}, {})
    parsed = request.parse(filled(users="lots", expired="2026-10-01"))
    facts = policy.Facts(override=True, approver="mike", prior_licenses=())
    verdict = policy.evaluate(parsed, TODAY, cfg.policy, cfg.tickets, facts)
    assert [e.field for e in verdict.errors] == ["user_count"] and [w.field for w in verdict.warnings] == ["expired_on"]
