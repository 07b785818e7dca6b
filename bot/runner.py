"""The bot loop: find the requests, hand each to the processor, sum up.

Exit codes: 0 every request reached a recorded outcome; 2 some wait for a retry; 1 the bot could
not work at all (configuration, credentials, GitLab unreachable or refusing).
"""

from __future__ import annotations

import json
import re
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

from . import trigger
from .context import Context
from .mailer import MailError
from .runlock import RunLock
from .signer import SignerError
from .tracker import TrackerError
from .zendesk import ZendeskError

if TYPE_CHECKING:
    from .processor import Result


@dataclass
class Summary:
    found: int = 0
    succeeded: int = 0
    failed: int = 0
    retrying: int = 0
    skipped: int = 0
    unchanged: int = 0  # of the skipped: already said on an earlier run, counted and not printed again
    recorded: list[str] = field(default_factory=list)  # license ids this run added to the record
    api_calls: int = 0
    locked_out: bool = False
    reminded: list[str] = field(default_factory=list)  # license ids whose trial-end reminder this run posted
    error: str | None = None
    note: str | None = None
    results: list[Result] = field(default_factory=list)

    def add(self, result: Result) -> None:
        self.results.append(result)
        setattr(self, result.outcome, getattr(self, result.outcome) + 1)  # outcomes are named as the counts

    @property
    def exit_code(self) -> int:
        if self.error:
            return 1
        return 2 if self.retrying or self.locked_out else 0

    def line(self, dry_run: bool = False) -> str:
        """The run's last words: the counts, then which issues failed or wait (a dry run says what it would do)."""
        if dry_run:
            text = (f"found {self.found}, would succeed {self.succeeded}, would fail {self.failed}, would retry "
                    f"{self.retrying}, would skip {self.skipped}, API calls {self.api_calls}")
        else:
            text = (f"found {self.found}, succeeded {self.succeeded}, failed {self.failed}, retrying "
                    f"{self.retrying}, skipped {self.skipped}, licenses made {len(self.recorded)}, API calls "
                    f"{self.api_calls}")
        if self.unchanged:
            text += f"\n{self.unchanged} of the skipped unchanged since an earlier run (not listed above)"
        for outcome, what in (("failed", "each status note says what to do"),
                              ("retrying", "the next run tries again")):
            iids = [r.iid for r in self.results if r.outcome == outcome]
            if iids:
                text += f"\n{WOULD[outcome] if dry_run else outcome}: {', '.join(f'#{i}' for i in iids)} ({what})"
        return text

    def to_json(self) -> str:
        data = asdict(self)
        data["results"] = [quiet(r) for r in self.results]  # the artifact names no customer
        data["exit_code"] = self.exit_code
        return json.dumps(data, indent=2, default=str)


# Artifacts and job logs are read by more people, for longer, than the issues: they hold issue numbers, outcomes,
# license ids and the names of the fields at fault, never an address or what a field said (the status note on the
# issue, and `license-bot find`, are the place for those).
HELD_FOR_A_PERSON = "held for a person"  # how the processor's holds begin (names no customer)
_LICENSE_ID = re.compile(r"\blicense ([0-9a-f]{16})\b")
_TICKET = re.compile(r"\bticket \d+")
_ADDRESS = re.compile(r"[^\s@<>()\[\]'\"`,;:]+@[^\s@<>()\[\]'\"`,;:]+")


def quiet(result: Result) -> dict:
    """One result as the report and the log may show it."""
    found = _LICENSE_ID.search(result.detail)
    reason = None
    fields = [field_name for field_name, _ in result.problems]
    if result.outcome in ("retrying", "skipped"):  # why it waits: the bot's words, any address in them hidden
        reason = _ADDRESS.sub("[address]", result.detail)[:200]
    elif result.outcome == "succeeded" and ("NOT posted" in result.detail or "WITHOUT the file" in result.detail):
        # Emailed, but a person must finish the note on the ticket: the log says so, without the ticket's number.
        reason = _TICKET.sub("the ticket", result.detail.split("; ", 1)[-1])[:200]
    elif result.outcome == "failed" and result.detail.startswith(HELD_FOR_A_PERSON):
        # A hold is no field at fault: the bot stopped for a person. Only these words, never why (its reason
        # may quote a record entry's address); the status note on the issue says why.
        reason, fields = HELD_FOR_A_PERSON, []
    return {"iid": result.iid, "outcome": result.outcome, "license_id": found.group(1) if found else None,
            "fields": fields, "reason": reason}


