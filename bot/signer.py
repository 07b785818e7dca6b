"""The signer: the one interface the license engine signs through.

Whoever holds the signing key can mint Ultimate licenses for any instance, so in production the key should
live in a hardware security module or a key service and be used, never read. Two backends:
- `FileSigner`: a PEM private key (tests, throwaway keys, `generate` on a laptop);
- `Pkcs11Signer`: a key in a PKCS#11 token (an HSM, a cloud KMS's PKCS#11 library, SoftHSM in tests); the
  private key never leaves the token, the bot reads only its public half.

Both sign with PKCS#1 v1.5 type-1 padding and no DigestInfo (Ruby's private_encrypt; PKCS#11's CKM_RSA_PKCS),
which is deterministic, so the AES key and IV are derived from a signature only the key's holder can
make: the same request makes the identical key on every run and with either backend, and the token holds
the only secret.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import NoDigestInfo

from .errors import BotError


class SignerError(BotError):
    """The signer cannot be used: a module, token, key or PIN problem. Never carries the PIN. `lost`: the token or
    its session went away after it worked (removed, reset): a configuration problem, never a request's."""

    def __init__(self, message: str, *, lost: bool = False):
        super().__init__(message)
        self.lost = lost


class Signer(Protocol):
    def public_key(self) -> rsa.RSAPublicKey: ...
    def sign_raw(self, data: bytes) -> bytes: ...
    def key_material_secret(self) -> bytes: ...


def _secret(signer: Signer) -> bytes:
    """A secret only the key's holder can make, the same every time: a PKCS#1 v1.5 signature of a fixed
    message naming the public key (deterministic, unlike PSS)."""
    der = signer.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    probe = hashlib.sha256(b"license-bot key material v2\0" + der).digest()
    return hashlib.sha256(signer.sign_raw(probe)).digest()


class FileSigner:
    def __init__(self, private_key: rsa.RSAPrivateKey):
        self._key = private_key
        self._secret: bytes | None = None

    def public_key(self) -> rsa.RSAPublicKey:
        return self._key.public_key()

    def sign_raw(self, data: bytes) -> bytes:
        return self._key.sign(data, padding.PKCS1v15(), NoDigestInfo())

    def key_material_secret(self) -> bytes:
        if self._secret is None:
            self._secret = _secret(self)
        return self._secret


def as_signer(key: Signer | rsa.RSAPrivateKey) -> Signer:
    return FileSigner(key) if isinstance(key, rsa.RSAPrivateKey) else key


_LOGINS: dict[tuple[str, str], bytes] = {}  # (module, token) -> digest of the PIN this process logged in with


def _digest(pin: str) -> bytes:
    return hashlib.sha256(pin.encode()).digest()


