"""`license-bot find EMAIL`: the license a customer says never arrived, and any request still open.

Licenses come from the record of issued licenses only, so every GitLab search generation and edition
lists exactly the same ones, and nothing a person typed can pass for a license. `[Success]` titles
for the address that the record does not hold are shown as "not made by the bot" (found by GitLab's
search: a hint, since missing one costs nothing). Open requests come from the listing of open issues.
"Nothing found" (exit 3) is never confused with "could not search" (exit 1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from . import files, messages, request
from . import status as status_mod
from .errors import BotError
from .record import Record, Recorded, same_address
from .tracker import Tracker

FOUND, NOTHING, COULD_NOT_SEARCH = 0, 3, 1
LICENSE, OPEN, NOT_THE_BOTS = "license", "open", "not made by the bot"
DAMAGED = "not in the record, which is damaged"  # the state of a look-alike while the record does not check out


@dataclass(frozen=True)
class Found:
    kind: str  # LICENSE, OPEN or NOT_THE_BOTS
    iid: int
    url: str
    title: str
    date: str   # the day the license was made, or the request filed
    email: str
    user_count: int | None
    ticket_url: str | None
    expires_at: str | None
    license_id: str | None
    state: str  # for a license: emailed, being sent, not delivered, held; otherwise why it is open
    signed_by: str | None = None  # for a license: the trusted key it decodes with, and where it is configured


    def lines(self) -> list[str]:
        if self.kind == LICENSE:
            return [f"#{self.iid}  license {self.license_id}: {self.user_count} users, made {self.date}, "
                    f"expires {self.expires_at}; {self.state}",
                    f"      ticket {self.ticket_url}  issue {self.url}",
                    *([f"      signed by {self.signed_by}"] if self.signed_by else [])]
        if self.kind == OPEN:
            return [f"#{self.iid}  open request, filed {self.date}: {messages.plain(self.state)}", f"      {self.url}"]
        if self.state == DAMAGED:
            return [f"#{self.iid}  NOT IN THE RECORD: {self.title!r}; the record is damaged, so this may be a license "
                    "whose entry was lost: check its status note before sending anything", f"      {self.url}"]
        return [f"#{self.iid}  NOT MADE BY THE BOT: {self.title!r} holds no license in the bot's record; "
                "do not send anything from it", f"      {self.url}"]


def _license_state(tracker: Tracker, r: Recorded) -> str:
    note = tracker.status_note(r.entry.issue_iid)
    status = status_mod.read(note.body) if note else None
    if status is None or status.license_sha256 != r.entry.sha256:
        return "its status note is missing: check the issue"
    if status.step == status_mod.DELIVERED:
        return f"emailed to {status.email} on {(status.emailed_at or '')[:16].replace('T', ' ')} UTC"
    if status.step == status_mod.UNDELIVERED:
        return f"NOT DELIVERED: {status.last_error}"
    if status.step == status_mod.HELD:
        return f"held for a person: {status.last_error}"
    return f"being emailed (attempt {status.attempts}: {status.last_error})" if status.last_error else "being emailed"


def _delivery(record: Record, tracker: Tracker, r: Recorded) -> str:
    """The license's state, the record's signed word first: a license the mail server refused was never
    delivered, whatever its issue says now (a corrected address has a license of its own)."""
    refusal = record.refused(r.entry.license_id)
    if refusal is not None:
        return f"REFUSED by the mail server on {refusal.on}, never delivered: {refusal.why}"
    return _license_state(tracker, r)


def _on_ticket(zendesk, r: Recorded) -> str:
    """Whether the license's internal note is on its Zendesk ticket."""
    if zendesk is None or r.entry.ticket_id is None:
        return ""
    try:
        comments = zendesk.comments(r.entry.ticket_id)
    except BotError as exc:
        return f"; could not read ticket {r.entry.ticket_id} ({exc})"
    noted = any(not c.get("public", True) and r.entry.license_id in (c.get("body") or "") for c in comments)
    return f"; internal note on ticket {r.entry.ticket_id}: {'yes' if noted else 'NO'}"


def _key_name(kid: str, names: dict[str, str]) -> str | None:
    return f"{kid}, {names[kid]}" if kid in names else kid or None


