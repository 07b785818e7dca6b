"""Who can solve each problem with a request, and so what the failure note asks of whom. Pure.

"Fix the description" is the right action only when the description is wrong. A request out of scope is a renewal
case for the licensing team; a second license for a ticket or an address is an approver's decision; a missing
screenshot is the customer's to send; a request by someone who may not request is for someone who may to file;
a ticket the bot may not read is its operator's to fix. Each problem is
listed under the one who can act, so nobody edits a description that was never the problem.

Problems are kept on the issue as (field, message) pairs (bot.status), so who can act is read from them: the field,
and for the rules that share a field, the words of the rule's own message (bot.policy), which a test pins.
"""

from __future__ import annotations

from dataclasses import dataclass

REQUESTER, CUSTOMER, APPROVER, SUPPORT, LICENSING, OPERATOR = (
    "requester", "customer", "approver", "support", "licensing", "operator")
ORDER = (REQUESTER, CUSTOMER, APPROVER, SUPPORT, LICENSING, OPERATOR)


@dataclass(frozen=True)
class Actors:
    """The people the note names, from the configuration."""

    approvers: str = "a Support manager"
    override_label: str = "license-request-override"
    renewals: str = "the licensing team"
    requesters: str = "the Support team"

    @classmethod
    def from_config(cls, requests) -> Actors:
        """From `requests` (bot.config.RequestsConfig): who may approve, the label, where renewals go."""
        names = [f"@{u}" for u in requests.approver_users] + [f"a direct member of {g}"
                                                             for g in requests.approver_groups]
        requesters = [f"@{u}" for u in requests.requester_users] + [f"a direct member of {g}"
                                                                   for g in requests.requester_groups]
        return cls(approvers=" or ".join(names) or cls.approvers, override_label=requests.override_label,
                   renewals=requests.renewals, requesters=" or ".join(requesters) or cls.requesters)


def who(field: str, message: str) -> str:
    """Who can solve this problem (one of ORDER)."""
    if field == "expired_on" and "grace period" in message:  # in grace still, or past the window: a renewal
        return LICENSING
    if field in ("ticket", "email") and "already got a license" in message:  # one per ticket / per address
        return APPROVER
    if field == "checklist" and "screenshots" in message:
        return CUSTOMER
    if field == "author":  # the author may not request: someone who may files it
        return SUPPORT
    if field == "ticket" and "may not read ticket" in message:  # the bot's Zendesk access
        return OPERATOR
    return REQUESTER


def grouped(problems) -> list[tuple[str, list]]:
    """PROBLEMS (objects with .field and .message) by who can act, in ORDER, each group in its given order."""
    groups: dict[str, list] = {actor: [] for actor in ORDER}
    for p in problems:
        groups[who(p.field, p.message)].append(p)
    return [(actor, items) for actor, items in groups.items() if items]