# Skips that repeat on every run until a person acts: said once (when the request failed or was held), then counted.
UNCHANGED = ("failed earlier and not updated since", "failed earlier; its description has not changed",
             "held for a person", "its license was not delivered; waiting for a person")
WOULD = {"succeeded": "would succeed", "failed": "would fail", "retrying": "would retry", "skipped": "would skip"}


def log_lines(ref: str, result: Result, dry_run: bool = False) -> list[str]:
    """The job log's lines for one result: what `quiet` keeps, in words."""
    from . import messages

    q = quiet(result)
    head = f"{ref} {WOULD[result.outcome] if dry_run else result.outcome}"
    if q["license_id"]:
        head += f": license {q['license_id']}"
    if q["fields"]:
        head += f"{',' if q['license_id'] else ':'} {len(q['fields'])} problem{'s' if len(q['fields']) != 1 else ''}"
    if q["reason"]:
        head += f": {q['reason']}"
    return [head] + ["    " + messages.FIELD_NAMES.get(f, f) for f in q["fields"]]


def _fatal(exc: TrackerError) -> bool:
    """Errors that stop the whole run: every other request would hit them too."""
    return exc.status in (401, 403) or (exc.status is None and not exc.transient)


def run(ctx: Context, *, issue_iid: int | None = None, trigger_payload: str | None = None,
        say: Callable[[str], None] = print, dry_run: bool = False) -> Summary:
    summary = Summary()
    tracker = ctx.tracker
    lock = RunLock(tracker, ctx.now, timedelta(minutes=ctx.config.run.lock_stale_minutes),
                   where=f"{ctx.config.gitlab.url}/{ctx.config.gitlab.project}")
    try:
        if trigger_payload is not None:
            decision = trigger.decide(trigger_payload, ctx.config.gitlab.project, tracker.me()["username"])
            say(decision.reason)
            if decision.iid is None:
                summary.note = decision.reason
                return summary
            issue_iid = decision.iid

        def find() -> list:
            if issue_iid is None:
                return tracker.open_requests()
            try:
                return [tracker.get_issue(issue_iid)]
            except TrackerError as exc:
                # An event for an issue deleted (or moved away and gone) since: nothing to do, and no failed job.
                if trigger_payload is None or exc.status != 404:
                    raise
                summary.note = f"ignored: issue #{issue_iid} no longer exists (deleted or moved since the event)"
                say(summary.note)
                return []

        tracker.ensure_can_work()  # a public tracker, or a token blind to confidential issues, stops here
        issues = find()  # an idle run ends here, after two API calls
        if issues:
            if not lock.acquire():
                other = lock.other
                summary.found, summary.locked_out = len(issues), True
                summary.note = ("another run holds the run lock" + (f" ({other.describe()})" if other else "")
                                + ": it handles the requests; nothing done")
                say(summary.note)
                return summary
            issues = find()  # again: what another run wrote before we held the lock must be seen
            for group in sorted({*ctx.config.requests.requester_groups, *ctx.config.requests.approver_groups}):
                # a group, or its members, the token cannot read: a configuration error, before any request
                tracker.member_level(group, tracker.me()["id"])
            ctx.mailer.check()  # mail settings that cannot work stop the run here, not at a customer
            if ctx.zendesk is not None:
                _check_zendesk(ctx)
        summary.found = len(issues)
        if issues:
            say(f"{len(issues)} request{'s' if len(issues) != 1 else ''} to "
                f"{'look at (dry run: nothing is written)' if dry_run else 'process'}")
            _keep_keys_confidential(ctx, say)
            _process_all(issues, ctx, summary, say, dry_run)
        if ctx.config.reminders.enabled and not summary.error:
            summary.reminded = remind(ctx, lock, say)
    except TrackerError as exc:
        summary.error = str(exc)
    except MailError as exc:  # only configuration problems get here: the settings, not the customer
        summary.error = f"the mail settings cannot work: {exc}"
    except ZendeskError as exc:
        summary.error = str(exc)
    except SignerError as exc:  # a token removed or reset mid-run: the configuration, not the customers
        summary.error = str(exc)
    finally:
        try:
            lock.release()
        except TrackerError as exc:  # a lock left behind is taken over later; say so
            say(f"could not release the run lock: {exc}")
        summary.api_calls = tracker.api_calls
        if "record" in ctx.__dict__:  # an idle run never read the record
            summary.recorded = [entry.license_id for entry in ctx.record.added]
        summary.error = ctx.scrub(summary.error) if summary.error else None
    return summary


