"""One request, from a filed issue to a closed [Success] issue: the whole workflow in one file.

Steps, each safe to repeat after a crash at any point:
  1. judge the description as the request of everyone who wrote it (parser and policy, with membership,
     approvals and the record of issued licenses, all read once into `evidence`); an invalid request is
     marked failed and waits until its description changes;
  2. claim it: the bot's own emoji reaction, which GitLab creates once per user and issue and nobody below
     an admin can remove, so of overlapping runs exactly one goes on (the status note says which first);
  3. make the license and record it (upload, then the record entry): from here on the request never gets
     another license, and every rule counts it;
  4. label it processing and confidential, and email the license, refusing one that GitLab would no longer
     accept (expired, not yet valid);
  5. write what happened in the status note, retitle `[Success] - ...`, label success, close;
  6. tell the licensing Slack channel, if configured (a failure there is noted, not fatal).
The license bytes are derived from the request, so even two overlapping runs make the same key.

Only the record proves a license exists. An issue whose record entry or status note was erased, or
that was reopened after its license was emailed, never gets another license or another email. Issues
the bot opened itself (its home issue, the record entries) are never requests.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from . import evidence as evidence_mod
from . import license as lic_mod
from . import messages, policy, record, request
from . import status as status_mod
from .actions import Actors
from .evidence import Evidence
from .mailer import Delivery, MailError, build_message
from .runlock import pid_alive
from .slack import SlackError
from .status import CLAIMED, DELIVERED, HELD, PERSISTED, REJECTED, UNDELIVERED, Status, description_hash
from .tracker import Award, Issue, IssueEdit, Note
from .zendesk import CLOSED, TICKET, ZendeskError, customer_ticket_url

if TYPE_CHECKING:
    from .context import Context

SUCCEEDED, FAILED, RETRYING, SKIPPED = "succeeded", "failed", "retrying", "skipped"


@dataclass(frozen=True)
class Result:
    iid: int
    outcome: str
    detail: str
    problems: tuple[tuple[str, str], ...] = ()  # (field, message) of a failed request


def process(issue: Issue, ctx: Context) -> Result:
    cfg = ctx.config.requests
    labels = set(issue.labels)
    if issue.state != "opened":
        return Result(issue.iid, SKIPPED, "the issue is closed")
    if issue.author_id == ctx.tracker.me()["id"]:  # nobody else can open an issue as the bot
        return Result(issue.iid, SKIPPED, "the bot opened this issue itself: never a request, whatever it says")
    if cfg.label not in labels and not request.parse(issue.description, ctx.config.tickets.base_url).has_form_marker:
        return Result(issue.iid, SKIPPED, "not a license request (no request label or form marker)")
    if cfg.failed_label in labels and issue.updated_at < ctx.now - timedelta(minutes=ctx.config.run.recheck_minutes):
        return Result(issue.iid, SKIPPED, "failed earlier and not updated since")

    ev, note = _evidence(issue, ctx)
    status = status_mod.read(note.body) if note else None

    recorded = ctx.record.for_issue(issue.iid)
    refused = ctx.record.refused(recorded.entry.license_id) if recorded is not None else None
    if recorded is not None and (refused is None or _resend_asked(issue, ctx)):
        return _follow_up(issue, note, status, recorded, ev, ctx)
    damage = ctx.record.damage()
    if status and status.step == HELD and not (status.last_error or "").startswith(record.DAMAGED):
        return Result(issue.iid, SKIPPED, "held for a person: " + (status.last_error or ""))
    if damage:  # a lost or edited entry could be this ticket's or address's license: nobody may tell it is not
        why = (f"{record.DAMAGED} ({damage}), so the bot cannot tell whether this ticket or address already has a "
               "license; it waits until a person restores the entry (license-bot doctor names it)")
        if status and status.step == HELD and status.last_error == why:
            return Result(issue.iid, SKIPPED, "held for a person: " + why)
        # Not labelled failed (a failed request is not looked at again until it changes): once the record
        # checks out again, the next run judges it.
        base = status or Status(step=HELD, description_sha256=description_hash(issue.description),
                                judged_at=ctx.now.isoformat(), author=issue.author_username)
        _save(issue, note, base.with_(step=HELD, last_error=why), ctx)
        return Result(issue.iid, FAILED, f"held for a person: {why}", (("license", why),))
    if status and status.step == HELD:
        # Held only while the record was damaged: judged afresh now that it checks out, keeping the claim a run
        # announced before the hold (its reaction stays on the issue; the next attempt takes the next one).
        status = status.with_(step=CLAIMED, last_error=None) if status.claim >= 0 else None
    if refused is not None and status and status.description_sha256 == description_hash(issue.description):
        # The mail server refused the address and nobody has corrected it (or asked for a re-send) yet.
        return Result(issue.iid, SKIPPED, "its license was not delivered; waiting for a person")
    if status and status.has_license and refused is None:
        return _hold(issue, note, status, ctx, f"the status note names license {status.license_id}, but the bot's "
                     "record holds no license for this issue, so the bot cannot tell what was sent")
    if status is None and ev.claimed_before:
        return _hold(issue, note, None, ctx, "the bot claimed this issue before, yet its license is neither in the "
                     "record nor in a status note: they were deleted")

    # 1. Judge.
    digest = description_hash(issue.description)
    approval, not_approved = ev.approval() if cfg.override_label in labels else (None, None)
    override = approval.id if approval else 0
    unchanged = status and status.step == REJECTED and status.description_sha256 == digest
    if unchanged and cfg.failed_label in labels and status.override == override:
        return Result(issue.iid, SKIPPED, "failed earlier; its description has not changed")
    verdict, ticket = _judge(issue, ev, approval, not_approved, ctx)
    was_refused = [ctx.record.refused(r.entry.license_id) for r in ctx.record.entries()
                   if r.entry.issue_iid == issue.iid] if refused is not None else []
    same = next((r for r in was_refused if r and record.same_address(verdict.request.email, r.email)), None) \
        if verdict.ok else None
    if same is not None:  # an address the mail server refused for this issue before: not again by this path
        verdict = policy.Verdict(verdict.request, (policy.FieldError(
            "email", f"the mail server refused {same.email} ({same.why}), so its license was never delivered; "
                     f"correct the address, or add the ~\"{cfg.processing_label}\" label to send it there again"),),
            verdict.warnings)
    if not verdict.ok:
        return _reject(issue, note, verdict, digest, override, ctx, status.claim if status else -1)

    # 2. Claim it: of overlapping runs, only the one whose reaction GitLab created goes on.
    claimed = _claim(issue, note, status, ev, ctx)
    if isinstance(claimed, Result):
        return claimed
    note, status = claimed
    if refused is not None:  # the refused license's delivery is over: this one starts afresh
        status = status.with_(step=CLAIMED, attempts=0, last_error=None, emailed_at=None, message_id=None)

    # 3. Make the license and record it before anything else (for a corrected address, a new one: the refused
    # one was never delivered, and the record says so).
    req = verdict.request
    lic = lic_mod.build_trial(req.email, req.user_count, ctx.today, ctx.config.license.terms)
    aes_key, iv = lic_mod.derive_key_material(ctx.signer, f"{ctx.config.gitlab.url}/{ctx.config.gitlab.project}"
                                                               f"#{issue.iid}", lic)
    key_text = lic_mod.sign(lic, ctx.signer, ctx.today, boundary=lic_mod.DEFAULT_BOUNDARY, aes_key=aes_key, iv=iv)
    upload = ctx.tracker.upload(lic_mod.file_name(lic), key_text.encode("ascii"))
    recorded = ctx.record.add(record.Entry(
        license_id=lic_mod.license_id(key_text), sha256=lic_mod.fingerprint(key_text), issue_iid=issue.iid,
        issue_url=issue.web_url, email=req.email, user_count=req.user_count, ticket_id=req.ticket_id,
        ticket_url=req.ticket_url, made_on=ctx.today.isoformat(), expires_on=lic.expires_at.isoformat(),
        file_name=lic_mod.file_name(lic), upload_markdown=upload.markdown), key_text)
    status = _status_of(recorded, issue, status, ctx).with_(
        description_sha256=digest, warnings=tuple((w.field, w.message) for w in verdict.warnings),
        approved_by=approval.username if approval else None, override=override, ticket_status=ticket and ticket.status,
        ticket_requester=ticket and ticket.requester_email, ticket_organization=ticket and ticket.organization)
    if refused is not None:
        status = status.with_(notices=(*status.notices, f"License {refused.license_id} for {refused.email} was "
                                       f"refused by the mail server ({refused.why}) and never delivered; this "
                                       f"license, for the corrected address, replaces it."))
    return _deliver(issue, note, status, recorded, ctx, None)


def _refusal_reason(text: str) -> str:
    """'the address does not exist (550 5.1.1)' out of the mailer's 'the mail server refused the recipient (ADDRESS:
    REASON)': what the record and the note repeat."""
    inner = text.removeprefix("the mail server refused the recipient (").removesuffix(")")
    return inner.split(": ", 1)[1] if ": " in inner else inner