class RefusedPins:
    """PINs a token refused, remembered where the next run sees them, so that no process of the bot tries one
    again until the configuration (module, token or PIN) changes: each wrong try counts towards locking the
    token. Kept as a slow salted hash of module, token and PIN, never the PIN."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None

    @staticmethod
    def key(module: str, token_label: str, serial: bytes, pin: str) -> str:
        salt = b"license-bot refused pin\0" + module.encode() + b"\0" + token_label.encode() + b"\0" + serial
        return hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, 100_000).hex()

    def has(self, key: str) -> bool:
        try:
            return self.path is not None and key in self.path.read_text().split()
        except OSError:
            return False

    def add(self, key: str) -> None:
        if self.path is None:
            return
        with contextlib.suppress(OSError):  # best effort: the token's own flags are the second guard
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a") as out:
                out.write(key + "\n")


def _login(lib, module: str, token_label: str, pin: str, refused: RefusedPins, *, rw: bool = False):
    """A logged-in session, trying the PIN only when that cannot lock the token: never a PIN refused before, and
    never when the token says a wrong PIN was given since its last login (PKCS#11 CK_TOKEN_INFO flags
    CKF_USER_PIN_COUNT_LOW, CKF_USER_PIN_FINAL_TRY, CKF_USER_PIN_LOCKED), read just before the login."""
    from pkcs11 import TokenFlag
    from pkcs11 import exceptions as errors

    try:
        token = lib.get_token(token_label=token_label)
    except errors.NoSuchToken:
        raise SignerError(f"license.pkcs11.token_label: no token labelled {token_label!r} in {module}") from None
    except errors.MultipleTokensReturned:
        raise SignerError(f"license.pkcs11.token_label: several tokens are labelled {token_label!r}") from None
    except errors.PKCS11Error as exc:
        raise SignerError(f"cannot read the token {token_label!r} ({type(exc).__name__})") from None
    key = RefusedPins.key(module, token_label, bytes(token.serial or b""), pin)
    if refused.has(key):
        raise SignerError(f"the token {token_label!r} refused this LICENSE_SIGNER_PIN before, and the bot never tries "
                          "a refused PIN again (each wrong try brings the token closer to locking). A person must "
                          f"check the PIN and set the right one; the record of refused PINs is {refused.path}")
    flags = token.flags
    if flags & TokenFlag.USER_PIN_LOCKED:
        raise SignerError(f"the token {token_label!r} is locked after wrong PINs; its security officer must unlock "
                          "it")
    if flags & (TokenFlag.USER_PIN_FINAL_TRY | TokenFlag.USER_PIN_COUNT_LOW):
        state = ("one more wrong PIN locks it" if flags & TokenFlag.USER_PIN_FINAL_TRY
                 else "a wrong PIN was given since its last login")
        raise SignerError(f"the token {token_label!r} says {state}, so the bot does not try LICENSE_SIGNER_PIN: a "
                          "person must check the PIN and log in once with the right one by hand (e.g. pkcs11-tool "
                          "--login --test), which clears the warning")
    login = (module, token_label)
    try:
        session = token.open(user_pin=pin, rw=rw)
        _LOGINS[login] = _digest(pin)
        return session
    except errors.UserAlreadyLoggedIn:
        # PKCS#11 logins are per process: a session of ours is logged in, and the token does not check this
        # PIN again. Hold it to the PIN that logged in, so a wrong one is refused here too.
        if _LOGINS.get(login) != _digest(pin):
            raise SignerError(f"the token {token_label!r} refused LICENSE_SIGNER_PIN (wrong PIN)") from None
        return token.open(rw=rw)
    except (errors.PinIncorrect, errors.PinInvalid, errors.PinLenRange):
        refused.add(key)
        raise SignerError(f"the token {token_label!r} refused LICENSE_SIGNER_PIN (wrong PIN); the bot will not try "
                          "this PIN again: a person must check it and set the right one") from None
    except errors.PinLocked:
        raise SignerError(f"the token {token_label!r} is locked after wrong PINs; its security officer must "
                          "unlock it") from None
    except errors.PKCS11Error as exc:
        raise SignerError(f"cannot open the token {token_label!r} ({type(exc).__name__})") from None


def _library(module: str):
    import pkcs11
    from pkcs11 import exceptions as errors

    try:
        return pkcs11.lib(module)
    except (RuntimeError, OSError, errors.PKCS11Error) as exc:
        raise SignerError(f"license.pkcs11.module: cannot load {module} ({type(exc).__name__}); give the path "
                          "of the vendor's PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so") from None


class Pkcs11Signer:
    """A key in a PKCS#11 token, used through one session for the life of the process."""

    def __init__(self, module: str, token_label: str, key_label: str, pin: str | None,
                 refused_pins: str | Path | None = None):
        import pkcs11
        from pkcs11 import Attribute, KeyType, ObjectClass
        from pkcs11 import exceptions as errors

        if not pin:
            raise SignerError("license.signer is pkcs11 but LICENSE_SIGNER_PIN is not set: store the token's user "
                              "PIN as a masked, protected CI variable")
        self._token_label = token_label
        self._session = _login(_library(module), module, token_label, pin, RefusedPins(refused_pins))
        try:
            self._private = self._session.get_key(key_type=KeyType.RSA, object_class=ObjectClass.PRIVATE_KEY,
                                                  label=key_label)
            public = self._session.get_key(key_type=KeyType.RSA, object_class=ObjectClass.PUBLIC_KEY, label=key_label)
        except errors.NoSuchKey:
            self.close()
            raise SignerError(f"license.pkcs11.key_label: the token {token_label!r} holds no RSA key pair labelled "
                              f"{key_label!r}; make one with license-bot keygen --pkcs11") from None
        except errors.MultipleObjectsReturned:
            self.close()
            raise SignerError(f"license.pkcs11.key_label: the token {token_label!r} holds several keys labelled "
                              f"{key_label!r}; delete the extra ones with the token's own tools") from None
        numbers = rsa.RSAPublicNumbers(int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big"),
                                       int.from_bytes(public[Attribute.MODULUS], "big"))
        self._public = numbers.public_key()
        self._mechanism = pkcs11.Mechanism.RSA_PKCS
        self._secret: bytes | None = None

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    def sign_raw(self, data: bytes) -> bytes:
        from pkcs11 import exceptions as errors

        try:
            return self._private.sign(data, mechanism=self._mechanism)
        except errors.PKCS11Error as exc:  # it signed before: the token or its session is gone, not the request
            raise SignerError(f"the token {self._token_label!r} could not sign ({type(exc).__name__}): it was "
                              "removed or reset, or its session ended. The run stops and no request is counted; "
                              "check the token — the next run opens a new session", lost=True) from None

    def key_material_secret(self) -> bytes:
        if self._secret is None:
            self._secret = _secret(self)
        return self._secret

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing is best effort at exit
            self._session.close()


