"""The record of issued licenses: the one proof that a license exists. Every rule and command asks it.

Every license the bot makes is written here *before* it is emailed: one confidential issue per license,
opened by the bot's own user (an *entry issue*), whose description holds a line for people, the key, and
the entry as hidden JSON. An entry counts only if

- the bot's user opened the issue (nobody else can open one as the bot);
- the entry carries a signature by the signing key (through the same `Signer`, so an HSM key signs it
  too) over every field it holds: license id, key SHA-256, email, users, ticket, issue, dates, file,
  its number in the chain and the digest of the entry before it;
- its key decodes with a trusted public key and is the one the entry describes.

Why this shape (GitLab facts, each pinned by a test that cites its source):
- A Maintainer may edit anyone's comment, the author staying the bot (`admin_note`), and delete it; any
  Reporter may edit an issue's description. So nothing is trusted for who wrote it alone: an edited entry
  fails its signature, a deleted or moved one leaves a gap in the chain (each entry names the digest of the
  one before it), and either is reported (`doctor`, `find`) and holds every request the bot has not yet
  licensed for a person: the bot cannot tell which ticket or address the lost entry covered. An edited
  entry is rebuilt from its request's status note and restored by the next run (`repairs`): the next
  entry's `prev`, or for the newest the digest the status note kept, proves it is the text the bot wrote.
- Deleting an issue takes the Planner or Owner role (`destroy_issue`), not Maintainer. Deleting the newest
  entry leaves no gap (no later entry names it), so the chain's head is also kept, signed, in the bot's
  anchor (`Head`): a private personal snippet of the bot's own user, which only its author or an admin may
  read, change or delete (`PersonalSnippetPolicy`). An anchor ahead of the chain names the missing entries;
  a record from before the anchor is anchored as the first run with work finds it (trust on first use).
- Listing issues filters by `author_id`; listing notes cannot filter by author (`lib/api/notes.rb`:
  `order_by`, `sort`, `activity_filter` only). So reading the record costs one call per 100 licenses,
  whatever anyone writes on the entries; the old single record issue cost one call per 100 comments of
  anyone's.

Entries written before signing (comments on the old record issue, verified by the key alone) are migrated
once, at the first run that records a license: each becomes a signed entry (`legacy_note` names its
comment), the first one naming the old issue and how many it had. Until then they are read as before and
reported as unchained.

The entry format and the audit of the chain are pure; `Record` reads and appends through the tracker.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import date
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import padding

from . import license as lic_mod
from .keys import key_id
from .policy import PriorLicense

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from .signer import Signer
    from .tracker import Issue, Note, Tracker

ISSUE_TITLE = "License Bot: record of issued licenses (written by the bot; do not edit)"  # the old record issue
# The bot's home issue, where its run lock (bot/runlock.py) lives when it has opened no other issue yet: marked as
# the home by the bot's own :robot: reaction, which nobody below the bot can make or remove (a title or description
# any Reporter can write would let an erased entry pass for it).
HOME_TITLE = "License Bot (written by the bot; do not edit or delete: its run lock lives here)"
HOME_DESCRIPTION = ("License Bot's home issue. While a run works, the bot's own :lock: reaction here is its run "
                    "lock. It holds no license: the record of issued licenses is one confidential issue per license, "
                    "each opened by the bot.")
HOME_EMOJI = "robot"
ENTRY_TITLE = "License Bot record: license {license_id} (written and signed by the bot; do not edit)"
FOLLOW_UP_TITLE = "License Bot record: license {license_id} {delivery} (written and signed by the bot; do not edit)"
REFUSED, DELIVERED = "refused", "delivered"  # a follow-up entry's `delivery`
ANCHOR_TITLE = "License Bot record head (written and signed by the bot; do not edit or delete)"

_ENTRY_MARKER = "<!-- license-bot:record-entry "
_ENTRY_RE = re.compile(r"<!-- license-bot:record-entry (\{[^<>]*\}) -->")
_KEY_RE = re.compile(r"-+BEGIN [A-Z ]+ LICENSE-+\n[A-Za-z0-9+/=\n]*?-+END [A-Z ]+ LICENSE-+")
# What is signed is a SHA-256 under this prefix: never the bytes of another of the key's uses (the key
# material probe in bot/signer.py, doctor's probe, a license's AES key), so no signature here can stand in
# for one of those.
_SIGNED_AS = b"license-bot record entry v1\0"
_HEAD_AS = b"license-bot record head v1\0"  # the anchor's signature: never an entry's, never a license's
DAMAGED = "the record of issued licenses is damaged"  # how a hold for it starts, so it lifts once repaired


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
    seq: int = 0        # its place in the chain, from 1; 0: an old, unsigned entry
    prev: str = ""      # the digest of entry seq-1; for entry 1 "" or "legacy:#IID:COUNT" (the old record issue)
    legacy_note: int = 0  # the comment of the old record issue this entry was migrated from
    # A follow-up entry restates a recorded license (same fields and key) with what became of its delivery:
    # "refused" (the mail server refused the recipient: never delivered, so it counts for no rule) or
    # "delivered" (a person's re-send delivered it after all). Signed and chained like any entry, so nobody
    # but the bot can mark a license refused to get a second one. "" for the license's own entry.
    delivery: str = ""
    delivery_why: str = ""
    delivery_on: str = ""  # YYYY-MM-DD
    anchored: bool = False  # written while the bot kept the chain's head in its anchor (see `Head`)

    @property
    def issue_ref(self) -> str:
        return f"#{self.issue_iid}"

    def prior(self) -> PriorLicense:
        return PriorLicense(self.issue_ref, self.issue_url, self.email, self.ticket_id,
                            date.fromisoformat(self.made_on))

    def fields(self) -> dict:
        """Every field, the follow-up ones and `anchored` only when set: entries signed before they existed
        still check out."""
        return {k: v for k, v in asdict(self).items() if k not in _OPTIONAL_FIELDS or v}

    def payload(self) -> bytes:
        """Every field, canonically: what the signature covers."""
        return json.dumps(self.fields(), sort_keys=True, ensure_ascii=True, separators=(",", ":")).encode()

    def refusal(self) -> Refusal:
        return Refusal(self.license_id, self.issue_iid, self.email, self.delivery == REFUSED, self.delivery_why,
                       self.delivery_on)

    def describe(self) -> str:
        ticket = f"ticket {self.ticket_id}" if self.ticket_id is not None else "no ticket"
        said = f", {self.delivery} on {self.delivery_on}" if self.delivery else ""
        return (f"license {self.license_id} for {self.email}, {self.user_count} users, {ticket}, issue "
                f"{self.issue_ref}, made {self.made_on}{said}")


_OPTIONAL_FIELDS = ("delivery", "delivery_why", "delivery_on", "anchored")


@dataclass(frozen=True)
class Refusal:
    """What a license's newest follow-up entry says: the mail server refused its recipient, so it was never
    delivered (refused), or a person's re-send delivered it after all (refused false)."""

    license_id: str
    issue_iid: int
    email: str
    refused: bool
    why: str
    on: str  # YYYY-MM-DD