def _resend_asked(issue: Issue, ctx: Context) -> bool:
    """A person asked to send a refused license again: the processing label is back, or the failed one is off."""
    cfg = ctx.config.requests
    return cfg.processing_label in issue.labels or cfg.failed_label not in issue.labels


def _evidence(issue: Issue, ctx: Context) -> tuple[Evidence, Note | None]:
    """Everything trust rests on for this issue, read once (its notes and reactions), and its status note:
    the oldest note with the marker written by the bot's own user."""
    cfg = ctx.config.requests
    me = ctx.tracker.me()["id"]
    # An issue never changed since it was filed has no notes, no description edits and no claim (the bot
    # announces a claim in a note first; GitLab sets updated_at, and every edit, note or deletion moves it):
    # nothing to read. Its reactions are read only if someone may have approved it.
    untouched = issue.updated_at == issue.created_at and issue.user_notes_count == 0
    notes = [] if untouched else ctx.tracker.all_notes(issue.iid)
    awards = [] if untouched and cfg.override_label not in issue.labels else ctx.tracker.awards(issue.iid)
    note = next((n for n in notes if not n.system and n.author_id == me and status_mod.is_status_note(n.body)), None)
    ev = evidence_mod.gather(
        issue, notes, awards, me,
        evidence_mod.member_rule(cfg.requester_users, cfg.requester_groups, cfg.min_access_level,
                                 ctx.tracker.member_level),
        evidence_mod.member_rule(cfg.approver_users, cfg.approver_groups, cfg.min_access_level,
                                 ctx.tracker.member_level))
    return ev, note


