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
from typing import Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import NoDigestInfo

from .errors import BotError


class SignerError(BotError):
    """The signer cannot be used: a module, token, key or PIN problem. Never carries the PIN."""


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


class Pkcs11Signer:
    """A key in a PKCS#11 token, used through one session for the life of the process."""

    def __init__(self, module: str, token_label: str, key_label: str, pin: str | None):
        import pkcs11
        from pkcs11 import Attribute, KeyType, ObjectClass
        from pkcs11 import exceptions as errors

        if not pin:
            raise SignerError("license.signer is pkcs11 but LICENSE_SIGNER_PIN is not set: store the token's user "
                              "PIN as a masked, protected CI variable")
        try:
            lib = pkcs11.lib(module)
        except (RuntimeError, OSError, errors.PKCS11Error) as exc:
            raise SignerError(f"license.pkcs11.module: cannot load {module} ({type(exc).__name__}); give the path "
                              "of the vendor's PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so") from None
        try:
            token = lib.get_token(token_label=token_label)
        except errors.NoSuchToken:
            raise SignerError(f"license.pkcs11.token_label: no token labelled {token_label!r} in {module}") from None
        except errors.MultipleTokensReturned:
            raise SignerError(f"license.pkcs11.token_label: several tokens are labelled {token_label!r}") from None
        login = (module, token_label)
        try:
            self._session = token.open(user_pin=pin)
            _LOGINS[login] = _digest(pin)
        except errors.UserAlreadyLoggedIn:
            # PKCS#11 logins are per process: a session of ours is logged in, and the token does not check this
            # PIN again. Hold it to the PIN that logged in, so a wrong one is refused here too.
            if _LOGINS.get(login) != _digest(pin):
                raise SignerError(f"the token {token_label!r} refused LICENSE_SIGNER_PIN (wrong PIN)") from None
            self._session = token.open()
        except (errors.PinIncorrect, errors.PinInvalid, errors.PinLenRange):
            raise SignerError(f"the token {token_label!r} refused LICENSE_SIGNER_PIN (wrong PIN)") from None
        except errors.PinLocked:
            raise SignerError(f"the token {token_label!r} is locked after wrong PINs; its security officer must "
                              "unlock it") from None
        except errors.PKCS11Error as exc:
            raise SignerError(f"cannot open the token {token_label!r} ({type(exc).__name__})") from None
        try:
            self._private = self._session.get_key(key_type=KeyType.RSA, object_class=ObjectClass.PRIVATE_KEY,
                                                  label=key_label)
            public = self._session.get_key(key_type=KeyType.RSA, object_class=ObjectClass.PUBLIC_KEY, label=key_label)
        except errors.NoSuchKey:
            self.close()
            raise SignerError(f"license.pkcs11.key_label: the token {token_label!r} holds no RSA key pair labelled "
                              f"{key_label!r}; make one with license-bot keygen --pkcs11") from None
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
        except errors.PKCS11Error as exc:
            raise SignerError(f"the token could not sign ({type(exc).__name__})") from None

    def key_material_secret(self) -> bytes:
        if self._secret is None:
            self._secret = _secret(self)
        return self._secret

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing is best effort at exit
            self._session.close()


def generate_in_token(module: str, token_label: str, key_label: str, pin: str | None,
                      bits: int = 2048) -> rsa.RSAPublicKey:
    """A new key pair inside the token, its private half non-extractable and sensitive."""
    import pkcs11
    from pkcs11 import Attribute, KeyType
    from pkcs11 import exceptions as errors

    signer_probe = None
    try:
        signer_probe = Pkcs11Signer(module, token_label, key_label, pin)
    except SignerError as exc:
        if "holds no RSA key pair" not in str(exc):
            raise
    else:
        signer_probe.close()
        raise SignerError(f"the token {token_label!r} already holds a key labelled {key_label!r}; choose another "
                          "license.pkcs11.key_label, or delete the old pair with the token's own tools")
    token = pkcs11.lib(module).get_token(token_label=token_label)
    with token.open(user_pin=pin, rw=True) as session:
        try:
            public, _ = session.generate_keypair(KeyType.RSA, bits, label=key_label, store=True, private_template={
                Attribute.EXTRACTABLE: False, Attribute.SENSITIVE: True, Attribute.SIGN: True})
        except errors.PKCS11Error as exc:
            raise SignerError(f"the token could not make a key pair ({type(exc).__name__})") from None
        numbers = rsa.RSAPublicNumbers(int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big"),
                                       int.from_bytes(public[Attribute.MODULUS], "big"))
    return numbers.public_key()