def generate_in_token(module: str, token_label: str, key_label: str, pin: str | None, bits: int = 2048,
                      refused_pins: str | Path | None = None) -> rsa.RSAPublicKey:
    """A new key pair inside the token: its private half sign-only (no decrypt, unwrap or derive), non-extractable
    and sensitive, both halves with one CKA_ID. Refused when any object of the token has the label."""
    from pkcs11 import Attribute, KeyType
    from pkcs11 import exceptions as errors

    if not pin:
        raise SignerError("keygen --pkcs11: LICENSE_SIGNER_PIN is not set: give the token's user PIN")
    with _login(_library(module), module, token_label, pin, RefusedPins(refused_pins), rw=True) as session:
        def holders() -> list:
            return list(session.get_objects({Attribute.LABEL: key_label}))

        if holders():
            raise SignerError(f"the token {token_label!r} already holds an object labelled {key_label!r}; choose "
                              "another license.pkcs11.key_label, or delete the old objects with the token's own tools")
        key_id = os.urandom(16)
        try:
            public, private = session.generate_keypair(
                KeyType.RSA, bits, id=key_id, label=key_label, store=True,
                public_template={Attribute.VERIFY: True, Attribute.ENCRYPT: False, Attribute.WRAP: False},
                private_template={Attribute.EXTRACTABLE: False, Attribute.SENSITIVE: True, Attribute.SIGN: True,
                                  Attribute.DECRYPT: False, Attribute.UNWRAP: False, Attribute.DERIVE: False})
        except errors.PKCS11Error as exc:
            raise SignerError(f"the token could not make a key pair ({type(exc).__name__})") from None
        if len(holders()) != 2:  # another keygen made one with this label meanwhile: keep neither of ours
            for obj in (public, private):
                with contextlib.suppress(errors.PKCS11Error):
                    obj.destroy()
            raise SignerError(f"another key labelled {key_label!r} appeared in the token {token_label!r} while this "
                              "one was made (two keygens at once?); this one was deleted: check the token, try again")
        numbers = rsa.RSAPublicNumbers(int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big"),
                                       int.from_bytes(public[Attribute.MODULUS], "big"))
    return numbers.public_key()