def _claim(issue: Issue, note: Note | None, status: Status | None, ev: Evidence,
           ctx: Context) -> tuple[Note, Status] | Result:
    """Take this request's claim before recording or emailing: say in the status note which claim this run
    takes, then react. GitLab creates a user's reaction once per issue, so of two runs exactly one gets it."""
    me = f"{socket.gethostname()}:{os.getpid()}"
    k, why = evidence_mod.claim_attempt(
        ev.claims(), status.claim if status else -1, status.claimer if status else None, me=me, alive=_alive,
        now=ctx.now, stale_after=timedelta(minutes=ctx.config.run.lock_stale_minutes))
    if k is None:
        return Result(issue.iid, RETRYING, why)
    if k >= len(evidence_mod.CLAIMS):
        return _hold(issue, note, status, ctx, f"the bot started this request's delivery {k} times without "
                     "finishing it (each run that tried stopped or crashed)")
    base = status or Status(step=CLAIMED, description_sha256=description_hash(issue.description),
                            judged_at=ctx.now.isoformat(), author=issue.author_username)
    if base.step == REJECTED:
        base = base.with_(step=CLAIMED, errors=(), last_error=None)
    status = base.with_(claim=k, claimer=me)
    if note is not None and ctx.tracker.note_body(issue.iid, note.id) != note.body:
        return Result(issue.iid, RETRYING, "the status note changed since this run read it: another run is at "
                                           "this request, and this run leaves it alone")
    announced = _save(issue, note, status, ctx)
    if ctx.tracker.award(issue.iid, evidence_mod.CLAIMS[k]) is None:
        if note is None:  # this run's own new note: take it back, so the issue keeps one status note
            ctx.tracker.delete_note(issue.iid, announced.id)
        return Result(issue.iid, RETRYING, "another run claimed this request at the same moment; it makes and "
                                           "emails the license, this run leaves it alone")
    return announced, status


