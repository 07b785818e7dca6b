"""The bot's one status note per issue: a readable summary over machine-readable state.

All of a request's state lives in GitLab: the state labels, and this note, found by its hidden
marker and edited in place. Pure: text in, text out.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, fields, replace

from .markers import STATUS_MARKER as MARKER

_STATE_RE = re.compile(r"<!-- license-bot:state (\{.*?\}) -->", re.S)
_KEY_RE = re.compile(r"-+BEGIN [A-Z ]+ LICENSE-+\n.*?-+END [A-Z ]+ LICENSE-+", re.S)

# Steps a request reaches, in order.
REJECTED = "rejected"        # judged invalid; waits for its description to change
CLAIMED = "claimed"          # valid; a run claimed it and is making, recording and emailing its license
PERSISTED = "persisted"      # license made and recorded; being emailed (retrying after a failure)
DELIVERED = "delivered"      # emailed; the issue is closed [Success]
UNDELIVERED = "undelivered"  # license recorded but not delivered; waits for a person
HELD = "held"                # its history does not add up (erased or edited); the bot never touches it again


def description_hash(description: str | None) -> str:
    return hashlib.sha256((description or "").encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Status:
    step: str
    description_sha256: str
    judged_at: str
    author: str = ""
    errors: tuple[tuple[str, str], ...] = ()
    warnings: tuple[tuple[str, str], ...] = ()
    license_id: str | None = None
    license_sha256: str | None = None
    email: str | None = None
    user_count: int | None = None
    ticket_url: str | None = None
    ticket_id: int | None = None
    issued_at: str | None = None
    expires_at: str | None = None
    file_name: str | None = None
    upload_markdown: str | None = None
    persisted_at: str | None = None
    attempts: int = 0
    last_error: str | None = None
    notices: tuple[str, ...] = field(default=())
    emailed_at: str | None = None
    message_id: str | None = None
    resends: int = 0   # re-sends a person asked for; each gets its own Message-ID
    internal_errors: int = 0  # unexpected errors so far; the request fails after run.max_attempts
    override: int = 0               # the id of the approver's :key: reaction honoured when judged (0: none)
    approved_by: str | None = None  # the approver whose :key: reaction was honoured
    ticket_status: str | None = None     # what Zendesk said about the ticket when the request was judged
    ticket_requester: str | None = None
    ticket_organization: str | None = None
    ticket_noted: bool | None = None     # the internal note on the ticket: None not wanted, False pending
    ticket_attempts: int = 0
    ticket_gave_up: bool = False         # the note failed for good: a person posts it (a notice says how)
    ticket_file: bool | None = None      # False: the note is posted without the file (its type is refused)
    record_digest: str | None = None     # the license's record entry, as the bot wrote it (restores an edited one)
    claim: int = -1                # the bot's claim reaction being taken or held (an index into evidence.CLAIMS)
    claimer: str | None = None     # "host:pid" of the run attempting it; None once its outcome is written here

    @property
    def has_license(self) -> bool:
        return self.license_sha256 is not None

    def with_(self, **changes) -> Status:
        return replace(self, **changes)


def encode_state(status: Status) -> str:
    """The state as a hidden HTML comment; `>` is escaped so no value can close the comment."""
    data = json.dumps(asdict(status), sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return f"<!-- license-bot:state {data.replace('>', chr(92) + 'u003e')} -->"


def read(body: str) -> Status | None:
    """The state recorded in a note body, or None when it has none or it is unreadable."""
    match = _STATE_RE.search(body or "")
    if not match:
        return None
    try:
        data = json.loads(match.group(1))
        known = {f.name for f in fields(Status)}
        values = {k: v for k, v in data.items() if k in known}
        for name in ("errors", "warnings"):
            values[name] = tuple(tuple(pair) for pair in values.get(name, ()))
        values["notices"] = tuple(values.get("notices", ()))
        return Status(**values)
    except (ValueError, TypeError):
        return None


def key_text(body: str) -> str | None:
    """The license key copied into a note, exactly as it was written there."""
    match = _KEY_RE.search(body or "")
    return match.group(0) if match else None


def is_status_note(body: str) -> bool:
    return MARKER in (body or "")