def remind(ctx: Context, lock: RunLock, say: Callable[[str], None]) -> list[str]:
    """Remind each requester once, before their license expires (reminders.enabled).

    Cost: when no reminder is due, one call: the issues the bot's own user opened recently enough that their
    license may still be due (one call per 100 of them; `_may_be_due`), and a second while a license is inside its
    window but reminded already; none in a run that has read the record already. Only when one may be due and is
    not reminded, the verified record (the bot's user, its issues, the anchor) and one call per license inside its
    window (its entry's reactions), and the reminder's own calls.
    Exactly once: the work is done under the run lock, the bot's :alarm_clock: on the entry claims it before
    anything is posted, and the note's hidden marker is looked for among the bot's own notes first. A run killed
    after the claim leaves it without :bell:, and the next run (holding the lock: no other run is posting) finds
    its note or posts it: never none, never two. Slack is told only by the run whose :bell: (the note is done)
    GitLab accepted, so never twice; a run killed during that one Slack post loses it rather than risk a second
    (the note, with its @mention, stands)."""
    from . import reminders
    from . import status as status_mod
    from .slack import SlackError

    if not ctx.record.loaded and not _may_be_due(ctx):
        return []  # the usual idle run: one listing of the bot's recent issues was its extra call
    if ctx.record.damage():  # an entry the bot cannot read may be anyone's: remind nobody until it is repaired
        return []
    due = reminders.due(ctx.record.entries(), ctx.today, ctx.config.reminders.days_before)
    if not due:
        return []
    me = ctx.tracker.me()["id"]
    done: list[str] = []
    by_id = {r.entry.license_id: r for r in ctx.record.entries()}
    for entry_iid, license_id in due:
        mine = {a.name for a in ctx.tracker.awards(entry_iid) if a.user_id == me}
        if reminders.DONE_EMOJI in mine:
            continue
        recorded = by_id[license_id]
        note = ctx.tracker.status_note(recorded.entry.issue_iid)
        state = status_mod.read(note.body) if note else None
        if state is None or state.step != status_mod.DELIVERED or state.license_id != license_id:
            continue  # held, undelivered, or another license: nobody is told this one is in use
        if lock.held is None:
            if not lock.acquire():
                say("reminders wait: another run holds the run lock")
                break
            # read again under the lock: another run may have finished this one while we waited
            mine = {a.name for a in ctx.tracker.awards(entry_iid) if a.user_id == me}
            if reminders.DONE_EMOJI in mine:
                continue
        if reminders.CLAIM_EMOJI not in mine:
            ctx.tracker.award(entry_iid, reminders.CLAIM_EMOJI)  # refused: an earlier run claimed it; finish it
        reminder = reminders.Reminder(
            license_id, entry_iid, recorded.entry.issue_iid, recorded.entry.issue_url, state.author,
            recorded.entry.email, recorded.entry.ticket_url, date.fromisoformat(recorded.entry.expires_on))

        def landed(notes, license_id=license_id):
            return next((n for n in notes if n.author_id == me and reminders.posted([n.body], license_id)), None)
        if landed(ctx.tracker.comments(reminder.request_iid)) is None:
            ctx.tracker.add_note(reminder.request_iid, ctx.scrub(reminders.note_text(reminder, ctx.today)), landed)
        if ctx.tracker.award(entry_iid, reminders.DONE_EMOJI) is None:
            continue  # another run marked it done, and told Slack: never twice
        if ctx.notifier is not None:
            try:
                ctx.notifier.post(ctx.scrub(reminders.slack_text(reminder, ctx.today)))
            except SlackError as exc:
                say(f"reminder for license {license_id}: the Slack post failed ({exc})")
        say(f"reminded #{reminder.request_iid}: license {license_id} expires {recorded.entry.expires_on}")
        done.append(license_id)
    return done


