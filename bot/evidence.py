"""What counts on one issue, read once and decided here: who wrote the request, whether an approval holds,
whether the bot opened, claimed or closed the issue before, and whose run is emailing it now.

Every answer rests on something GitLab keeps from everyone below the bot (checked in GitLab's source):
- a note's author and a system note: GitLab writes system notes itself, as the user who acted, and nobody
  can edit them (`Note#editable?` is false for system notes). Each description edit leaves one,
  "changed the description", by the editor (`SystemNotes::IssuablesService#change_description`), on Free
  too (description versions are kept on every tier by `VersionedDescription`, but only Premium shows their
  diffs, and REST exposes neither), so the notes API tells who edited;
- a user's own emoji reaction: only its user (or an admin) deletes it (`lib/api/award_emoji.rb`:
  `unauthorized! unless award.user == current_user || current_user.admin?`), and its `created_at` is the
  server's. A second identical reaction by the same user is refused (404 "... has already been taken",
  `AwardEmoji` validates `name` unique per user and awardable), which makes the bot's own reaction a claim;
- the issue's author, which nobody can change.
Labels, label history, titles, descriptions and a note's text are not evidence: Reporters rename and delete
labels (which rewrites label history), anyone who may edit an issue rewrites its description, and Maintainers
edit anyone's comment. Labels stay what people see and filter on.

`gather` is the only part that reads GitLab (through the tracker); everything else is pure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .tracker import Award, Issue, Note

# An approver's reaction that approves the override, next to the override label people see and filter on.
APPROVAL_EMOJI = "key"
# The bot's claims, one name per attempt: the bot reacts with CLAIMS[k] before it records and emails a
# license, and only the run whose reaction GitLab created goes on. A crashed attempt is taken over with the
# next name, never by deleting a reaction (a delete-and-create takeover races).
CLAIMS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "keycap_ten")
DESCRIPTION_EDIT = "changed the description"  # the system note GitLab writes for each description edit
CLOSED = "closed"


@dataclass(frozen=True)
class Edit:
    """One description edit, from its system note: who and when."""

    user_id: int
    username: str
    created_at: datetime


@dataclass(frozen=True)
class Evidence:
    """Everything the bot may believe about one issue, read once per issue and run."""

    author_id: int
    author: str
    bot_id: int
    edits: tuple[Edit, ...]          # description edits, oldest first
    awards: tuple[Award, ...]        # reactions on the issue, oldest first
    closed_by_bot: bool              # a system note "closed" by the bot's user
    may_request: dict[int, bool]     # user id -> may request (author, editors)
    may_approve: dict[int, bool]     # user id -> may approve (users who reacted with APPROVAL_EMOJI)

    @property
    def opened_by_bot(self) -> bool:
        return self.author_id == self.bot_id

    @property
    def last_edit(self) -> Edit | None:
        return self.edits[-1] if self.edits else None

    # --- who wrote the request ---------------------------------------------------------------------

    def unauthorised_editor(self) -> Edit | None:
        """The latest edit by someone who may not request, unless a person who may request saved the
        description after it (they then vouch for the whole text); None when every writer may request."""
        tainted = None
        for edit in self.edits:
            if edit.user_id == self.bot_id:
                continue
            allowed = self.may_request.get(edit.user_id, False)
            if edit.user_id == self.author_id and not allowed:
                continue  # the author's own permission is judged as the author's, once
            if not allowed:
                tainted = edit
            elif tainted is not None and edit.user_id != tainted.user_id:
                tainted = None
        return tainted

    # --- approvals -----------------------------------------------------------------------------------

    def approval(self) -> tuple[Award | None, str | None]:
        """The approver's reaction that approves this description, or why none does.

        An approval holds only for the description the approver saw: a reaction made before the last
        description edit is void. The author and editors cannot approve their own request."""
        writers = {self.author_id, *(e.user_id for e in self.edits)}
        reactions = [a for a in self.awards if a.name == APPROVAL_EMOJI]
        if not reactions:
            return None, f"no approver reacted with :{APPROVAL_EMOJI}: on this issue"
        last = self.last_edit
        valid = [a for a in reactions if a.user_id not in writers and self.may_approve.get(a.user_id, False)]
        current = [a for a in valid if last is None or a.created_at > last.created_at]
        if current:
            return current[-1], None
        if valid:
            a = valid[-1]
            return None, (f"@{a.username} approved at {a.created_at:%Y-%m-%d %H:%M} UTC, but @{last.username} "
                          f"changed the description at {last.created_at:%Y-%m-%d %H:%M} UTC, after it: an approval "
                          f"holds only for the description the approver saw, so it is void; the approver must "
                          f"look again and react with :{APPROVAL_EMOJI}: again (remove it, then add it)")
        a = reactions[-1]
        if a.user_id in writers:
            return None, f"@{a.username} wrote this request and may not approve it"
        return None, f"@{a.username} is not an approver"

    # --- the bot's own history -------------------------------------------------------------------------

    def claims(self) -> list[Award]:
        """The bot's claim reactions, by attempt."""
        mine = {a.name: a for a in self.awards if a.user_id == self.bot_id and a.name in CLAIMS}
        return [mine[name] for name in CLAIMS if name in mine]

    @property
    def claimed_before(self) -> bool:
        return bool(self.claims())