def search(tracker: Tracker, record: Record, email: str, ticket_base_url: str,
           ticket_id: int | None = None, zendesk=None, key_names: dict[str, str] | None = None) -> list[Found]:
    """The address's licenses (newest first), then look-alikes the bot did not make, then open requests.
    `key_names`: where each trusted key is configured, by key id, to say which key signed each license."""
    found: list[Found] = []
    for r in record.for_email(email, ticket_id):
        e = r.entry
        found.append(Found(LICENSE, e.issue_iid, e.issue_url, messages.success_title(e.email, e.user_count),
                           e.made_on, e.email, e.user_count, e.ticket_url, e.expires_on, e.license_id,
                           _delivery(record, tracker, r) + _on_ticket(zendesk, r),
                           _key_name(r.license_key, key_names or {})))
    recorded = {f.iid for f in found} | {r.entry.issue_iid for r in record.entries()}
    for issue in tracker.search_issues(email, in_="title", state="all"):
        parsed = messages.parse_success_title(issue.title)
        if parsed and same_address(parsed[0], email) and issue.iid not in recorded:
            found.append(Found(NOT_THE_BOTS, issue.iid, issue.web_url, issue.title, issue.created_at.date().isoformat(),
                               parsed[0], parsed[1], None, None, None,
                               DAMAGED if record.problems() else "no license in the bot's record"))
    for issue in tracker.open_requests():
        parsed = request.parse(issue.description, ticket_base_url)
        if issue.iid in recorded or not parsed.email or not same_address(parsed.email, email):
            continue
        if ticket_id is not None and (parsed.request is None or parsed.request.ticket_id != ticket_id):
            continue
        note = tracker.status_note(issue.iid) if issue.user_notes_count else None
        status = status_mod.read(note.body) if note else None
        if status is None:
            reason = "not processed yet: the bot has not judged it"
        elif status.errors:
            reason = "failed: " + "; ".join(f"{messages.FIELD_NAMES.get(f, f)}: {m}" for f, m in status.errors)
        else:
            reason = status.last_error or "being processed"
        ticket_url = parsed.request.ticket_url if parsed.request else parsed.ticket_url  # the built link when valid
        found.append(Found(OPEN, issue.iid, issue.web_url, issue.title, issue.created_at.date().isoformat(),
                           parsed.email, parsed.user_count, ticket_url, None, None, reason))
    return found


def damage_lines(record: Record) -> list[str]:
    """What is wrong with the record, entry by entry: a lost or edited entry may be the license asked for."""
    problems = record.problems()
    return [f"warning: the record of issued licenses is damaged ({len(problems)} problem"
            f"{'s' if len(problems) != 1 else ''}): a license recorded there may be missing from this list",
            *(f"  {p.line()}" for p in problems)] if problems else []


def download(record: Record, hits: list[Found], directory: Path, *, force: bool = False) -> list[tuple[Path, Recorded]]:
    """Write each license the record holds for these hits, under the name it was emailed with (plus the
    issue number when there are several). The key is the record's, already checked with the public key.
    An existing file is never overwritten without `force`; nothing is written unless every file can be."""
    wanted = [r for h in hits if h.kind == LICENSE for r in record.entries() if r.entry.license_id == h.license_id]
    plan = []
    for r in wanted:
        name = Path(r.entry.file_name or "license.gitlab-license")
        if len(wanted) > 1:
            name = Path(f"{name.stem}-{r.entry.issue_iid}{name.suffix}")
        path = directory / name.name
        if (path.exists() or path.is_symlink()) and not force:
            raise BotError(f"{path} exists already: choose another --download folder, or add --force to replace it")
        plan.append((path, r))
    if directory.exists() and not directory.is_dir():
        raise BotError(f"--download {directory}: not a folder")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BotError(f"--download {directory}: cannot write there ({exc.strerror})") from None
    for path, r in plan:  # each through a fresh temporary file: a planted symlink is replaced, never followed
        files.write(path, r.key_text, "--download", force=force)
    return plan


def to_json(hits: list[Found]) -> list[dict]:
    return [asdict(h) for h in hits]