def _alive(holder: str) -> bool:
    """Whether a claim's run may still be working: a dead process on this host is not; elsewhere, unknown."""
    host, _, pid = holder.rpartition(":")
    return host != socket.gethostname() or not pid.isdigit() or pid_alive(int(pid))


def _follow_up(issue: Issue, note: Note | None, status: Status | None, recorded: record.Recorded, ev: Evidence,
               ctx: Context) -> Result:
    """An issue whose license is already made: finish it, never make or send a second one."""
    cfg = ctx.config.requests
    if status is None or not status.has_license:
        if ev.closed_by_bot:
            return _hold(issue, note, _status_of(recorded, issue, status, ctx), ctx, "its license was emailed and the "
                         "issue closed [Success] before, then the bot's status note was deleted")
        if status is None and ev.claimed_before:
            return _hold(issue, note, _status_of(recorded, issue, status, ctx), ctx, "the bot claimed and recorded "
                         "this request before, then its status note was deleted, so the bot cannot tell whether "
                         "the license was emailed")
        return _deliver(issue, note, _status_of(recorded, issue, status, ctx), recorded, ctx, ev)  # crash: resume
    if status.license_sha256 != recorded.entry.sha256:
        return _hold(issue, note, status, ctx, f"the status note names license {status.license_id}, but the record "
                     f"holds {recorded.entry.license_id} for this issue")
    if status.step == HELD:
        return Result(issue.iid, SKIPPED, "held for a person: " + (status.last_error or ""))
    if status.step == DELIVERED and status.ticket_noted is False:
        return _finish(issue, note, status, recorded, ctx)  # emailed; the note on the ticket is pending
    if status.step == DELIVERED:
        return _close_again(issue, note, status, ctx, reopened=ev.closed_by_bot)
    if status.step == UNDELIVERED:
        if cfg.failed_label in issue.labels and cfg.processing_label not in issue.labels:
            return Result(issue.iid, SKIPPED, "its license was not delivered; waiting for a person")
        # A person put the processing label back (or took the failed one off): a new send they asked for.
        status = status.with_(step=PERSISTED, attempts=0, last_error=None, resends=status.resends + 1)
    return _deliver(issue, note, status, recorded, ctx, ev)


def _deliver(issue: Issue, note: Note | None, status: Status, recorded: record.Recorded, ctx: Context,
             ev: Evidence | None) -> Result:
    """Email a recorded license. `ev`: the issue's evidence when this run has not claimed it yet (None: it has)."""
    cfg = ctx.config.requests
    lic, key_text = recorded.license, recorded.key_text
    problems = lic_mod.preflight(lic, ctx.today)
    if problems:  # by any path: a key GitLab would refuse is never sent
        return _undelivered(issue, note, status, ctx, "GitLab would no longer accept this license (" + "; ".join(
            problems) + "), so it was not sent. File a new request; a Support manager's override lets it through "
                        "the one-license-per-ticket rule")
    if ev is not None:
        claimed = _claim(issue, note, status, ev, ctx)
        if isinstance(claimed, Result):
            return claimed
        note, status = claimed

    # 4. Show it: the processing label for people, and only members can read it.
    issue = ctx.tracker.edit_issue(issue, IssueEdit(
        add_labels=_missing(issue, cfg.label, cfg.processing_label),
        remove_labels=_present(issue, cfg.failed_label, cfg.success_label),
        confidential=None if issue.confidential else True,
    ))

    # ...and email it.
    zd = ctx.config.zendesk  # the customer's view of the ticket, never the agent page the engineer pasted
    delivery = Delivery(license=lic, key_text=key_text, license_id=status.license_id, file_name=status.file_name,
                        ticket_url=customer_ticket_url(zd.url, status.ticket_id, zd.help_center_url)
                        if status.ticket_id else None, ticket_id=status.ticket_id, resend=status.resends)
    message = build_message(delivery, ctx.config.smtp, ctx.now, ctx.config.license.terms.duration_days)
    try:
        ctx.mailer.send(message)
    except MailError as exc:
        if exc.config:
            raise  # the mail settings are wrong for everyone: the run stops, the customer's attempts are kept
        attempts = status.attempts + 1
        if exc.permanent:  # the address is refused: never delivered, and the record says so (bot.record)
            ctx.record.mark_refused(recorded.entry, True, _refusal_reason(str(exc)), ctx.today.isoformat())
        if exc.permanent or attempts >= ctx.config.run.max_attempts:
            why = str(exc) if exc.permanent else f"{attempts} delivery attempts failed; the last: {exc}"
            return _undelivered(issue, note, status.with_(attempts=attempts), ctx, why)
        _save(issue, note, status.with_(attempts=attempts, last_error=str(exc), step=PERSISTED, claimer=None), ctx,
              key_text)
        return Result(issue.iid, RETRYING, f"email attempt {attempts} failed: {exc}")

    if ctx.record.refused(recorded.entry.license_id):  # a person's re-send reached it after all
        ctx.record.mark_refused(recorded.entry, False, "a person's re-send", ctx.today.isoformat())
    status = status.with_(step=DELIVERED, last_error=None, emailed_at=ctx.now.isoformat(timespec="seconds"),
                          claimer=None,
                          message_id=message["Message-ID"], attempts=status.attempts + 1,
                          ticket_noted=False if ctx.zendesk is not None else None)
    # The emailed state is saved before any other outside call: whatever Zendesk, Slack or GitLab answer
    # next, every later run finds it and never emails this license again.
    note = _save(issue, note, status, ctx, key_text)
    return _finish(issue, note, status, recorded, ctx)


