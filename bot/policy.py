"""The workflow's rules, applied to a parsed request. Pure: facts about GitLab are passed in.

Input-validity rules (user count, email, ticket, checklist, author) are always errors. The scope and
duplicate rules become recorded warnings on an issue that carries the override label.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from . import tickets as ticket_links
from .config import PolicyConfig, TicketsConfig
from .request import FieldError, LicenseRequest, ParseResult, quote


@dataclass(frozen=True)
class PriorLicense:
    """A license already issued, as found in the tracker."""

    issue_ref: str  # e.g. "#12"
    issue_url: str
    email: str
    ticket_id: int | None
    created_on: date


@dataclass(frozen=True)
class TicketFacts:
    """What Zendesk says about the request's ticket."""

    id: int
    status: str
    requester_email: str
    requester_name: str
    organization: str | None
    cc_emails: tuple[str, ...]
    attachments: int


@dataclass(frozen=True)
class Facts:
    """What only GitLab knows. None means "not looked up" (the offline check-request)."""

    author: str | None = None
    author_allowed: bool | None = None
    override: bool = False  # the override label, added by an approver (see the processor)
    prior_licenses: tuple[PriorLicense, ...] | None = None
    approver: str | None = None
    ticket_checked: bool = False          # Zendesk was asked (zendesk.enabled)
    ticket: TicketFacts | None = None     # None when checked: the ticket does not exist
    ticket_unreadable: str | None = None  # why Zendesk would not show the ticket to the API user (a 403)
    min_attachments: int = 2


@dataclass(frozen=True)
class Verdict:
    request: LicenseRequest | None
    errors: tuple[FieldError, ...]
    warnings: tuple[FieldError, ...]

    @property
    def ok(self) -> bool:
        return self.request is not None and not self.errors


def evaluate(parsed: ParseResult, today: date, policy: PolicyConfig, tickets: TicketsConfig,
             facts: Facts = Facts(), requester_rule: str = "") -> Verdict:
    errors = list(parsed.errors)
    waivable: list[FieldError] = []
    request = parsed.request
    # Every field that parsed is checked, so all problems are reported at once.
    if parsed.user_count is not None:
        errors += check_user_count(parsed.user_count, policy)
    if parsed.email is not None:
        errors += check_email(parsed.email, policy)
    if parsed.ticket_url is not None:
        errors += check_ticket(parsed.ticket_url, tickets)
    if parsed.expired_on is not None:
        waivable += check_scope(parsed.expired_on, today, policy)
    if facts.prior_licenses is not None and (request is not None or parsed.email or parsed.ticket_url):
        # Also when another field did not parse: a duplicate known now is said now, not after the next fix.
        waivable += check_duplicates(request or Wanted(parsed.ticket_id, parsed.email or ""),
                                     facts.prior_licenses, today, policy)
    if not any(e.field == "form" for e in errors):  # no form at all: the checklist adds nothing
        errors += check_checklist(parsed)
    ticket_warnings: list[FieldError] = []
    # The ticket is checked whenever its number parsed, whatever else did not: a solved ticket known now is said
    # now, not after the user count is fixed. The email rule needs the email, and is left out without one.
    if parsed.ticket_id is not None and facts.ticket_unreadable:
        errors.append(FieldError("ticket", f"the bot may not read ticket {parsed.ticket_id} in Zendesk "
                                           f"({facts.ticket_unreadable}); check the number, or ask a Zendesk admin "
                                           "to give the bot's API user access to the ticket's group or brand"))
    elif parsed.ticket_id is not None and facts.ticket_checked:
        found, ticket_warnings = check_against_ticket(parsed.ticket_id, parsed.email, facts.ticket,
                                                      facts.min_attachments)
        errors += found
    if facts.author_allowed is False:
        errors.append(FieldError("author", f"@{facts.author} may not request emergency licenses "
                                           f"({requester_rule or 'not in a requester group'}); ask someone "
                                           "on the Support team to file the request"))
    warnings: list[FieldError] = list(ticket_warnings)
    if facts.override:
        by = f" by @{facts.approver}" if facts.approver else ""
        warnings += [FieldError(e.field, f"overridden{by}: {e.message}") for e in waivable]
    else:
        errors += waivable
    return Verdict(request=request, errors=tuple(_in_field_order(errors)), warnings=tuple(warnings))


