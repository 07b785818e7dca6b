from __future__ import annotations

import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bot import keys
from bot.keys import SigningKeyError


def _pem(key, password: bytes | None = None) -> bytes:
    enc = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def _secret_body(pem: bytes) -> str:
    return pem.decode().splitlines()[1]  # a line of key material


def test_loads_an_rsa_private_key(private_key):
    loaded = keys.load_private_key(_pem(private_key))
    assert keys.same_pair(loaded, private_key.public_key())


def test_refuses_nothing_with_how_to_supply_one():
    with pytest.raises(SigningKeyError, match="LICENSE_PRIVATE_KEY_FILE"):
        keys.load_private_key(None)


def test_refuses_a_public_key(private_key):
    with pytest.raises(SigningKeyError, match="holds a public key"):
        keys.load_private_key(keys.public_pem(private_key))


def test_encrypted_key_needs_the_passphrase(private_key):
    pem = _pem(private_key, b"s3cret-pass")
    with pytest.raises(SigningKeyError, match="encrypted: set LICENSE_PRIVATE_KEY_PASSPHRASE") as info:
        keys.load_private_key(pem)
    assert _secret_body(pem) not in str(info.value)
    with pytest.raises(SigningKeyError, match="passphrase is wrong") as info:
        keys.load_private_key(pem, b"wrong")
    assert "wrong" not in str(info.value).replace("passphrase is wrong", "")
    assert keys.same_pair(keys.load_private_key(pem, b"s3cret-pass"), private_key.public_key())


def test_refuses_short_and_non_rsa_keys():
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(SigningKeyError, match="1024-bit RSA key; use at least 2048 bits"):
        keys.load_private_key(_pem(small))
    with pytest.raises(SigningKeyError, match="not an RSA key"):
        keys.load_private_key(_pem(ec.generate_private_key(ec.SECP256R1())))


def test_garbage_is_refused_without_echoing_it():
    junk = b"-----BEGIN RSA PRIVATE KEY-----\nTOPSECRETMATERIAL\n-----END RSA PRIVATE KEY-----\n"
    with pytest.raises(SigningKeyError) as info:
        keys.load_private_key(junk)
    assert "TOPSECRETMATERIAL" not in str(info.value)
    assert info.value.__cause__ is None


def test_write_pair_makes_a_private_file_only_the_owner_reads(tmp_path, private_key):
    private_path, public_path = keys.write_pair(private_key, tmp_path / "k")
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    assert keys.same_pair(keys.load_private_key(private_path.read_bytes()), keys.load_public_key(public_path))
    with pytest.raises(SigningKeyError, match="already exists"):
        keys.write_pair(private_key, tmp_path / "k")


def test_public_key_loading_names_the_mistake(tmp_path, key_files):
    with pytest.raises(SigningKeyError, match="it is a private key: pass the .pub file"):
        keys.load_public_key(key_files[0])
    with pytest.raises(SigningKeyError, match="cannot read"):
        keys.load_public_key(tmp_path / "missing.pub")


def test_a_damaged_key_is_refused(private_key):
    numbers = private_key.private_numbers()
    broken = rsa.RSAPrivateNumbers(p=numbers.p, q=numbers.q, d=numbers.d + 2, dmp1=numbers.dmp1 ^ 2,
                                   dmq1=numbers.dmq1, iqmp=numbers.iqmp, public_numbers=numbers.public_numbers)
    pem = _pem(broken.private_key(unsafe_skip_rsa_key_validation=True))
    with pytest.raises(SigningKeyError, match="damaged: its signatures do not verify"):
        keys.load_private_key(pem)
