"""One request, from a filed issue to a closed [Success] issue: the whole workflow in one file.

Steps, each safe to repeat after a crash at any point:
  1. re-read and re-validate (parser + policy, with the facts the tracker supplies);
     an invalid request is marked failed and waits until its description changes;
  2. claim it (the processing label; confidential);
  3. build the license and persist it in the issue (upload + status note) before any email;
     once persisted, that license is the only one the request ever gets;
  4. email it (at least once: a rerun re-sends the persisted key with the same Message-ID);
  5. retitle `[Success] - ...`, label success, close;
  6. tell the licensing Slack channel, if configured (a failure there is noted, not fatal).
The license bytes are derived from the request, so even two overlapping runs make the same key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from . import license as lic_mod
from . import messages, policy, request
from . import status as status_mod
from .mailer import Delivery, MailError, build_message
from .slack import SlackError
from .status import PERSISTED, REJECTED, UNDELIVERED, Status, description_hash
from .tracker import Issue, IssueEdit, Note

if TYPE_CHECKING:
    from .runner import Context

SUCCEEDED, FAILED, RETRYING, SKIPPED = "succeeded", "failed", "retrying", "skipped"


@dataclass(frozen=True)
class Result:
    iid: int
    outcome: str
    detail: str


def process(issue: Issue, ctx: Context) -> Result:
    cfg = ctx.config.requests
    labels = set(issue.labels)
    if issue.state != "opened":
        return Result(issue.iid, SKIPPED, "the issue is closed")
    if cfg.label not in labels and not request.parse(issue.description).has_form_marker:
        return Result(issue.iid, SKIPPED, "not a license request (no request label or form marker)")
    if cfg.failed_label in labels and issue.updated_at < ctx.now - timedelta(minutes=ctx.config.run.recheck_minutes):
        return Result(issue.iid, SKIPPED, "failed earlier and not updated since")

    # Only an issue with a state label or any comment can hold a status note.
    has_note = bool(labels & set(cfg.state_labels)) or issue.user_notes_count > 0
    note = ctx.tracker.status_note(issue.iid) if has_note else None
    status = status_mod.read(note.body) if note else None

    if status and status.has_license:
        return _deliver(issue, note, status, ctx)

    # 1. Re-read and re-validate.
    digest = description_hash(issue.description)
    if status and status.step == REJECTED and status.description_sha256 == digest and cfg.failed_label in labels:
        return Result(issue.iid, SKIPPED, "failed earlier; its description has not changed")
    verdict = _judge(issue, ctx)
    if not verdict.ok:
        return _reject(issue, note, verdict, digest, ctx)

    # 2. Claim it.
    ctx.tracker.ensure_private()
    issue = ctx.tracker.edit_issue(issue, IssueEdit(
        add_labels=_missing(issue, cfg.label, cfg.processing_label),
        remove_labels=_present(issue, cfg.failed_label),
        confidential=None if issue.confidential else True,
    ))

    # 3. Build the license and persist it before any email.
    req = verdict.request
    terms = ctx.config.license.terms
    lic = lic_mod.build_trial(req.email, req.user_count, ctx.today, terms)
    aes_key, iv = lic_mod.derive_key_material(ctx.private_key, f"{ctx.config.gitlab.url}/{ctx.config.gitlab.project}"
                                                       f"#{issue.iid}", lic)
    key_text = lic_mod.sign(lic, ctx.private_key, ctx.today, boundary=lic_mod.DEFAULT_BOUNDARY, aes_key=aes_key, iv=iv)
    upload = ctx.tracker.upload(lic_mod.file_name(lic), key_text.encode("ascii"))
    status = Status(
        step=PERSISTED, description_sha256=digest, judged_at=ctx.now.isoformat(), author=issue.author_username,
        warnings=tuple((w.field, w.message) for w in verdict.warnings),
        license_id=lic_mod.license_id(key_text), license_sha256=lic_mod.fingerprint(key_text), email=req.email,
        user_count=req.user_count, ticket_url=req.ticket_url, ticket_id=req.ticket_id,
        issued_at=lic.issued_at.isoformat(), expires_at=lic.expires_at.isoformat(), file_name=lic_mod.file_name(lic),
        upload_markdown=upload.markdown, persisted_at=ctx.now.isoformat(),
    )
    note = _save(issue, note, status, ctx, key_text)
    return _deliver(issue, note, status, ctx, key_text)


def _deliver(issue: Issue, note: Note, status: Status, ctx: Context, key_text: str | None = None) -> Result:
    cfg = ctx.config.requests
    if status.step == UNDELIVERED:
        if cfg.failed_label in issue.labels:
            return Result(issue.iid, SKIPPED, "its license was not delivered; waiting for a person")
        # A person took the failed label off: try again from scratch.
        status = status.with_(step=PERSISTED, attempts=0, last_error=None)

    key_text = key_text or status_mod.key_text(note.body)
    if not key_text or lic_mod.fingerprint(key_text) != status.license_sha256:
        return _undelivered(issue, note, status, ctx, "the copy of the license in the status note is missing or "
                            "was edited, so the bot cannot be sure what it would send")
    try:
        lic = lic_mod.decode(key_text, ctx.private_key.public_key())  # re-check what is about to be sent
    except lic_mod.LicenseError as exc:
        return _undelivered(issue, note, status, ctx, f"the stored license does not decode: {exc}")

    # 4. Email it.
    delivery = Delivery(license=lic, key_text=key_text, license_id=status.license_id, file_name=status.file_name,
                        ticket_url=status.ticket_url, ticket_id=status.ticket_id)
    try:
        ctx.mailer.send(build_message(delivery, ctx.config.smtp, ctx.now, ctx.config.license.terms.duration_days))
    except MailError as exc:
        attempts = status.attempts + 1
        if exc.permanent or attempts >= ctx.config.run.max_attempts:
            why = str(exc) if exc.permanent else f"{attempts} delivery attempts failed; the last: {exc}"
            return _undelivered(issue, note, status.with_(attempts=attempts), ctx, why, key_text)
        status = status.with_(attempts=attempts, last_error=str(exc))
        ctx.tracker.edit_issue(issue, IssueEdit(add_labels=_missing(issue, cfg.processing_label)))
        _save(issue, note, status, ctx, key_text)
        return Result(issue.iid, RETRYING, f"email attempt {attempts} failed: {exc}")

    if status.attempts or status.last_error:
        delivered = f"Delivered on attempt {status.attempts + 1}."
        status = status.with_(last_error=None, notices=(*status.notices, delivered))
        note = _save(issue, note, status, ctx, key_text)

    # 5. Retitle, label, close.
    ctx.tracker.edit_issue(issue, IssueEdit(
        title=messages.success_title(status.email, status.user_count),
        add_labels=_missing(issue, cfg.success_label),
        remove_labels=_present(issue, cfg.processing_label, cfg.failed_label),
        state_event="close",
    ))
    ctx.issued.append(policy.PriorLicense(issue.ref, issue.web_url, status.email, status.ticket_id, ctx.today))

    # 6. Tell the licensing channel.
    if ctx.notifier is not None:
        try:
            ctx.notifier.post(messages.slack_text(status, issue.web_url, ctx.config.license.terms.duration_days))
        except SlackError as exc:
            status = status.with_(notices=(*status.notices, f"The Slack post failed ({exc}); post the ticket URL in "
                                                             f"{ctx.config.slack.channel} by hand."))
            _save(issue, note, status, ctx, key_text)
    return Result(issue.iid, SUCCEEDED, f"license {status.license_id} sent to {status.email}")


def _undelivered(issue: Issue, note: Note, status: Status, ctx: Context, why: str,
                 key_text: str | None = None) -> Result:
    cfg = ctx.config.requests
    status = status.with_(step=UNDELIVERED, last_error=why)
    ctx.tracker.edit_issue(issue, IssueEdit(
        add_labels=_missing(issue, cfg.failed_label), remove_labels=_present(issue, cfg.processing_label),
        assignee_ids=_assign(issue)))
    _save(issue, note, status, ctx, key_text or status_mod.key_text(note.body))
    return Result(issue.iid, FAILED, f"license {status.license_id} not delivered: {why}")


def _reject(issue: Issue, note: Note | None, verdict: policy.Verdict, digest: str, ctx: Context) -> Result:
    cfg = ctx.config.requests
    status = Status(step=REJECTED, description_sha256=digest, judged_at=ctx.now.isoformat(),
                    author=issue.author_username, errors=tuple((e.field, e.message) for e in verdict.errors),
                    warnings=tuple((w.field, w.message) for w in verdict.warnings))
    ctx.tracker.edit_issue(issue, IssueEdit(
        add_labels=_missing(issue, cfg.label, cfg.failed_label), remove_labels=_present(issue, cfg.processing_label),
        assignee_ids=_assign(issue)))
    _save(issue, note, status, ctx)
    return Result(issue.iid, FAILED, "; ".join(f"{e.field}: {e.message}" for e in verdict.errors))


def _judge(issue: Issue, ctx: Context) -> policy.Verdict:
    cfg = ctx.config
    parsed = request.parse(issue.description, cfg.tickets.base_url)
    allowed = issue.author_username in cfg.requests.requester_users or any(
        ctx.tracker.is_group_member(group, issue.author_id) for group in cfg.requests.requester_groups)
    prior = _prior_licenses(parsed.request, issue, ctx) if parsed.request else None
    rule = "not a member of " + " or ".join(cfg.requests.requester_groups or ("a requester group",))
    facts = policy.Facts(author=issue.author_username, author_allowed=allowed,
                         override=cfg.requests.override_label in issue.labels, prior_licenses=prior)
    return policy.evaluate(parsed, ctx.today, cfg.policy, cfg.tickets, facts, requester_rule=rule)


def _prior_licenses(req: request.LicenseRequest, issue: Issue, ctx: Context) -> tuple[policy.PriorLicense, ...]:
    """Licenses already issued: recent [Success] issues (cached for the run), any issue for the same
    ticket (searched, then compared exactly), and what this run issued. A failed lookup raises."""
    cfg = ctx.config
    since = ctx.today - timedelta(days=cfg.policy.email_cooldown_days + 1)
    found = list(ctx.issued)
    for other in ctx.tracker.success_issues(since):
        title = messages.parse_success_title(other.title)
        if title and other.iid != issue.iid:
            found.append(_prior(other, title[0], ctx))
    holding = {cfg.requests.success_label, cfg.requests.processing_label}
    for other in ctx.tracker.search_issues(str(req.ticket_id), in_="description"):
        if other.iid == issue.iid or not holding & set(other.labels):
            continue
        theirs = request.parse(other.description, cfg.tickets.base_url).request
        if theirs and theirs.ticket_id == req.ticket_id:
            found.append(_prior(other, theirs.email, ctx))
    return tuple(found)


def _prior(other: Issue, email: str, ctx: Context) -> policy.PriorLicense:
    theirs = request.parse(other.description, ctx.config.tickets.base_url).request
    when = other.closed_at or other.updated_at
    return policy.PriorLicense(other.ref, other.web_url, email, theirs.ticket_id if theirs else None, when.date())


def _save(issue: Issue, note: Note | None, status: Status, ctx: Context, key_text: str | None = None) -> Note:
    cfg = ctx.config
    body = messages.status_note(
        status, key_text=key_text,
        labels={"failed": cfg.requests.failed_label, "processing": cfg.requests.processing_label},
        duration_days=cfg.license.terms.duration_days, max_attempts=cfg.run.max_attempts)
    if note is not None and note.body == body:
        return note
    return ctx.tracker.save_status_note(issue.iid, body, note.id if note else None)


def _missing(issue: Issue, *labels: str) -> tuple[str, ...]:
    return tuple(label for label in labels if label not in issue.labels)


def _present(issue: Issue, *labels: str) -> tuple[str, ...]:
    return tuple(label for label in labels if label in issue.labels)


def _assign(issue: Issue) -> tuple[int, ...] | None:
    return None if issue.author_id in issue.assignee_ids else (*issue.assignee_ids, issue.author_id)