@dataclass(frozen=True)
class Recorded:
    """A verified entry with its key."""

    entry: Entry
    key_text: str
    license: lic_mod.License
    signature: str = ""  # base64; "" for an old, unsigned entry
    where: int = 0       # the entry issue's iid (the old record issue's, for an unmigrated entry)
    entry_key: str = ""    # the trusted key that signed the entry (keys.key_id); "" for an old, unsigned entry
    license_key: str = ""  # the trusted key the license decodes with: which key signed it, after a rotation too

    @property
    def digest(self) -> str:
        """What the next entry names as `prev`: the entry and its signature."""
        return hashlib.sha256(self.entry.payload() + b"\0" + self.signature.encode()).hexdigest()


@dataclass(frozen=True)
class Problem:
    """An entry the bot cannot trust, or one missing from the chain: which, and what is wrong."""

    where: str
    what: str

    def line(self) -> str:
        return f"{self.where}: {self.what}"


@dataclass(frozen=True)
class Damaged:
    """An entry issue whose text does not check out, and the request it says it is for (a hint only)."""

    iid: int
    request_iid: int | None


@dataclass(frozen=True)
class Audit:
    """What the bot-opened issues say, checked: the verified entries in chain order, and every problem."""

    entries: tuple[Recorded, ...]
    problems: tuple[Problem, ...]
    legacy_iid: int | None = None      # the old record issue, if any
    legacy_author: int = 0             # the bot user who opened it: only its comments are old entries
    legacy_pending: bool = False       # its comments still need reading (not, or not wholly, migrated)
    exposed: tuple[Issue, ...] = ()       # bot-opened issues that are not confidential: anyone could read the keys
    open_entries: tuple[Issue, ...] = ()  # entry issues left open (a crash before closing them, or a person)
    damaged: tuple[Damaged, ...] = ()
    follow_ups: tuple[Recorded, ...] = ()  # verified follow-up entries (a refusal, a re-send), in chain order
    authors: tuple[tuple[int, int], ...] = ()  # (entry issue, the bot user who opened it)

    @property
    def head(self) -> Recorded | None:
        return _head([*self.entries, *self.follow_ups])