def claim_attempt(claims: list[Award], announced: int, holder: str | None, *, me: str, alive: Callable[[str], bool],
                  now: datetime, stale_after: timedelta) -> tuple[int | None, str]:
    """Which claim (an index into CLAIMS) this run may try to take, or None and why another run holds it.

    `announced` and `holder` are what the status note says: before it reacts, a run writes there which claim
    it is taking and who it is ("host:pid"), and clears the holder once its attempt's outcome is written.
    A claim whose holder is known to be gone (its attempt finished, or its process is dead on this host) is
    taken over with the next name; one whose holder is unknown only once it is `stale_after` old."""
    top = len(claims) - 1
    gone = holder is None or holder == me or not alive(holder)  # `me`: an earlier run of this very process
    if announced > top:  # announced, not (yet) reacted
        if not gone:
            return None, f"another run ({holder}) is taking this request's claim"
        return announced, ""
    if top < 0:
        return 0, ""
    if announced == top and gone:
        return top + 1, ""
    made = claims[top].created_at
    if now - made > stale_after:
        return top + 1, ""
    who = f" ({holder})" if announced == top and holder else ""
    return None, (f"another run{who} claimed this request at {made:%H:%M:%S} UTC and is making or emailing its "
                  "license; this run leaves it alone")


def member_rule(users: tuple[str, ...], groups: tuple[str, ...], min_level: int,
                level_of: Callable[[str, int], int]) -> Callable[[str, int], bool]:
    """Who may (request, or approve): listed by name, or an active *direct* member of a listed group with at
    least `min_level` (`level_of(group, user_id)`, 0 for none; the tracker asks `members/:user_id`)."""
    def may(username: str, user_id: int) -> bool:
        return username in users or any(level_of(g, user_id) >= min_level for g in groups)
    return may


def gather(issue: Issue, notes: list[Note], awards: list[Award], bot_id: int,
           may_request: Callable[[str, int], bool], may_approve: Callable[[str, int], bool]) -> Evidence:
    """The evidence from an issue's notes (system notes included) and reactions; memberships asked once per user."""
    edits = tuple(Edit(n.author_id, n.author_username, n.created_at) for n in notes
                  if n.system and n.body == DESCRIPTION_EDIT)
    closed = any(n.system and n.body == CLOSED and n.author_id == bot_id for n in notes)
    requesters = {issue.author_id: may_request(issue.author_username, issue.author_id)}
    for edit in edits:
        if edit.user_id not in requesters and edit.user_id != bot_id:
            requesters[edit.user_id] = may_request(edit.username, edit.user_id)
    approvers: dict[int, bool] = {}
    for award in awards:
        if award.name == APPROVAL_EMOJI and award.user_id not in approvers:
            approvers[award.user_id] = may_approve(award.username, award.user_id)
    return Evidence(issue.author_id, issue.author_username, bot_id, edits, tuple(awards), closed, requesters,
                    approvers)
