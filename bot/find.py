"""`license-bot find EMAIL`: the license a customer says never arrived, and any request still open.

GitLab's search is fuzzy, so every hit is compared exactly here: the title must be exactly the
workflow's `[Success] - Created a license under EMAIL for X users`, and the address must be the same
address (compared case-insensitively: `jane@example.com` never matches `jane@example.com.au` or
`xjane@example.com`). "Nothing found" (exit 3) is never confused with "could not search" (exit 1).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

from . import messages, request
from . import status as status_mod
from .license import License, LicenseError, decode, fingerprint
from .tracker import Tracker, TrackerError

FOUND, NOTHING, COULD_NOT_SEARCH = 0, 3, 1


def same_address(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


@dataclass(frozen=True)
class Found:
    kind: str  # "success" or "open"
    iid: int
    url: str
    title: str
    date: str
    email: str
    user_count: int | None
    ticket_url: str | None
    expires_at: str | None
    license_id: str | None
    reason: str | None
    upload_url: str | None

    def line(self) -> str:
        if self.kind == "success":
            return (f"#{self.iid} {self.date}: license for {self.user_count} users, expires {self.expires_at}, "
                    f"ticket {self.ticket_url} — {self.url}")
        return f"#{self.iid} {self.date}: still open — {self.reason} — {self.url}"


def _upload_url(markdown: str | None) -> str | None:
    match = re.search(r"\((/uploads/[^)\s]+)\)", markdown or "")
    return match.group(1) if match else None


def _status(tracker: Tracker, iid: int) -> tuple[status_mod.Status | None, str | None]:
    note = tracker.status_note(iid)
    return (status_mod.read(note.body), note.body) if note else (None, None)


def search(tracker: Tracker, email: str, ticket_base_url: str, ticket_id: int | None = None) -> list[Found]:
    """Every [Success] issue for the address, newest first, then every open request for it."""
    found: list[Found] = []
    for issue in tracker.search_issues(email, in_="title", state="all"):
        parsed = messages.parse_success_title(issue.title)
        if not parsed or not same_address(parsed[0], email):
            continue
        status, _ = _status(tracker, issue.iid)
        req = request.parse(issue.description, ticket_base_url).request
        ticket_url = (status.ticket_url if status else None) or (req.ticket_url if req else None)
        their_ticket = (status.ticket_id if status else None) or (req.ticket_id if req else None)
        if ticket_id is not None and their_ticket != ticket_id:
            continue
        when = issue.closed_at or issue.updated_at
        found.append(Found("success", issue.iid, issue.web_url, issue.title, when.date().isoformat(), parsed[0],
                           parsed[1], ticket_url, status.expires_at if status else None,
                           status.license_id if status else None, None,
                           _upload_url(status.upload_markdown) if status else None))
    found.sort(key=lambda f: (f.date, f.iid), reverse=True)

    open_found: list[Found] = []
    for issue in tracker.search_issues(email, in_="description", state="opened"):
        req = request.parse(issue.description, ticket_base_url)
        their_email = req.email or ""
        if not same_address(their_email, email) or (ticket_id is not None and req.request
                                                       and req.request.ticket_id != ticket_id):
            continue
        status, _ = _status(tracker, issue.iid)
        if status is None:
            reason = "not processed yet: the bot has not seen it"
        elif status.step == status_mod.REJECTED:
            reason = "failed: " + "; ".join(f"{f}: {m}" for f, m in status.errors)
        elif status.step == status_mod.UNDELIVERED:
            reason = f"license {status.license_id} made but not delivered: {status.last_error}"
        else:
            reason = (f"license {status.license_id} made, email retrying: {status.last_error}" if status.last_error
                      else f"license {status.license_id} made, being sent")
        open_found.append(Found("open", issue.iid, issue.web_url, issue.title, issue.created_at.date().isoformat(),
                                their_email, req.user_count, req.ticket_url,
                                status.expires_at if status else None, status.license_id if status else None,
                                reason, _upload_url(status.upload_markdown) if status else None))
    return found + open_found


def download(tracker, hit: Found, directory: Path, public_key) -> tuple[Path, License, str]:
    """Write the license of a [Success] issue: its upload, else the copy in its status note.

    A copy is used only if it is the license the status note records (same SHA-256) and it decodes
    with the public key. Returns the file, the license and where it came from; raises LicenseError.
    """
    status, body = _status(tracker, hit.iid)
    copies: list[tuple[str | None, str]] = []
    if hit.upload_url:
        try:
            copies.append((tracker.download(hit.upload_url).decode("ascii", "replace"), "the issue's upload"))
        except TrackerError as exc:
            copies.append((None, f"the issue's upload could not be fetched ({exc})"))
    copies.append((status_mod.key_text(body or ""), "the copy in the status note"))
    problems = []
    for text, source in copies:
        if not text:
            problems.append(source if "could not" in source else f"{source}: none")
            continue
        if status and status.license_sha256 and fingerprint(text) != status.license_sha256:
            problems.append(f"{source}: not the license recorded for #{hit.iid}")
            continue
        lic = decode(text, public_key)
        directory.mkdir(parents=True, exist_ok=True)
        name = status.file_name if status and status.file_name else "license.gitlab-license"
        path = directory / f"{Path(name).stem}-{hit.iid}{Path(name).suffix}"
        path.write_text(text, encoding="ascii")
        fallback = f" ({problems[0]})" if problems else ""
        return path, lic, source + fallback
    raise LicenseError(f"#{hit.iid}: no usable copy of its license: " + "; ".join(problems))


def to_json(hits: list[Found]) -> list[dict]:
    return [asdict(h) for h in hits]