@dataclass(frozen=True)
class Wanted:
    """What a request asks for as far as it parsed: enough for the duplicate rules."""

    ticket_id: int | None
    email: str


_ORDER = ("form", "ticket", "email", "user_count", "expired_on", "checklist", "author", "override", "license")


def _in_field_order(errors: list[FieldError]) -> list[FieldError]:
    return sorted(errors, key=lambda e: _ORDER.index(e.field) if e.field in _ORDER else len(_ORDER))


def check_user_count(count: int, policy: PolicyConfig) -> list[FieldError]:
    if 1 <= count <= policy.max_users:
        return []
    return [FieldError("user_count", f"{count:,} users is out of range: the user count must be from 1 to "
                                     f"{policy.max_users:,}; use the \"Maximum users\" on the Subscription page")]


def check_email(email: str, policy: PolicyConfig) -> list[FieldError]:
    from email_validator import EmailNotValidError, validate_email  # only when a request is judged

    odd = sorted({c for c in email if ord(c) > 127})
    if odd:
        return [FieldError("email", f"{quote(email)} contains non-ASCII characters ({' '.join(odd)}); retype the "
                                    "address by hand: look-alike letters send the key to someone else")]
    try:
        validate_email(email, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        return [FieldError("email", f"{quote(email)} is not a valid email address: {exc}")]
    domain = email.rpartition("@")[2].lower()
    for denied in policy.deny_email_domains:
        if domain == denied or domain.endswith("." + denied):
            return [FieldError("email", f"{quote(email)} is at {denied}: a license goes to the customer's own "
                                        "end user, never to GitLab staff or a reseller; use the ticket requester's "
                                        "email")]
    return []


def check_ticket(url: str, tickets: TicketsConfig) -> list[FieldError]:
    why = ticket_links.problem(url, tickets.base_url)
    if why is None:
        return []
    return [FieldError("ticket", f"{quote(url, 100)} {why}; paste the Zendesk ticket's URL "
                                 f"({tickets.base_url}/agent/tickets/NUMBER) or just its number")]


def check_checklist(parsed: ParseResult) -> list[FieldError]:
    """One message per unticked box, each with what to confirm and how."""
    errors = []
    if not parsed.checklist.paid_plan:
        errors.append(FieldError("checklist", "the box \"the customer has a paid plan and is not a prospect\" is not "
                                              "ticked. Confirm it on the ticket, then tick it ([x]); the workflow "
                                              "does not cover prospects or customers without a paid plan"))
    if not parsed.checklist.screenshots:
        errors.append(FieldError("checklist", "the box \"both screenshots are on the ticket\" is not ticked. Ask the "
                                              "customer for the Dashboard and Subscription screenshots, add them to "
                                              "the ticket, then tick it ([x])"))
    return errors


def check_against_ticket(ticket_id: int, email: str | None, ticket: TicketFacts | None,
                         min_attachments: int) -> tuple[list[FieldError], list[FieldError]]:
    """The request's ticket number and email (None: the email did not parse, so its rule waits) against the
    Zendesk ticket: it exists and is not solved, the email is the requester's (or a CC's, with a warning), and
    the screenshots are attached. (errors, warnings)."""
    if ticket is None:
        return [FieldError("ticket", f"ticket {ticket_id} does not exist in Zendesk; check the number "
                                     "and paste the ticket's address")], []
    errors, warnings = [], []
    if ticket.status == "solved":
        errors.append(FieldError("ticket", f"ticket {ticket.id} is solved: the emergency workflow is for an open "
                                           "ticket; reopen it with the customer, or file a new ticket"))
    elif ticket.status in ("closed", "merged"):  # Zendesk never reopens these: a follow-up ticket is the way
        how = "merged into another ticket" if ticket.status == "merged" else "closed"
        errors.append(FieldError("ticket", f"ticket {ticket.id} is {how}, and Zendesk does not reopen it: "
                                           + ("use the ticket it was merged into" if ticket.status == "merged" else
                                              "create a follow-up ticket for the customer")
                                           + " and put that ticket in the request"))
    if email is None or email.casefold() == ticket.requester_email.casefold():
        pass  # no address to compare (it did not parse: its own error says so), or the requester's
    elif email.casefold() in (cc.casefold() for cc in ticket.cc_emails):
        warnings.append(FieldError("email", f"{email} is on the ticket's CCs, not its requester "
                                            f"({ticket.requester_email}); the license goes to {email}"))
    else:
        errors.append(FieldError("email", f"{quote(email)} is neither the ticket's requester "
                                          f"({ticket.requester_email}) nor on its CCs: a typo would send the "
                                          "license to a stranger; use the requester's address, or add the "
                                          "recipient to the ticket's CCs first"))
    if ticket.attachments < min_attachments:
        have = f"{ticket.attachments} attachment{'s' if ticket.attachments != 1 else ''}"
        errors.append(FieldError("checklist", f"the ticket has {have}; ask the customer for both screenshots "
                                              "(Admin > Overview > Dashboard and Admin > Subscription) and attach "
                                              "them to the ticket"))
    return errors, warnings


def check_scope(expired_on: date, today: date, policy: PolicyConfig) -> list[FieldError]:
    """The grace period after expiry must have ended within the last `window_days` days."""
    grace_ends = expired_on + timedelta(days=policy.scope.grace_period_days)
    since = (today - grace_ends).days
    if 0 <= since <= policy.scope.window_days:
        return []
    if since < 0:
        return [FieldError("expired_on", f"the license expired on {expired_on}, so its "
                                         f"{policy.scope.grace_period_days}-day grace period runs until {grace_ends}: "
                                         "the instance is still working, which is not an emergency; it goes "
                                         "through the normal renewal path on the next business day. If the date is "
                                         "wrong, correct it from the customer's screenshot")]
    return [FieldError("expired_on", f"the license expired on {expired_on} and its grace period ended on "
                                     f"{grace_ends}, {since} days ago, more than the {policy.scope.window_days} days "
                                     "this workflow covers: this is a renewal case for the licensing team. If the "
                                     "date is wrong, correct it from the customer's screenshot")]


def check_duplicates(request: LicenseRequest | Wanted, prior: tuple[PriorLicense, ...], today: date,
                     policy: PolicyConfig) -> list[FieldError]:
    errors = []
    same_ticket = [p for p in prior if request.ticket_id is not None and p.ticket_id == request.ticket_id]
    if same_ticket:
        p = same_ticket[0]
        errors.append(FieldError("ticket", f"ticket {request.ticket_id} already got a license in {p.issue_ref} "
                                           f"({p.issue_url}) on {p.created_on}: one license per ticket. If the "
                                           f"customer lost it, send that one again: `license-bot find {p.email} "
                                           "--download DIR` writes its file; attach it to the ticket"))
    cutoff = today - timedelta(days=policy.email_cooldown_days)
    key = mailbox if policy.cooldown_ignores_subaddress else str.casefold
    recent = [p for p in prior if request.email and key(p.email) == key(request.email) and p.created_on > cutoff
              and p not in same_ticket]
    if recent:
        p = recent[0]
        same = f"{request.email} already got" if p.email.casefold() == request.email.casefold() else \
            f"{request.email} is the mailbox of {p.email} (a +tag reaches the same inbox), which already got"
        errors.append(FieldError("email", f"{same} a license in {p.issue_ref} ({p.issue_url}) "
                                          f"on {p.created_on}: at most one per customer every "
                                          f"{policy.email_cooldown_days} days. If it was lost, send that one again "
                                          f"(`license-bot find {p.email} --download DIR` writes its file); if the "
                                          "customer needs longer, that is a renewal case for the licensing team"))
    return errors


def mailbox(address: str) -> str:
    """The inbox an address reaches: `local+tag@domain` is delivered to `local@domain` (RFC 5233 sub-addressing,
    which Gmail, Microsoft 365 and Postfix's default recipient_delimiter all honour), case-insensitively."""
    local, at, domain = address.strip().casefold().rpartition("@")
    return (local.split("+", 1)[0] or local) + at + domain if at else address.strip().casefold()