def _may_be_due(ctx: Context) -> bool:
    """Whether a reminder may be due today, from one listing: the issues the bot's own user opened since the oldest
    a still-running license's entry can be. GitLab filters on the author (`scope=created_by_me`: the token's user;
    nobody else can open an issue as the bot) and on `created_after` (set by GitLab when the issue is opened), so
    no entry that can be due is left out. While one is inside its window, a second listing: those the bot marked
    reminded (its own :bell:, which only it can add or remove; the verified read skips them too). Nothing read here
    is trusted: a yes is checked against the verified record before anything is posted."""
    from datetime import datetime, time, timezone

    from . import reminders
    from .config import MAX_DURATION_DAYS

    since = datetime.combine(reminders.window_start(ctx.today, MAX_DURATION_DAYS), time(), timezone.utc)
    maybe = reminders.candidates(((i.iid, i.description) for i in ctx.tracker.recent_bot_issues(since)), ctx.today,
                                 ctx.config.reminders.days_before)
    if not maybe:
        return False
    done = {i.iid for i in ctx.tracker.recent_bot_issues(since, reacted=reminders.DONE_EMOJI)}
    return any(iid not in done for iid in maybe)


def _keep_keys_confidential(ctx: Context, say: Callable[[str], None]) -> None:
    """Edited record entries the bot can prove restored; every issue that holds a key confidential again, and
    entries closed, whoever changed them (a Developer may make any issue non-confidential: then a Guest reads
    the keys)."""
    from .tracker import IssueEdit

    repairs = ctx.record.repairs()
    for iid, text in repairs:  # an edited entry the bot proved it can rebuild: restored, so nothing waits
        ctx.tracker.edit_issue(ctx.tracker.get_issue(iid), IssueEdit(description=text))
        say(f"#{iid} is a record entry someone edited: restored to the text the bot wrote (proven by the next "
            "entry's digest)")
    if repairs:
        ctx.record.reload()
    for line in ctx.record.notices:  # the record's anchor made (trust on first use): said once, in this run
        say(line)
    for issue in ctx.record.exposed():
        ctx.tracker.edit_issue(issue, IssueEdit(confidential=True))
        say(f"{issue.ref} holds a license key but someone made it non-confidential: made confidential again")
    for issue in ctx.record.audit().open_entries:
        ctx.tracker.edit_issue(issue, IssueEdit(state_event="close"))


def _check_zendesk(ctx: Context) -> None:
    """A token Zendesk refuses, a wrong zendesk.url, or an API user who cannot add internal notes and tags stops
    the run before any request. Zendesk being down does not: each request then waits for it, and nothing is made."""
    from .zendesk import unusable_role

    try:
        me = ctx.zendesk.me()
    except ZendeskError as exc:
        if exc.config:
            raise
        return
    why = unusable_role(me)
    if why:
        raise ZendeskError(f"the Zendesk API user {me.get('email')} {why}; set zendesk.email to an agent whose role "
                           "may add private comments and edit tags", config=True)


def _process_all(issues: list, ctx: Context, summary: Summary, say: Callable[[str], None], dry_run: bool) -> None:
    from . import processor  # only a run with work pays for the workflow's imports
    from .license import LicenseError
    from .processor import RETRYING, SKIPPED, Result

    for issue in issues:
        try:
            result = processor.process(issue, ctx)
        except TrackerError as exc:
            if _fatal(exc):
                raise
            result = Result(issue.iid, RETRYING, str(exc))
        except MailError:
            raise  # a configuration problem (the processor keeps the others): stop the run
        except SignerError:
            raise  # the token or its session is gone: every request would fail; none is counted
        except ZendeskError as exc:
            if exc.config:
                raise
            result = Result(issue.iid, RETRYING, f"{exc}; nothing was made, the request waits for Zendesk")
        except LicenseError as exc:  # the configured license itself would be refused: an operator problem
            summary.error = f"the configured license would be refused: {exc}"
            break
        except Exception as exc:  # noqa: BLE001 - one request's bug must not stop the others
            where = traceback.extract_tb(exc.__traceback__)[-1]
            what = f"{type(exc).__name__} at {where.filename.rsplit('/', 1)[-1]}:{where.lineno}"
            try:  # said on the issue and counted, so it ends after run.max_attempts instead of forever
                result = processor.internal_error(issue, ctx, what)
            except Exception as again:  # noqa: BLE001 - GitLab itself failing: the next run tries again
                result = Result(issue.iid, RETRYING, f"internal error {what}; could not note it on the issue "
                                                     f"({type(again).__name__})")
        result = Result(result.iid, result.outcome, ctx.scrub(result.detail),
                        tuple((f, ctx.scrub(m)) for f, m in result.problems))
        summary.add(result)
        if result.outcome == SKIPPED and result.detail.startswith(UNCHANGED):
            summary.unchanged += 1
            continue
        for line in log_lines(issue.ref, result, dry_run):  # numbers, outcomes, license ids and field names only
            say(line)