def _finish(issue: Issue, note: Note | None, status: Status, recorded: record.Recorded, ctx: Context) -> Result:
    """After the email (already saved): the internal note on the ticket (if Zendesk is on), then say it and close."""
    cfg = ctx.config.requests
    if status.ticket_noted is False and not status.ticket_gave_up:
        try:
            with_file = _note_on_ticket(issue, status, recorded, ctx)
            status = status.with_(ticket_noted=True, ticket_file=with_file, last_error=None)
        except ZendeskError as exc:
            status, waiting = _ticket_note_failed(status, exc, ctx)
            note = _save(issue, note, status, ctx)
            if exc.config:  # the credentials or the address: every request would fail; the state above is kept
                raise ZendeskError(f"{issue.ref}: license {status.license_id} was emailed (saved on the issue; it is "
                                   f"never sent again), then {exc}", config=True, status=exc.status) from None
            if waiting:  # never a second email: only the note waits
                return Result(issue.iid, RETRYING, f"license {status.license_id} emailed; {status.last_error}; "
                                                   "the note is tried again at the next run")

    # 5. Say what happened, retitle, label, close.
    key_text = recorded.key_text
    note = _save(issue, note, status, ctx, key_text)
    ctx.tracker.edit_issue(issue, IssueEdit(
        title=messages.success_title(status.email, status.user_count),
        add_labels=_missing(issue, cfg.success_label),
        remove_labels=_present(issue, cfg.processing_label, cfg.failed_label),
        state_event="close",
    ))

    # 6. Tell the licensing channel.
    if ctx.notifier is not None:
        try:
            ctx.notifier.post(messages.slack_text(status, issue.web_url, ctx.config.license.terms.duration_days))
        except SlackError as exc:
            status = status.with_(notices=(*status.notices, f"The Slack post failed ({exc}); post "
                                                             f"the ticket URL in {ctx.config.slack.channel} by hand."))
            _save(issue, note, status, ctx, key_text)
    return Result(issue.iid, SUCCEEDED, f"license {status.license_id} sent to {status.email}{_on_ticket(status)}")


def _ticket_note_failed(status: Status, exc: ZendeskError, ctx: Context) -> tuple[Status, bool]:
    """The status after a failed note on the ticket, and whether the note waits for another run. A closed or
    deleted ticket cannot take it; anything else is tried `run.max_attempts` times; then a person posts it."""
    attempts = status.ticket_attempts + 1
    why = f"the internal note on ticket {status.ticket_id} failed ({exc})"
    final = exc.kind == CLOSED or (exc.kind == TICKET and exc.status == 404)
    if not final and attempts < ctx.config.run.max_attempts:
        return status.with_(ticket_attempts=attempts, last_error=why), True
    where = (f"the follow-up ticket of ticket {status.ticket_id} (closed tickets take no notes)" if exc.kind == CLOSED
             else f"the ticket where the customer's case continues (ticket {status.ticket_id} no longer exists)"
             if final else f"ticket {status.ticket_id}")
    return status.with_(ticket_attempts=attempts, ticket_gave_up=True, last_error=None, notices=(
        *status.notices, f"{why}; the bot gave up after {attempts} attempt{'s' if attempts != 1 else ''}. Post it by "
                         f"hand: an internal note on {where} with this issue's link and the attached license file, "
                         f"and the tag `{ctx.config.zendesk.tag}`.")), False


