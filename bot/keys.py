"""Loading the signing key pair. Messages name the problem, never the key material."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import NoDigestInfo

from . import files
from .config import Secrets
from .errors import BotError

MIN_BITS = 2048


class SigningKeyError(BotError):
    """A signing or verifying key that cannot be used."""


def load_private_key(pem: bytes | None, passphrase: bytes | None = None,
                     source: str = "LICENSE_PRIVATE_KEY") -> rsa.RSAPrivateKey:
    if not pem:
        raise SigningKeyError("no signing key: set LICENSE_PRIVATE_KEY (the PEM text) or LICENSE_PRIVATE_KEY_FILE "
                              "(a path to it)")
    if b"PUBLIC KEY" in pem and b"PRIVATE KEY" not in pem:
        raise SigningKeyError(f"{source} holds a public key; the bot signs with the private key of the pair")
    if b"ENCRYPTED" in pem and not passphrase:
        raise SigningKeyError(f"{source} is encrypted: set LICENSE_PRIVATE_KEY_PASSPHRASE")
    try:
        # OpenSSL's full RSA validation (primality tests, ~35 ms) guards against hostile keys; this is the
        # operator's own, so the self-test below checks what matters: its signatures verify.
        key = serialization.load_pem_private_key(pem, password=passphrase, unsafe_skip_rsa_key_validation=True)
    except TypeError:
        # cryptography says a passphrase was given for an unencrypted key, or none for an encrypted one.
        raise SigningKeyError(
            f"{source} is encrypted: set LICENSE_PRIVATE_KEY_PASSPHRASE" if not passphrase
            else f"{source} is not encrypted: unset LICENSE_PRIVATE_KEY_PASSPHRASE"
        ) from None
    except ValueError:
        hint = " (or the passphrase is wrong)" if passphrase else ""
        raise SigningKeyError(f"{source} is not a readable PEM private key{hint}") from None
    except Exception:  # noqa: BLE001 - the backend's message may quote the input
        raise SigningKeyError(f"{source} is not a readable PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SigningKeyError(f"{source} is not an RSA key; GitLab licenses are signed with RSA")
    if key.key_size < MIN_BITS:
        raise SigningKeyError(f"{source} is a {key.key_size}-bit RSA key; use at least {MIN_BITS} bits")
    _self_test(key, source)
    return key


def _self_test(key: rsa.RSAPrivateKey, source: str) -> None:
    """Sign as licenses are signed and recover with the public key: a damaged key fails here, not in GitLab."""
    probe = b"license-bot key self-test"
    try:
        signature = key.sign(probe, padding.PKCS1v15(), NoDigestInfo())
        ok = key.public_key().recover_data_from_signature(signature, padding.PKCS1v15(), None) == probe
    except Exception:  # noqa: BLE001 - any failure here means the key cannot sign
        ok = False
    if not ok:
        raise SigningKeyError(f"{source} is damaged: its signatures do not verify with its own public key")


def private_key_from(secrets: Secrets, path: str | None = None, flag: str | None = None) -> rsa.RSAPrivateKey:
    """The signing key from --private-key PATH, else from the environment. `flag`: the command's option
    for a key file, named in the error only where the command has it."""
    if path:
        try:
            pem = files.read_bytes(path, files.KEY_BYTES, "--private-key")
        except files.FileError as exc:
            raise SigningKeyError(str(exc)) from None
        return load_private_key(pem, secrets.private_key_passphrase, source=f"--private-key {path}")
    if secrets.private_key_problem:
        raise SigningKeyError(secrets.private_key_problem)
    if not secrets.private_key_pem and flag:
        raise SigningKeyError(f"no signing key: set LICENSE_PRIVATE_KEY (the PEM text) or LICENSE_PRIVATE_KEY_FILE "
                              f"(a path to it), or pass {flag} PATH")
    return load_private_key(secrets.private_key_pem, secrets.private_key_passphrase, secrets.private_key_source)


def signer_from(config, secrets: Secrets, path: str | None = None, flag: str | None = None):
    """The configured signer: the PEM key (file), or the key in a PKCS#11 token (pkcs11)."""
    from .signer import FileSigner, Pkcs11Signer

    if config.license.signer == "pkcs11" and not path:
        p = config.license.pkcs11
        return Pkcs11Signer(p.module, p.token_label, p.key_label, secrets.signer_pin, refused_pins_file(config))
    return FileSigner(private_key_from(secrets, path, flag))


def refused_pins_file(config) -> Path:
    """Where PINs the token refused are remembered: license.pkcs11.refused_pins_file, else the user's state dir."""
    if config.license.pkcs11.refused_pins_file:
        return Path(config.license.pkcs11.refused_pins_file)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "license-bot" / "refused-pins"


def load_public_key(path: str | Path) -> rsa.RSAPublicKey:
    try:
        data = files.read_bytes(path, files.KEY_BYTES, "the public key")
    except files.FileError as exc:
        raise SigningKeyError(str(exc)) from None
    try:
        key = serialization.load_pem_public_key(data)
    except Exception:  # noqa: BLE001
        hint = " (it is a private key: pass the .pub file)" if b"PRIVATE KEY" in data else ""
        raise SigningKeyError(f"{path} is not a PEM public key{hint}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise SigningKeyError(f"{path} is not an RSA public key")
    return key


def public_pem(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> bytes:
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def same_pair(private: rsa.RSAPrivateKey, public: rsa.RSAPublicKey) -> bool:
    return private.public_key().public_numbers() == public.public_numbers()


def generate(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def write_pair(key: rsa.RSAPrivateKey, out_dir: str | Path, *, force: bool = False) -> tuple[Path, Path]:
    """Write `license_key` (mode 0600 from the start: never readable by others) and `license_key.pub`.
    Neither is written if either exists, unless `force`; a symlink at either name is never followed."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    private_path, public_path = out / "license_key", out / "license_key.pub"
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    for path in (private_path, public_path):
        if (path.exists() or path.is_symlink()) and not force:
            raise SigningKeyError(f"{path} already exists; move it away, choose another --out, or add --force to "
                                  "replace the pair")
    files.write(private_path, pem, "--out", force=force, mode=0o600)
    files.write(public_path, public_pem(key), "--out", force=force)
    return private_path, public_path


def key_id(key: rsa.RSAPublicKey) -> str:
    """A short name for a public key that people can compare: SHA-256 of its DER form, first 16 hex digits."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "SHA256:" + hashlib.sha256(der).hexdigest()[:16]


def trusted_keys(config, current: rsa.RSAPublicKey | None) -> list[tuple[str, rsa.RSAPublicKey]]:
    """Every key whose licenses and record entries count, each with where it comes from: the current one (the
    signing key's public half, or the configured public key file) first, then license.trusted_public_keys.
    A key listed twice counts once."""
    found: list[tuple[str, rsa.RSAPublicKey]] = [("the current signing key", current)] if current else []
    for n, path in enumerate(config.license.trusted_public_keys):
        try:
            key = load_public_key(path)
        except SigningKeyError as exc:
            raise SigningKeyError(f"license.trusted_public_keys[{n}]: {exc}; list the public key file (.pub) of "
                                  "each earlier signing key") from None
        found.append((f"license.trusted_public_keys[{n}] ({path})", key))
    seen: set[str] = set()
    return [(name, key) for name, key in found if not (key_id(key) in seen or seen.add(key_id(key)))]