@dataclass(frozen=True)
class Head:
    """The chain's newest entry as the bot last wrote it, kept in the bot's anchor: a private personal
    snippet of the bot's own user (`tracker.record_head`). Only its author (or an admin) may read, change or
    delete it, so deleting the newest entry issues (a Planner or Owner may) leaves the anchor ahead of the
    chain. Signed like the entries, so an anchor the bot did not write counts for nothing."""

    seq: int
    digest: str
    signature: str = ""

    def payload(self) -> bytes:
        return _HEAD_AS + f"{self.seq}:{self.digest}".encode()

    def text(self) -> str:
        return json.dumps({"seq": self.seq, "digest": self.digest, "sig": self.signature}, sort_keys=True)


def sign_head(head: Recorded | None, signer: Signer) -> Head:
    """The anchor for this head (seq 0: an empty chain)."""
    seq, digest = (head.entry.seq, head.digest) if head else (0, "")
    raw = signer.sign_raw(hashlib.sha256(Head(seq, digest).payload()).digest())
    return Head(seq, digest, base64.b64encode(raw).decode())


def parse_head(text: str, trusted: Sequence[rsa.RSAPublicKey]) -> Head | None:
    """The anchor, if it reads and a trusted key signed it; None for anything else."""
    try:
        data = json.loads(text)
        head = Head(int(data["seq"]), str(data["digest"]), str(data["sig"]))
        raw = base64.b64decode(head.signature, validate=True)
    except (ValueError, TypeError, KeyError, binascii.Error):
        return None
    return head if _recovering_key(raw, hashlib.sha256(head.payload()).digest(), trusted) is not None else None


def head_problems(entries: Sequence[Recorded], anchor: str | None, trusted, *, mine: bool = True) -> list[Problem]:
    """The anchor against the verified chain: an anchor ahead of it names the newest entries that are gone
    (deleting the newest entry leaves no gap for `prev` to show). An anchor behind it is a run that stopped
    between writing an entry and its anchor: not damage (the run with work brings it up to date). `mine`:
    the newest entry is the current bot user's (after a token change, the old user's anchor is out of reach)."""
    head = _head(list(entries))
    where = "the record's head (the bot's private anchor snippet)"
    if anchor is None:
        if head is not None and head.entry.anchored and mine:
            return [Problem(where, f"is gone, yet entry {head.entry.seq} was written while it existed: only the "
                                   "bot's user or an admin can delete it, and entries after "
                                   f"{head.entry.seq} may be missing")]
        return []
    found = parse_head(anchor, _keys(trusted))
    if found is None:
        return [Problem(where, "does not carry the bot's signature: it was changed after the bot wrote it (only "
                               "the bot's user or an admin can), so the newest entries cannot be checked")]
    have = head.entry.seq if head else 0
    if found.seq > have:
        missing = ", ".join(str(n) for n in range(have + 1, found.seq + 1))
        return [Problem(f"record entr{'ies' if found.seq > have + 1 else 'y'} {missing}",
                        f"missing: the bot wrote entry {found.seq} last, the newest that checks out is "
                        f"{have or 'none'} (its issue was deleted): the license it held cannot be checked")]
    if found.seq and not any(r.entry.seq == found.seq and r.digest == found.digest for r in entries):
        return [Problem(f"record entry {found.seq}", "missing or replaced: it is not the entry the bot wrote "
                                                     "there, so the license it held cannot be checked")]
    return []


