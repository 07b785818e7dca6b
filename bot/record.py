"""The record of issued licenses: the one proof that a license exists. Every rule and command asks it.

Every license the bot makes is written here *before* it is emailed: one comment per license, by the
bot's own user, on one confidential issue that the bot's user opened (the record issue). An entry
counts only if the bot's user wrote it and it carries a key that decodes with the signing public key
and matches the entry's license id, SHA-256, email and user count. Titles, labels and descriptions are
never proof: anyone who can file an issue can write a `[Success]` title or set a label; nobody but the
bot can write as the bot, and nobody but the key's holder can make a key that decodes.

Why one record issue instead of searching the requests: GitLab's issue search is full-text (a ticket
written as a URL is not found by its number), any Reporter can remove a label, and a description can
be edited after the fact. Reading the record's comments is exact, costs one call per 100 licenses
per run, and is append-only for everyone below Maintainer.

The entry format (`entry_note`, `parse_entry`, `verify`) is pure; `Record` reads and appends through
the tracker.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from datetime import date
from typing import TYPE_CHECKING

from . import license as lic_mod
from .policy import PriorLicense

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from .tracker import Note, Tracker

ISSUE_TITLE = "License Bot: record of issued licenses (written by the bot; do not edit)"
ISSUE_DESCRIPTION = (
    "Every emergency license License Bot makes is recorded here as one comment by the bot, before it is "
    "emailed. The bot reads these comments to keep one license per ticket and one per email within the "
    "cooldown, and `license-bot find` reads them to retrieve a lost license.\n\n"
    "Only comments written by the bot's own user, whose key decodes with the signing public key, count. "
    "Deleting one does not let a request get a second license, but it hides a license from `find`: "
    "please leave them alone.\n")

_ENTRY_MARKER = "<!-- license-bot:record-entry "
_ENTRY_RE = re.compile(r"<!-- license-bot:record-entry (\{[^<>]*\}) -->")
_KEY_RE = re.compile(r"-+BEGIN [A-Z ]+ LICENSE-+\n[A-Za-z0-9+/=\n]*?-+END [A-Z ]+ LICENSE-+")


@dataclass(frozen=True)
class Entry:
    """One issued license as the record holds it."""

    license_id: str
    sha256: str
    issue_iid: int
    issue_url: str
    email: str
    user_count: int
    ticket_id: int | None
    ticket_url: str | None
    made_on: str        # YYYY-MM-DD: the day the license was made (the cooldown counts from it)
    expires_on: str     # YYYY-MM-DD
    file_name: str
    upload_markdown: str = ""

    @property
    def issue_ref(self) -> str:
        return f"#{self.issue_iid}"

    def prior(self) -> PriorLicense:
        return PriorLicense(self.issue_ref, self.issue_url, self.email, self.ticket_id,
                            date.fromisoformat(self.made_on))


@dataclass(frozen=True)
class Refusal:
    """A follow-up entry: the mail server refused the license's recipient, so it was never delivered (refused), or
    a person's re-send delivered it after all (refused false). The latest one for a license counts."""

    license_id: str
    issue_iid: int
    email: str
    refused: bool
    why: str
    on: str  # YYYY-MM-DD


_REFUSAL_MARKER = "<!-- license-bot:record-refusal "
_REFUSAL_RE = re.compile(r"<!-- license-bot:record-refusal (\{[^<>]*\}) -->")