def _on_ticket(status: Status) -> str:
    """What is on the ticket, for the run's terminal line."""
    if status.ticket_noted is None or status.ticket_id is None:
        return ""
    if status.ticket_gave_up and not status.ticket_noted:
        return f"; the internal note on ticket {status.ticket_id} was NOT posted: post it by hand (see the issue)"
    if status.ticket_file is False:
        return f"; internal note on ticket {status.ticket_id} posted WITHOUT the file (its type is refused)"
    return f"; internal note on ticket {status.ticket_id} posted"


def internal_error(issue: Issue, ctx: Context, what: str) -> Result:
    """An unexpected error on one request: noted on the issue (never a traceback) and counted; after
    `run.max_attempts` the request is failed with a message, so no error repeats forever."""
    note = ctx.tracker.status_note(issue.iid)
    status = (status_mod.read(note.body) if note else None) or Status(
        step=REJECTED, description_sha256="", judged_at=ctx.now.isoformat(), author=issue.author_username)
    count = status.internal_errors + 1
    error = f"the bot hit an internal error ({what}) on attempt {count} of {ctx.config.run.max_attempts}"
    if count < ctx.config.run.max_attempts:
        _save(issue, note, status.with_(internal_errors=count, last_error=error), ctx)
        return Result(issue.iid, RETRYING, error)
    why = f"{error}; it gives up. Report it to the bot's maintainers with this issue's link"
    if status.step == DELIVERED:  # emailed: never "not delivered"; finish without the note on the ticket
        status = status.with_(internal_errors=count, ticket_gave_up=status.ticket_noted is False,
                              notices=(*status.notices, why + "; anything still missing on the ticket is posted "
                                                              "by hand"))
        recorded = ctx.record.for_issue(issue.iid)
        if recorded is not None and recorded.entry.sha256 == status.license_sha256:
            return _finish(issue, note, status, recorded, ctx)
        return _hold(issue, note, status, ctx, why)
    if status.has_license:
        return _undelivered(issue, note, status.with_(internal_errors=count), ctx, why)
    digest = description_hash(issue.description)  # judged again once the description changes
    return _reject(issue, note, policy.Verdict(None, (policy.FieldError("form", why),), ()), digest, 0, ctx,
                   status.claim)


def _note_on_ticket(issue: Issue, status: Status, recorded: record.Recorded, ctx: Context) -> bool | None:
    """One internal note per license on its ticket, whatever the crashes: the note carries the license id,
    and the ticket is read for it before posting. Whether the file is on it (None: posted before, or no note)."""
    zd, cfg = ctx.zendesk, ctx.config.zendesk
    with_file = status.ticket_file
    if cfg.internal_note and not any(not c.get("public", True) and status.license_id in (c.get("body") or "")
                                     for c in zd.comments(status.ticket_id)):
        body = ctx.scrub(messages.render("zendesk_note.txt.j2", status=status, issue_url=issue.web_url,
                                         duration_days=ctx.config.license.terms.duration_days).strip())
        with_file = zd.add_internal_note(status.ticket_id, body, status.file_name, recorded.key_text.encode("ascii"))
    zd.add_tag(status.ticket_id, cfg.tag)
    return with_file