def entry_note(entry: Entry, key_text: str, signature: str = "") -> str:
    """The entry's text: a line for people, the key, and the entry (with its signature) as hidden JSON."""
    data = {**entry.fields(), **({"sig": signature} if signature else {})}
    text = json.dumps(data, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e")  # no value can end the comment
    ticket = f"ticket {entry.ticket_id}" if entry.ticket_id is not None else "no ticket"
    if entry.delivery == REFUSED:
        said = (f"License `{entry.license_id}` ({entry.issue_ref}) was refused by the mail server for {entry.email} on "
                f"{entry.delivery_on} and never delivered: {entry.delivery_why}. It does not count for the "
                "one-license-per-ticket or the cooldown rule.")
    elif entry.delivery == DELIVERED:
        said = (f"License `{entry.license_id}` ({entry.issue_ref}) was delivered to {entry.email} on "
                f"{entry.delivery_on} after all ({entry.delivery_why}); it counts again.")
    else:
        said = (f"License `{entry.license_id}` for {entry.email}, {entry.user_count} users, {ticket}, made "
                f"{entry.made_on} for {entry.issue_ref}, expires {entry.expires_on}. {entry.upload_markdown}")
    return f"{said}\n\n```\n{key_text.strip()}\n```\n\n{_ENTRY_MARKER}{text} -->\n"


def parse_entry(body: str) -> tuple[Entry, str] | None:
    """The entry and key a record text holds; None for anything else."""
    parsed = _parse(body)
    return (parsed[0], parsed[1]) if parsed else None


def _parse(body: str) -> tuple[Entry, str, str] | None:
    match = _ENTRY_RE.search(body or "")
    key = _KEY_RE.search(body or "")
    if not match or not key:
        return None
    try:
        data = json.loads(match.group(1))
        known = {f.name for f in fields(Entry)}
        if not isinstance(data, dict) or not all(_typed(f, data[f.name]) for f in fields(Entry) if f.name in data):
            return None
        entry = Entry(**{k: v for k, v in data.items() if k in known})
        date.fromisoformat(entry.made_on), date.fromisoformat(entry.expires_on)
        if entry.delivery not in ("", REFUSED, DELIVERED):
            return None
        signature = str(data.get("sig") or "")
    except (ValueError, TypeError, AttributeError):
        return None
    return entry, key.group(0), signature


_JSON_TYPES = {"str": (str,), "int": (int,), "bool": (bool,), "int | None": (int, type(None)),
               "str | None": (str, type(None))}


def _typed(field, value) -> bool:
    """Whether VALUE has the field's declared type: whoever may edit the entry's description may write `"seq": "1"`
    or `"user_count": true`, which must read as a damaged entry, not break every comparison later."""
    if isinstance(value, bool) and field.type != "bool":  # JSON's true is a Python int
        return False
    return isinstance(value, _JSON_TYPES[field.type])


def sign(entry: Entry, signer: Signer) -> str:
    """The entry's signature (base64): PKCS#1 v1.5 over a SHA-256 of every field, as `Signer.sign_raw` makes
    it, so a key in an HSM signs entries as it signs licenses."""
    return base64.b64encode(signer.sign_raw(hashlib.sha256(_SIGNED_AS + entry.payload()).digest())).decode()


def signed_by(entry: Entry, signature: str, trusted: Sequence[rsa.RSAPublicKey]) -> bool:
    """Whether a trusted public key made this signature over exactly these fields."""
    return signing_key(entry, signature, trusted) is not None


def signing_key(entry: Entry, signature: str, trusted: Sequence[rsa.RSAPublicKey]) -> rsa.RSAPublicKey | None:
    """The trusted public key that made this signature over exactly these fields, if any: after a rotation the
    entries written before it carry the earlier key's signature, and still count."""
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return None
    return _recovering_key(raw, hashlib.sha256(_SIGNED_AS + entry.payload()).digest(), trusted)


def _recovering_key(raw: bytes, digest: bytes, trusted: Sequence[rsa.RSAPublicKey]) -> rsa.RSAPublicKey | None:
    """The trusted key whose PKCS#1 v1.5 signature RAW is over DIGEST (as the Signer makes them), if any."""
    for key in trusted:
        try:
            if key.recover_data_from_signature(raw, padding.PKCS1v15(), None) == digest:
                return key
        except (InvalidSignature, ValueError):
            continue
    return None


def verify(entry: Entry, key_text: str, trusted: rsa.RSAPublicKey | Sequence[rsa.RSAPublicKey]
           ) -> lic_mod.License | None:
    """The license, if the key decodes with a trusted public key and is the one the entry describes."""
    found = verify_with(entry, key_text, trusted)
    return found[0] if found else None


def verify_with(entry: Entry, key_text: str, trusted) -> tuple[lic_mod.License, str] | None:
    """The license and the id of the trusted key it decodes with (keys.key_id), as `verify` checks it."""
    if lic_mod.fingerprint(key_text) != entry.sha256 or lic_mod.license_id(key_text) != entry.license_id:
        return None
    for public_key in _keys(trusted):
        try:
            lic = lic_mod.decode(key_text, public_key)
        except lic_mod.LicenseError:
            continue
        if (lic.email or "").casefold() == entry.email.casefold() and lic.user_count == entry.user_count:
            return lic, key_id(public_key)
    return None


def _keys(trusted) -> tuple:
    return tuple(trusted) if isinstance(trusted, (list, tuple)) else (trusted,)


def read(notes: list[Note], bot_user_id: int, trusted) -> list[Recorded]:
    """The verified old (unsigned) entries among the old record issue's comments, oldest first, one per id."""
    found: dict[str, Recorded] = {}
    for note in notes:
        if note.author_id != bot_user_id:
            continue
        parsed = parse_entry(note.body)
        if parsed is None or parsed[0].license_id in found:
            continue
        checked = verify_with(*parsed, trusted)
        if checked is not None:
            found[parsed[0].license_id] = Recorded(replace(parsed[0], legacy_note=note.id), parsed[1], checked[0],
                                                   license_key=checked[1])
    return list(found.values())


def audit(issues: Sequence[Issue], trusted) -> Audit:
    """Check every issue the bot's user opened, oldest first: each is an entry that must verify and link to
    the one before it, except the old record issue (the oldest, if older than every signed entry)."""
    trusted = _keys(trusted)
    ordered = sorted(issues, key=lambda i: (i.created_at, i.iid))
    parsed = [(issue, _parse(issue.description)) for issue in ordered]
    problems: list[Problem] = []
    legacy_iid, legacy_author = None, 0
    if parsed and (parsed[0][1] is None or parsed[0][1][0].seq == 0):
        legacy_iid, legacy_author = parsed[0][0].iid, parsed[0][0].author_id  # opened before any entry
        parsed = parsed[1:]
    good: list[Recorded] = []
    damaged: list[Damaged] = []
    for issue, item in parsed:
        where = f"record entry issue #{issue.iid}"
        damaged.append(Damaged(issue.iid, item[0].issue_iid if item else None))  # taken back if it checks out
        if item is None:
            problems.append(Problem(where, "holds no readable record entry: its description was changed or erased "
                                           "after the bot wrote it"))
            continue
        entry, key_text, signature = item
        signer_key = signing_key(entry, signature, trusted) if entry.seq >= 1 and signature else None
        if signer_key is None:
            # Never read as "no license": the entry may be a genuine one signed by a key no longer trusted.
            problems.append(Problem(where, f"its entry ({entry.describe()}) carries no signature by a trusted key "
                                           f"({len(trusted)} trusted) over what it says now: it was edited after the "
                                           "bot wrote it, or signed by a key that is no longer trusted (after a "
                                           "rotation, list the earlier key in license.trusted_public_keys), so none "
                                           "of it is trusted"))
            continue
        checked = verify_with(entry, key_text, trusted)
        if checked is None:
            problems.append(Problem(where, f"entry {entry.seq}'s key is not the license it names ({entry.license_id}):"
                                           " the key was changed"))
            continue
        good.append(Recorded(entry, key_text, checked[0], signature, issue.iid, key_id(signer_key), checked[1]))
        damaged.pop()
    good.sort(key=lambda r: (r.entry.seq, r.where))
    problems += _chain_problems(good)
    legacy_pending = legacy_iid is not None
    root = next((r for r in good if r.entry.seq == 1), None)
    if root is not None and root.entry.prev.startswith("legacy:"):
        count = int(root.entry.prev.rsplit(":", 1)[-1] or 0)
        legacy_pending = sum(1 for r in good if r.entry.legacy_note) < count
    elif root is not None and legacy_iid is not None:
        legacy_pending = False  # a fresh chain with an older bot issue that is not an old record issue
    kept = tuple(_first_of_each([r for r in good if not r.entry.delivery]))
    licenses = {r.entry.license_id: r.entry.sha256 for r in kept}
    # A follow-up counts for a license the chain holds, the same one (a migrated old entry comes first).
    follow_ups = tuple(r for r in good if r.entry.delivery and licenses.get(r.entry.license_id) == r.entry.sha256)
    exposed = tuple(i for i in ordered if not i.confidential)
    entry_iids = {r.where for r in (*kept, *follow_ups)}
    open_entries = tuple(i for i in ordered if i.iid in entry_iids and i.state == "opened")
    return Audit(kept, tuple(problems), legacy_iid, legacy_author, legacy_pending, exposed, open_entries,
                 tuple(damaged), follow_ups=follow_ups,
                 authors=tuple((i.iid, i.author_id) for i in ordered if i.iid in entry_iids))


def _chain_problems(good: list[Recorded]) -> list[Problem]:
    """Each signed entry names the digest of the one before it: a name nobody answers to is a deleted or
    changed entry (an entry's text copied over another's leaves the other missing); an entry older than its
    predecessor was moved. Two runs that overlapped may write the same entry twice, or two entries after the
    same one: both are genuine, and neither is a gap."""
    problems = []
    by_digest: dict[str, Recorded] = {}
    for r in good:
        by_digest.setdefault(r.digest, r)
    for r in good:
        e = r.entry
        if e.seq == 1:
            continue
        before = by_digest.get(e.prev)
        if before is None or before.entry.seq != e.seq - 1:
            problems.append(Problem(f"record entry {e.seq} (issue #{r.where})", f"entry {e.seq - 1}, the one it "
                                    "follows, is missing or was changed: the license it held cannot be checked"))
        elif before.where > r.where:
            problems.append(Problem(f"record entry {e.seq} (issue #{r.where})", f"it is older than entry "
                                    f"{e.seq - 1} (issue #{before.where}) that it follows: the entries were moved"))
    return problems


def _first_of_each(good: list[Recorded]) -> list[Recorded]:
    seen: set[str] = set()
    out = []
    for r in good:
        if r.entry.license_id not in seen:
            seen.add(r.entry.license_id)
            out.append(r)
    return out


def same_address(a: str, b: str) -> bool:
    """Addresses compare whole and case-insensitively: jane@x.com is never jane@x.com.au or xjane@x.com."""
    return a.strip().casefold() == b.strip().casefold()


class Record:
    """The record as one run sees it: read once (lazily), then kept in step with what the run adds.

    `trusted` is the public key (or keys) an entry's signature and key must check out with; `signer`
    writes new entries (None for `find` and `doctor`, which only read)."""

    def __init__(self, tracker: Tracker, trusted, signer: Signer | None = None):
        self.tracker, self.trusted, self.signer = tracker, _keys(trusted), signer
        self._audit: Audit | None = None
        self._legacy: list[Recorded] = []
        self._entries: list[Recorded] | None = None
        self._follow_ups: list[Recorded] = []
        self.added: list[Entry] = []  # what this run recorded
        self.notices: list[str] = []  # what a run with work should say it did to the record

    def audit(self) -> Audit:
        if self._audit is None:
            issues = self.tracker.bot_issues()
            self._audit = audit(issues, self.trusted)
            homes = {i.iid for i in issues if _parse(i.description) is None
                     and any(d.iid == i.iid for d in self._audit.damaged) and self._is_home(i.iid, i.author_id)}
            if homes:  # another bot user's home issue (a token change): never an entry, so no erased one either
                self._audit = replace(self._audit, problems=tuple(
                    p for p in self._audit.problems if p.where not in {f"record entry issue #{h}" for h in homes}),
                    damaged=tuple(d for d in self._audit.damaged if d.iid not in homes))
            if self._audit.legacy_pending and self._audit.legacy_iid is not None:
                migrated = {r.entry.legacy_note for r in self._audit.entries}
                found = read(self.tracker.comments(self._audit.legacy_iid), self._audit.legacy_author, self.trusted)
                self._legacy = [replace(r, where=self._audit.legacy_iid) for r in found
                                if r.entry.legacy_note not in migrated]
                if not found and not self._is_home(self._audit.legacy_iid, self._audit.legacy_author):
                    # the old record issue was opened for an entry: none left is an erased first entry
                    self._audit = replace(self._audit, problems=(*self._audit.problems, Problem(
                        f"record entry issue #{self._audit.legacy_iid}", "holds no record entry, and no old entries "
                        "either: its description or its comments were erased (an Owner may delete it if it is an "
                        "old record issue that never held one)")))
            self._check_head()
        return self._audit

    @property
    def loaded(self) -> bool:
        """Whether this run has read the record already (a run with work has): reading it again costs nothing."""
        return self._audit is not None

    def _is_home(self, iid: int, author_id: int) -> bool:
        """Whether the bot opened this issue as its home (no entry was ever in it): its own :robot: reaction."""
        return any(a.name == HOME_EMOJI and a.user_id == author_id for a in self.tracker.awards(iid))

    def _check_head(self) -> None:
        """Compare the anchor with the chain: one read. A run that may write (it has a signer) makes a missing
        anchor from the chain as it finds it (trust on first use: the newest entries could already be gone
        then) and brings one left behind by a stopped run up to date."""
        assert self._audit is not None
        anchor = self.tracker.record_head(ANCHOR_TITLE)
        entries = [*self._audit.entries, *self._audit.follow_ups]  # a refusal's follow-up may be the newest
        head = _head(entries)
        mine = head is None or dict(self._audit.authors).get(head.where) == self.tracker.me()["id"]
        problems = head_problems(entries, anchor, self.trusted, mine=mine)
        if problems:
            self._audit = replace(self._audit, problems=(*self._audit.problems, *problems))
            return
        if self.signer is None or self._audit.problems:
            return
        if anchor is None:
            self._write_head(head)  # an empty record too: an entry written next is never without its anchor
            if head is not None:  # nothing to trust yet in an empty record: nothing to say
                self.notices.append(f"the record's head (entry {head.entry.seq}) is now kept in the bot's private "
                                    "anchor snippet: trusted as found (trust on first use); from now on a deleted "
                                    "newest entry is detected")
        elif (found := parse_head(anchor, self.trusted)) is not None and found.seq < (head.entry.seq if head else 0):
            self._write_head(head)

    def _write_head(self, head: Recorded | None) -> None:
        self.tracker.save_record_head(ANCHOR_TITLE, sign_head(head, self.signer).text())

    def entries(self) -> list[Recorded]:
        if self._entries is None:
            audit_ = self.audit()
            ids = {r.entry.license_id for r in audit_.entries}
            self._entries = [*(r for r in self._legacy if r.entry.license_id not in ids), *audit_.entries]
            self._follow_ups = list(audit_.follow_ups)
        return self._entries

    def refused(self, license_id: str) -> Refusal | None:
        """The refusal that says this license was never delivered, or None (delivered, or not refused): the
        license's newest signed follow-up entry decides."""
        latest = self._latest_follow_up(license_id)
        return latest.entry.refusal() if latest is not None and latest.entry.delivery == REFUSED else None

    def _latest_follow_up(self, license_id: str) -> Recorded | None:
        self.entries()
        mine = [r for r in self._follow_ups if r.entry.license_id == license_id]
        return max(mine, key=lambda r: (r.entry.seq, r.where)) if mine else None

    def problems(self) -> tuple[Problem, ...]:
        return self.audit().problems

    def damage(self) -> str:
        """'' when every entry checks out; else the problems, for a hold and its note."""
        return "; ".join(p.line() for p in self.problems())

    def unchained(self) -> list[Recorded]:
        """Old entries not yet migrated into the signed chain (read from the old record issue)."""
        self.entries()
        return list(self._legacy)

    def repairs(self) -> list[tuple[int, str]]:
        """(entry issue, the text the bot wrote there) for each edited entry the bot can rebuild and prove.

        The fields come from the request's status note (the bot's own note: only a Maintainer may edit it)
        and the place from the entries around it; the rebuilt entry is signed again (PKCS#1 v1.5 signs the
        same bytes the same way) and counts only if its digest is the one the next entry names, or, for the
        newest entry, the one the status note kept: so it is the very text the bot wrote."""
        audit_, out = self.audit(), []
        if self.signer is None:
            return out
        by_place = sorted([*audit_.entries, *audit_.follow_ups], key=lambda r: r.where)
        for damaged in audit_.damaged:
            after = next((r for r in by_place if r.where > damaged.iid), None)
            before = next((r for r in reversed(by_place) if r.where < damaged.iid), None)
            seq = (before.entry.seq if before else 0) + 1
            if damaged.request_iid is None or (after is not None and after.entry.seq != seq + 1):
                continue
            for anchored in (True, False):  # the status note does not say whether the entry was anchored
                rebuilt = self._rebuild(damaged.request_iid, seq, before.digest if before else "", anchored)
                if rebuilt is not None and rebuilt[0].digest == (after.entry.prev if after else rebuilt[1]):
                    out.append((damaged.iid, entry_note(rebuilt[0].entry, rebuilt[0].key_text, rebuilt[0].signature)))
                    break
        return out

    def _rebuild(self, request_iid: int, seq: int, prev: str, anchored: bool) -> tuple[Recorded, str | None] | None:
        """The entry rebuilt from the request's status note, and the entry digest that note kept."""
        from . import status as status_mod

        note = self.tracker.status_note(request_iid)
        state = status_mod.read(note.body) if note else None
        key_text = status_mod.key_text(note.body) if note else None
        if state is None or not state.has_license or not key_text or not state.persisted_at:
            return None
        request = self.tracker.get_issue(request_iid)
        entry = Entry(license_id=state.license_id or "", sha256=state.license_sha256 or "", issue_iid=request_iid,
                      issue_url=request.web_url, email=state.email or "", user_count=state.user_count or 0,
                      ticket_id=state.ticket_id, ticket_url=state.ticket_url, made_on=state.persisted_at[:10],
                      expires_on=state.expires_at or "", file_name=state.file_name or "",
                      upload_markdown=state.upload_markdown or "", seq=seq, prev=prev, anchored=anchored)
        checked = verify_with(entry, key_text, self.trusted)  # the key in the note must be the license it names
        if checked is None:
            return None
        return (Recorded(entry, key_text, checked[0], sign(entry, self.signer), entry_key=key_id(
            self.signer.public_key()), license_key=checked[1]), state.record_digest)

    def reload(self) -> None:
        """Read the record again (after the run repaired it)."""
        self._audit, self._entries, self._legacy, self._follow_ups = None, None, [], []  # the anchor is read again too

    def exposed(self) -> list[Issue]:
        """Issues holding a key that anyone may read: entry issues (and the old record issue) and the requests
        whose notes hold a license, made non-confidential by someone (any Reporter may). One call per 100."""
        bot = list(self.audit().exposed)
        requests = sorted({r.entry.issue_iid for r in self.entries()})
        return bot + self.tracker.not_confidential(requests) if requests else bot

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

    def for_email(self, email: str, ticket_id: int | None = None) -> list[Recorded]:
        """Licenses made for an address (and a ticket, if given), newest first."""
        return [r for r in reversed(self.entries()) if same_address(r.entry.email, email)
                and (ticket_id is None or r.entry.ticket_id == ticket_id)]

    def add(self, entry: Entry, key_text: str) -> Recorded:
        """Record a license before it is sent. Idempotent: an entry already there is not written again.
        Old unsigned entries are migrated into the chain first, so the new entry follows them."""
        existing = next((r for r in self.entries() if r.entry.license_id == entry.license_id
                         and r.entry.seq > 0), None)
        if existing is not None:
            return existing
        self._migrate()
        migrated = next((r for r in self.entries() if r.entry.license_id == entry.license_id), None)
        return migrated or self._append(entry, key_text)

    def _migrate(self) -> None:
        if self.signer is None:
            raise RuntimeError("this record was opened to read only")  # pragma: no cover - a programming error
        count = len(self._legacy)
        for old in list(self._legacy):
            self._append(replace(old.entry, seq=0, prev=""), old.key_text, legacy=count)
            self._legacy.remove(old)

    def mark_refused(self, entry: Entry, refused: bool, why: str, on: str) -> None:
        """Say on the record, in a signed follow-up entry, that ENTRY's license was refused by the mail server
        (never delivered), or delivered after all. Idempotent: nothing is written when the record says so."""
        if (self.refused(entry.license_id) is not None) == refused:
            return
        self._migrate()
        recorded = next(r for r in self.entries() if r.entry.license_id == entry.license_id)
        follow_up = replace(recorded.entry, delivery=REFUSED if refused else DELIVERED, delivery_why=why,
                            delivery_on=on, legacy_note=0)
        self._follow_ups.append(self._append(follow_up, recorded.key_text))

    def _append(self, entry: Entry, key_text: str, legacy: int = 0) -> Recorded:
        checked = verify_with(entry, key_text, self.trusted)
        if checked is None:
            raise lic_mod.LicenseError(f"license {entry.license_id} does not match its own record entry")
        head = _head([*self.entries(), *self._follow_ups])
        if head is None:
            audit_ = self.audit()
            prev = f"legacy:#{audit_.legacy_iid}:{legacy}" if legacy and audit_.legacy_iid is not None else ""
            entry = replace(entry, seq=1, prev=prev, anchored=True)
        else:
            entry = replace(entry, seq=head.entry.seq + 1, prev=head.digest, anchored=True)
        signature = sign(entry, self.signer)
        body = entry_note(entry, key_text, signature)

        def landed(issues: list[Issue]) -> Issue | None:
            return next((i for i in issues if (p := _parse(i.description)) and p[0].license_id == entry.license_id
                         and p[0].seq == entry.seq), None)
        title = (FOLLOW_UP_TITLE.format(license_id=entry.license_id, delivery=entry.delivery) if entry.delivery
                 else ENTRY_TITLE.format(license_id=entry.license_id))
        issue = self.tracker.open_entry(title, body, landed)
        recorded = Recorded(entry, key_text, checked[0], signature, issue.iid, key_id(self.signer.public_key()),
                            checked[1])
        if entry.delivery:  # a follow-up: now the chain's head, anchored like any entry
            self._write_head(recorded)
            return recorded
        entries = self.entries()
        entries[:] = [r for r in entries if r.entry.license_id != entry.license_id]
        entries.append(recorded)
        self._write_head(recorded)  # after the entry: a run stopped in between leaves the anchor behind, not ahead
        if not legacy:
            self.added.append(entry)
        return recorded


def _head(entries: list[Recorded]) -> Recorded | None:
    signed = [r for r in entries if r.entry.seq > 0]
    return max(signed, key=lambda r: (r.entry.seq, r.where)) if signed else None
