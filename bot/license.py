"""GitLab EE license keys: the License value, its encoding, and the emergency trial builder.

Byte-compatible with the `gitlab-license` gem's `export`/`import` (see
shared/reference/license-format.md). Pure: no clock, no environment, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
import os
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .errors import BotError
from .signer import Signer, as_signer

DEFAULT_BOUNDARY = "GitLab Enterprise Edition"
FILE_EXTENSION = ".gitlab-license"

# The importer's own patterns (Gitlab::License::Boundary).
_BEGIN_RE = re.compile(r"(\A|\r?\n)-*BEGIN .+? LICENSE-*\r?\n")
_END_RE = re.compile(r"\r?\n-*END .+? LICENSE-*(\r?\n|\Z)")
_LEFT_BOUNDARY_RE = re.compile(r"-*(BEGIN|END) [^\n]{0,80}? LICENSE")  # a boundary line the gem's patterns missed


class LicenseError(BotError):
    """A key that cannot be decoded, or a license GitLab would refuse."""


@dataclass(frozen=True)
class License:
    """Every attribute GitLab EE reads from a license, in the order the gem writes them."""

    licensee: dict[str, str]
    issued_at: date
    expires_at: date | None
    restrictions: dict[str, Any]
    version: int = 1
    notify_admins_at: date | None = None
    notify_users_at: date | None = None
    block_changes_at: date | None = None
    next_sync_at: str | None = None  # cloud licensing only: ISO datetimes kept as text
    last_synced_at: str | None = None
    activated_at: str | None = None
    cloud_licensing_enabled: bool = False
    offline_cloud_licensing_enabled: bool = False
    auto_renew_enabled: bool = False
    seat_reconciliation_enabled: bool = False
    operational_metrics_enabled: bool = False
    contract_overages_allowed: bool = True
    generated_from_customers_dot: bool = False
    generated_from_cancellation: bool = False
    temporary_extension: bool = False

    @property
    def email(self) -> str | None:
        return self.licensee.get("Email")

    @property
    def plan(self) -> str | None:
        return self.restrictions.get("plan")

    @property
    def user_count(self) -> int | None:
        return self.restrictions.get("active_user_count")

    @property
    def trial(self) -> bool:
        return bool(self.restrictions.get("trial"))

    def to_payload(self) -> dict[str, Any]:
        """The JSON object, keys in the gem's order, unset optional keys left out."""
        payload: dict[str, Any] = {}
        for f in _PAYLOAD_ORDER:
            value = getattr(self, f)
            if value is None:
                continue
            payload[f] = value.isoformat() if isinstance(value, date) else value
        return payload

    def to_json(self) -> str:
        # Matches Ruby's JSON.dump byte for byte.
        return json.dumps(self.to_payload(), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_payload(cls, payload: Any) -> License:
        """Validate a decoded payload the way the gem's `valid?` does."""
        if not isinstance(payload, dict):
            raise LicenseError("the key decrypted, but its payload is not a license (not a JSON object)")
        version = payload.get("version")
        if version != 1:
            raise LicenseError(f"unsupported license version {version!r}: only version 1 exists")
        licensee = payload.get("licensee")
        if not isinstance(licensee, dict) or not licensee:
            raise LicenseError("the payload is not a valid license: 'licensee' must be a non-empty object")
        restrictions = payload.get("restrictions", {})
        if not isinstance(restrictions, dict):
            raise LicenseError("the payload is not a valid license: 'restrictions' must be an object")
        values: dict[str, Any] = {"licensee": licensee, "restrictions": restrictions, "version": 1}
        for name in _DATE_FIELDS:
            values[name] = _payload_date(payload, name, required=name in ("issued_at", "expires_at"))
        for name in _TEXT_FIELDS + _BOOL_FIELDS:
            if name in payload:
                values[name] = payload[name]
        lic = cls(**values)
        if lic.offline_cloud_licensing_enabled and not lic.cloud_licensing_enabled:
            raise LicenseError("the payload is not a valid license: offline cloud licensing needs cloud licensing")
        return lic


_PAYLOAD_ORDER = (
    "version", "licensee", "issued_at", "expires_at", "notify_admins_at", "notify_users_at",
    "block_changes_at", "next_sync_at", "last_synced_at", "activated_at", "cloud_licensing_enabled",
    "offline_cloud_licensing_enabled", "auto_renew_enabled", "seat_reconciliation_enabled",
    "operational_metrics_enabled", "contract_overages_allowed", "generated_from_customers_dot",
    "generated_from_cancellation", "temporary_extension", "restrictions",
)
_DATE_FIELDS = ("issued_at", "expires_at", "notify_admins_at", "notify_users_at", "block_changes_at")
_TEXT_FIELDS = ("next_sync_at", "last_synced_at", "activated_at")
_BOOL_FIELDS = tuple(
    f.name for f in dataclasses.fields(License) if f.type in ("bool", bool)
)


def _payload_date(payload: dict, name: str, *, required: bool) -> date | None:
    raw = payload.get(name)
    if raw is None:
        if required:
            raise LicenseError(f"the payload is not a valid license: '{name}' is missing")
        return None
    try:
        return date.fromisoformat(str(raw)[:10])
    except ValueError:
        raise LicenseError(f"the payload is not a valid license: '{name}' is not a date: {raw!r}") from None


# --- encoding ------------------------------------------------------------------------------------

def _encode64(data: bytes) -> str:
    """Ruby's Base64.encode64: 60 characters a line, each line ending in a newline."""
    text = base64.b64encode(data).decode("ascii")
    return "".join(text[i:i + 60] + "\n" for i in range(0, len(text), 60))


def _decode64(text: str | bytes) -> bytes:
    """Ruby's Base64.decode64 is lenient: it skips anything outside the alphabet."""
    raw = text.encode("ascii", "ignore") if isinstance(text, str) else text
    cleaned = re.sub(rb"[^A-Za-z0-9+/=]", b"", raw)
    cleaned = cleaned.split(b"=")[0]  # data ends at the first pad, as in Ruby
    cleaned += b"=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned)
    except (binascii.Error, ValueError):
        raise LicenseError("the key is not valid base64 text") from None


def _boundary_line(kind: str, boundary: str) -> str:
    text = f"{kind} {boundary.upper()}"
    if not text.endswith("LICENSE"):
        text += " LICENSE"
    pad = 60 - len(text)
    left = (pad + 1) // 2
    return "-" * left + text + "-" * (pad - left)


def encode(
    lic: License,
    private_key: rsa.RSAPrivateKey | Signer,
    *,
    boundary: str | None = None,
    aes_key: bytes | None = None,
    iv: bytes | None = None,
) -> str:
    """Encrypt and sign a license as the gem's `export` does.

    `aes_key` and `iv` are random unless pinned (only tests pin them).
    """
    aes_key = os.urandom(16) if aes_key is None else aes_key
    iv = os.urandom(16) if iv is None else iv
    padder = sym_padding.PKCS7(128).padder()
    plain = padder.update(lic.to_json().encode("utf-8")) + padder.finalize()
    encryptor = Cipher(algorithms.AES(aes_key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(plain) + encryptor.finalize()
    # Ruby's private_encrypt: PKCS#1 v1.5 type 1 padding with no DigestInfo.
    key_block = as_signer(private_key).sign_raw(aes_key)
    envelope = json.dumps(
        {"data": _encode64(ciphertext), "key": _encode64(key_block), "iv": _encode64(iv)},
        separators=(",", ":"),
    )
    text = _encode64(envelope.encode("ascii"))
    if boundary:
        return f"{_boundary_line('BEGIN', boundary)}\n{text}{_boundary_line('END', boundary)}"
    return text


def decode(text: str | bytes, public_key: rsa.RSAPublicKey) -> License:
    """Decrypt and validate a key; every failure is one clear LicenseError."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = _BEGIN_RE.sub("", text, count=1)
    text = _END_RE.sub("", text, count=1)
    if _LEFT_BOUNDARY_RE.search(text):
        raise LicenseError("its BEGIN or END line is damaged (a stray character after it, such as a lone carriage "
                           "return): the gitlab-license gem does not strip such a line and refuses the key; save "
                           "the file with plain line endings")
    try:
        envelope = json.loads(_decode64(text))
        data, key_block, iv = (_decode64(envelope[k]) for k in ("data", "key", "iv"))
    except (ValueError, UnicodeDecodeError, TypeError, KeyError):
        raise LicenseError("not a GitLab license key: the text is not base64 of a license envelope") from None
    try:
        aes_key = public_key.recover_data_from_signature(key_block, padding.PKCS1v15(), None)
    except (InvalidSignature, ValueError):
        raise LicenseError(
            "the key was not signed by the private key that matches this public key "
            "(wrong public key, or the key block is damaged)"
        ) from None
    if len(aes_key) != 16 or len(iv) != 16:
        raise LicenseError("the key is damaged: its encryption key or IV has the wrong length")
    try:
        decryptor = Cipher(algorithms.AES(aes_key), modes.CBC(iv)).decryptor()
        padded = decryptor.update(data) + decryptor.finalize()
        unpadder = sym_padding.PKCS7(128).unpadder()
        payload = json.loads((unpadder.update(padded) + unpadder.finalize()).decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise LicenseError("the key is damaged: its license data does not decrypt to JSON") from None
    return License.from_payload(payload)


def derive_key_material(signer: rsa.RSAPrivateKey | Signer, context: str, lic: License) -> tuple[bytes, bytes]:
    """The AES key and IV for one request's license, derived instead of drawn at random.

    The same request (context) and payload always give byte-identical keys, so a crash-rerun or two
    overlapping runs cannot make two different licenses for one request. The HMAC is keyed by a secret only
    the signing key's holder can make (see bot/signer.py), the same from a file or a PKCS#11 token, so both
    backends make the same key. Safe: the AES key only obfuscates (anyone with the public key recovers it).
    """
    secret = as_signer(signer).key_material_secret()
    out = hmac.new(secret, f"{context}\0{lic.to_json()}".encode(), hashlib.sha256).digest()
    return out[:16], out[16:]


def fingerprint(key_text: str) -> str:
    """SHA-256 of the key text: how a license is identified in notes and logs."""
    return hashlib.sha256(key_text.encode("ascii")).hexdigest()


def license_id(key_text: str) -> str:
    """A short id for a key, stable across reruns (the key itself is persisted before sending)."""
    return fingerprint(key_text)[:16]


def file_name(lic: License) -> str:
    """GitLab names downloads `<Company letters and digits>.gitlab-license`."""
    company = re.sub(r"[^A-Za-z0-9]", "", lic.licensee.get("Company", "")) or "GitLab"
    return company + FILE_EXTENSION


# --- the emergency trial -----------------------------------------------------------------------

@dataclass(frozen=True)
class TrialTerms:
    """The fixed shape of an emergency license: set by configuration, never by a request."""

    plan: str = "ultimate"
    trial: bool = True
    duration_days: int = 10
    backdate_days: int = 1
    grace_days: int = 0
    licensee_name: str = "Emergency License"
    licensee_company: str = "GitLab Support Emergency Trial"


def build_trial(email: str, user_count: int, today: date, terms: TrialTerms) -> License:
    expires = today + timedelta(days=terms.duration_days)
    return License(
        licensee={"Name": terms.licensee_name, "Company": terms.licensee_company, "Email": email},
        # Backdated so a server behind UTC already sees it active.
        issued_at=today - timedelta(days=terms.backdate_days),
        expires_at=expires,
        block_changes_at=expires + timedelta(days=terms.grace_days),
        restrictions={"plan": terms.plan, "active_user_count": user_count, "trial": terms.trial},
    )


def preflight(lic: License, today: date) -> list[str]:
    """What GitLab would refuse on upload today; an empty list means it would accept the key."""
    problems = []
    if not lic.licensee:
        problems.append("the licensee is empty")
    if lic.expires_at is not None and today >= lic.expires_at:
        problems.append(f"it has already expired (expires_at {lic.expires_at}, today {today})")
    if lic.expires_at is not None and lic.issued_at > lic.expires_at:
        problems.append(f"it starts after it expires ({lic.issued_at} > {lic.expires_at})")
    count = lic.user_count
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
        problems.append(f"its user count must be at least 1, got {count!r}")
    return problems


def check_acceptable(lic: License, today: date) -> None:
    problems = preflight(lic, today)
    if problems:
        raise LicenseError("GitLab would refuse this license: " + "; ".join(problems))


def sign(lic: License, private_key: rsa.RSAPrivateKey | Signer, today: date, **kwargs: Any) -> str:
    """Encode a license only if GitLab would accept it."""
    check_acceptable(lic, today)
    return encode(lic, private_key, **kwargs)


__all__ = [
    "DEFAULT_BOUNDARY", "License", "LicenseError", "TrialTerms", "build_trial", "check_acceptable",
    "decode", "derive_key_material", "encode", "file_name", "fingerprint", "license_id", "preflight", "sign",
]