def refusal_note(refusal: Refusal) -> str:
    data = json.dumps(asdict(refusal), sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    data = data.replace("<", "\\u003c").replace(">", "\\u003e")
    said = (f"was refused by the mail server for {refusal.email} on {refusal.on} and never delivered: {refusal.why}. "
            "It does not count for the one-license-per-ticket or the cooldown rule" if refusal.refused else
            f"was delivered to {refusal.email} on {refusal.on} after all (a person's re-send); it counts again")
    return f"License `{refusal.license_id}` (#{refusal.issue_iid}) {said}.\n\n{_REFUSAL_MARKER}{data} -->\n"


def parse_refusal(body: str) -> Refusal | None:
    match = _REFUSAL_RE.search(body or "")
    if not match:
        return None
    try:
        data = json.loads(match.group(1))
        refusal = Refusal(**{k: v for k, v in data.items() if k in {f.name for f in fields(Refusal)}})
        int(refusal.issue_iid), bool(refusal.refused)
    except (ValueError, TypeError):
        return None
    return refusal


@dataclass(frozen=True)
class Recorded:
    """A verified entry with its key."""

    entry: Entry
    key_text: str
    license: lic_mod.License


def entry_note(entry: Entry, key_text: str) -> str:
    """The record comment: a line for people, the key, and the entry as hidden JSON."""
    data = json.dumps(asdict(entry), sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    data = data.replace("<", "\\u003c").replace(">", "\\u003e")  # no value can end the comment
    ticket = f"ticket {entry.ticket_id}" if entry.ticket_id is not None else "no ticket"
    return (f"License `{entry.license_id}` for {entry.email}, {entry.user_count} users, {ticket}, made "
            f"{entry.made_on} for {entry.issue_ref}, expires {entry.expires_on}. {entry.upload_markdown}\n\n"
            f"```\n{key_text.strip()}\n```\n\n{_ENTRY_MARKER}{data} -->\n")


def parse_entry(body: str) -> tuple[Entry, str] | None:
    """The entry and key a record comment holds; None for anything else."""
    match = _ENTRY_RE.search(body or "")
    key = _KEY_RE.search(body or "")
    if not match or not key:
        return None
    try:
        data = json.loads(match.group(1))
        known = {f.name for f in fields(Entry)}
        entry = Entry(**{k: v for k, v in data.items() if k in known})
        int(entry.issue_iid), date.fromisoformat(entry.made_on), date.fromisoformat(entry.expires_on)
    except (ValueError, TypeError):
        return None
    return entry, key.group(0)


def verify(entry: Entry, key_text: str, public_key: rsa.RSAPublicKey) -> lic_mod.License | None:
    """The license, if the key decodes with the public key and is the one the entry describes."""
    if lic_mod.fingerprint(key_text) != entry.sha256 or lic_mod.license_id(key_text) != entry.license_id:
        return None
    try:
        lic = lic_mod.decode(key_text, public_key)
    except lic_mod.LicenseError:
        return None
    if (lic.email or "").casefold() != entry.email.casefold() or lic.user_count != entry.user_count:
        return None
    return lic


def read(notes: list[Note], bot_user_id: int, public_key: rsa.RSAPublicKey) -> list[Recorded]:
    """The verified entries among a record issue's comments, oldest first, one per license id."""
    found: dict[str, Recorded] = {}
    for note in notes:
        if note.author_id != bot_user_id:
            continue
        parsed = parse_entry(note.body)
        if parsed is None or parsed[0].license_id in found:
            continue
        lic = verify(*parsed, public_key)
        if lic is not None:
            found[parsed[0].license_id] = Recorded(parsed[0], parsed[1], lic)
    return list(found.values())


def same_address(a: str, b: str) -> bool:
    """Addresses compare whole and case-insensitively: jane@x.com is never jane@x.com.au or xjane@x.com."""
    return a.strip().casefold() == b.strip().casefold()


class Record:
    """The record as one run sees it: read once (lazily), then kept in step with what the run adds."""

    def __init__(self, tracker: Tracker, public_key: rsa.RSAPublicKey):
        self.tracker, self.public_key = tracker, public_key
        self._entries: list[Recorded] | None = None
        self._refusals: dict[str, Refusal] = {}  # license id -> its latest refusal entry
        self.added: list[Entry] = []  # what this run recorded

    def entries(self) -> list[Recorded]:
        if self._entries is None:
            iid = self.tracker.record_issue()
            me = self.tracker.me()["id"]
            notes = self.tracker.comments(iid) if iid is not None else []
            self._entries = read(notes, me, self.public_key)
            for note in notes:  # only the bot's own, and only for a license it recorded
                refusal = parse_refusal(note.body) if note.author_id == me else None
                if refusal and any(r.entry.license_id == refusal.license_id for r in self._entries):
                    self._refusals[refusal.license_id] = refusal
        return self._entries

    def refused(self, license_id: str) -> Refusal | None:
        """The refusal that says this license was never delivered, or None (delivered, or not refused)."""
        self.entries()
        refusal = self._refusals.get(license_id)
        return refusal if refusal and refusal.refused else None

    def for_issue(self, iid: int) -> Recorded | None:
        """The license made for an issue: the first one not refused by the mail server, else the last refused
        (an issue whose first license was refused gets one for its corrected address)."""
        mine = [r for r in self.entries() if r.entry.issue_iid == iid]
        live = [r for r in mine if not self.refused(r.entry.license_id)]
        return live[0] if live else (mine[-1] if mine else None)

    def prior_licenses(self, exclude_iid: int) -> tuple[PriorLicense, ...]:
        """Every license made for another issue, newest first: what the duplicate rules compare. A license the
        mail server refused was never delivered and does not count."""
        return tuple(r.entry.prior() for r in reversed(self.entries())
                     if r.entry.issue_iid != exclude_iid and not self.refused(r.entry.license_id))

    def mark_refused(self, entry: Entry, refused: bool, why: str, on: str) -> None:
        """Say on the record that ENTRY's license was refused (never delivered), or delivered after all.
        Idempotent: nothing is written when the record says so already."""
        self.entries()
        current = self._refusals.get(entry.license_id)
        if (current.refused if current else False) == refused:
            return
        refusal = Refusal(entry.license_id, entry.issue_iid, entry.email, refused, why, on)
        iid = self.tracker.record_issue(create=(ISSUE_TITLE, ISSUE_DESCRIPTION))
        me = self.tracker.me()["id"]
        body = refusal_note(refusal)

        def landed(notes: list[Note]) -> Note | None:
            return next((n for n in notes if n.author_id == me and parse_refusal(n.body) == refusal), None)
        self.tracker.add_note(iid, body, landed)
        self._refusals[entry.license_id] = refusal

    def for_email(self, email: str, ticket_id: int | None = None) -> list[Recorded]:
        """Licenses made for an address (and a ticket, if given), newest first."""
        return [r for r in reversed(self.entries()) if same_address(r.entry.email, email)
                and (ticket_id is None or r.entry.ticket_id == ticket_id)]

    def add(self, entry: Entry, key_text: str) -> Recorded:
        """Record a license before it is sent. Idempotent: an entry already there is not written again."""
        existing = next((r for r in self.entries() if r.entry.license_id == entry.license_id), None)
        if existing is not None:
            return existing
        lic = verify(entry, key_text, self.public_key)
        if lic is None:
            raise lic_mod.LicenseError(f"license {entry.license_id} does not match its own record entry")
        iid = self.tracker.record_issue(create=(ISSUE_TITLE, ISSUE_DESCRIPTION))
        me = self.tracker.me()["id"]

        def landed(notes: list[Note]) -> Note | None:
            mine = ((n, parse_entry(n.body)) for n in notes if n.author_id == me)
            return next((n for n, parsed in mine if parsed and parsed[0].license_id == entry.license_id), None)
        self.tracker.add_note(iid, entry_note(entry, key_text), landed)
        recorded = Recorded(entry, key_text, lic)
        self.entries().append(recorded)
        self.added.append(entry)
        return recorded