def _close_again(issue: Issue, note: Note, status: Status, ctx: Context, *, reopened: bool) -> Result:
    """An emailed license's issue that is open: a person reopened it (close it again and say so), or a
    crash came between the status note and the close (just close it). Nothing is sent either way."""
    cfg = ctx.config.requests
    if reopened:
        notice = (f"Reopened after its license was emailed on {(status.emailed_at or '')[:10]}; closed again. The "
                  "bot never sends a license twice: if the customer lost it, send them the attached file through "
                  f"the ticket (`license-bot find {status.email} --download DIR` fetches it).")
        if notice not in status.notices:
            status = status.with_(notices=(*status.notices, notice))
        _save(issue, note, status, ctx, None)
    ctx.tracker.edit_issue(issue, IssueEdit(
        title=messages.success_title(status.email, status.user_count), add_labels=_missing(issue, cfg.success_label),
        remove_labels=_present(issue, cfg.processing_label, cfg.failed_label), state_event="close"))
    if not reopened:
        return Result(issue.iid, SUCCEEDED, f"license {status.license_id} sent to {status.email}")
    return Result(issue.iid, SKIPPED, "reopened after its license was emailed; closed again, nothing sent")


def _hold(issue: Issue, note: Note | None, status: Status | None, ctx: Context, why: str) -> Result:
    """Stop for good on an issue whose history does not add up; a person must look. Nothing is sent."""
    base = status or Status(step=HELD, description_sha256=description_hash(issue.description),
                            judged_at=ctx.now.isoformat(), author=issue.author_username)
    _wait_for_a_person(issue, note, base.with_(step=HELD, last_error=why, claimer=None), ctx)
    return Result(issue.iid, FAILED, f"held for a person: {why}", (("license", why),))


def _undelivered(issue: Issue, note: Note | None, status: Status, ctx: Context, why: str) -> Result:
    status = status.with_(step=UNDELIVERED, last_error=why, claimer=None)
    _wait_for_a_person(issue, note, status, ctx)
    return Result(issue.iid, FAILED, f"license {status.license_id} not delivered: {why}", (("email", why),))


def _wait_for_a_person(issue: Issue, note: Note | None, status: Status, ctx: Context) -> None:
    """The failed label on, the processing label off, the author assigned, and the note saying why."""
    cfg = ctx.config.requests
    ctx.tracker.edit_issue(issue, IssueEdit(
        add_labels=_missing(issue, cfg.failed_label), remove_labels=_present(issue, cfg.processing_label),
        assignee_ids=_assign(issue), title=_not_success(issue.title)))
    _save(issue, note, status, ctx, None)


def _not_success(title: str) -> str | None:
    """An open issue waiting for a person must not read as done: its [Success] title becomes [Held], the rest
    kept so a search for the address still finds it. None: the title is not a success title; leave it."""
    return "[Held] - " + title.removeprefix("[Success] - ") if messages.parse_success_title(title) else None


def _reject(issue: Issue, note: Note | None, verdict: policy.Verdict, digest: str, override: int,
            ctx: Context, claim: int = -1) -> Result:
    """Fail the request; `claim` keeps the last claim taken, so a later attempt knows it finished."""
    cfg = ctx.config.requests
    status = Status(step=REJECTED, description_sha256=digest, judged_at=ctx.now.isoformat(),
                    author=issue.author_username, errors=tuple((e.field, e.message) for e in verdict.errors),
                    warnings=tuple((w.field, w.message) for w in verdict.warnings), override=override, claim=claim)
    ctx.tracker.edit_issue(issue, IssueEdit(
        add_labels=_missing(issue, cfg.label, cfg.failed_label), remove_labels=_present(issue, cfg.processing_label),
        assignee_ids=_assign(issue)))
    _save(issue, note, status, ctx)
    return Result(issue.iid, FAILED, f"{len(verdict.errors)} problem{'s' if len(verdict.errors) != 1 else ''}",
                  status.errors)


def _judge(issue: Issue, ev: Evidence, approval: Award | None, not_approved: str | None,
           ctx: Context) -> tuple[policy.Verdict, policy.TicketFacts | None]:
    """The request as the request of everyone who wrote its description, with the approval that holds for it."""
    cfg = ctx.config
    parsed = request.parse(issue.description, cfg.tickets.base_url)
    ticket = None
    unreadable = None
    if ctx.zendesk is not None and parsed.ticket_id is not None:  # also when another field did not parse
        try:
            ticket = ctx.zendesk.ticket(parsed.ticket_id)  # Zendesk down raises: the request waits
        except ZendeskError as exc:
            if exc.kind != TICKET:
                raise
            unreadable = f"Zendesk answered {exc.status}"  # this ticket, not the token: this request's error
    prior = ctx.record.prior_licenses(issue.iid) if parsed.request or parsed.email or parsed.ticket_url else None
    warnings = []
    if not_approved:
        warnings.append(policy.FieldError("override", (
            f"the ~\"{cfg.requests.override_label}\" label was ignored: {not_approved}. An override counts only when "
            f"an approver (not a writer of the request) adds the label and reacts with "
            f":{evidence_mod.APPROVAL_EMOJI}: on the issue after the last change to its description")))
    rule = ("not a direct member with at least the " + cfg.requests.min_access_name + " role of "
            + " or ".join(cfg.requests.requester_groups or ("a requester group",)))
    facts = policy.Facts(author=issue.author_username, author_allowed=ev.may_request.get(issue.author_id, False),
                         override=approval is not None, prior_licenses=prior,
                         approver=approval.username if approval else None, ticket_checked=ctx.zendesk is not None,
                         ticket=ticket, ticket_unreadable=unreadable, min_attachments=cfg.zendesk.min_attachments)
    verdict = policy.evaluate(parsed, ctx.today, cfg.policy, cfg.tickets, facts, requester_rule=rule)
    errors = list(verdict.errors)
    editor = ev.unauthorised_editor()
    if editor is not None:
        errors.append(policy.FieldError("author", (
            f"@{editor.username} changed this request's description at {editor.created_at:%Y-%m-%d %H:%M} UTC but "
            f"may not request licenses ({rule}). A request counts as the request of everyone who wrote its "
            f"description: @{issue.author_username} can file it again as a new issue, or a requester can check "
            "every field and save the description again")))
    return policy.Verdict(verdict.request, tuple(errors), (*verdict.warnings, *warnings)), ticket


def _status_of(recorded: record.Recorded, issue: Issue, status: Status | None, ctx: Context) -> Status:
    """The status note's state for a recorded license, keeping what an earlier note said."""
    e, lic = recorded.entry, recorded.license
    base = status or Status(step=PERSISTED, description_sha256=description_hash(issue.description),
                            judged_at=ctx.now.isoformat(), author=issue.author_username)
    return base.with_(step=PERSISTED if base.step not in (DELIVERED, UNDELIVERED, HELD) else base.step,
                      license_id=e.license_id, license_sha256=e.sha256, email=e.email, user_count=e.user_count,
                      ticket_url=e.ticket_url, ticket_id=e.ticket_id, issued_at=lic.issued_at.isoformat(),
                      expires_at=e.expires_on, file_name=e.file_name, upload_markdown=e.upload_markdown,
                      persisted_at=base.persisted_at or e.made_on, record_digest=recorded.digest)


def _save(issue: Issue, note: Note | None, status: Status, ctx: Context, key_text: str | None = None) -> Note:
    cfg = ctx.config
    if key_text is None and status.has_license:
        recorded = ctx.record.for_issue(issue.iid)
        key_text = recorded.key_text if recorded and recorded.entry.sha256 == status.license_sha256 else None
    body = messages.status_note(
        status, key_text=key_text,
        labels={"failed": cfg.requests.failed_label, "processing": cfg.requests.processing_label},
        duration_days=cfg.license.terms.duration_days, max_attempts=cfg.run.max_attempts,
        actors=Actors.from_config(cfg.requests))
    body = ctx.scrub(body)  # errors from GitLab, SMTP or Slack can quote a secret
    if note is not None and note.body == body:
        return note
    return ctx.tracker.save_status_note(issue.iid, body, note.id if note else None)


def _missing(issue: Issue, *labels: str) -> tuple[str, ...]:
    return tuple(label for label in labels if label not in issue.labels)


def _present(issue: Issue, *labels: str) -> tuple[str, ...]:
    return tuple(label for label in labels if label in issue.labels)


def _assign(issue: Issue) -> tuple[int, ...] | None:
    """The author first: GitLab Free keeps only the first of several assignees."""
    if issue.assignee_ids[:1] == (issue.author_id,):
        return None
    return (issue.author_id, *(a for a in issue.assignee_ids if a != issue.author_id))
