"""The license engine against the real gem's output, openssl, and GitLab's upload checks."""

from __future__ import annotations

import base64
import json
import subprocess
from dataclasses import replace
from datetime import date, timedelta

import pytest

from bot import keys
from bot.license import (
    DEFAULT_BOUNDARY,
    License,
    LicenseError,
    TrialTerms,
    build_trial,
    check_acceptable,
    decode,
    encode,
    file_name,
    preflight,
    sign,
)

from .conftest import TODAY

# --- byte compatibility with the gem -----------------------------------------------------------------

def test_payload_serialises_exactly_as_the_gem(vector):
    assert License.from_payload(vector["payload"]).to_json() == vector["payload_json"]


def test_encode_reproduces_the_gem_vector_byte_for_byte(vector):
    lic = License.from_payload(vector["payload"])
    out = encode(lic, vector["private"], aes_key=vector["aes_key"], iv=vector["iv"])
    assert out == vector["plain"]


def test_encode_with_boundary_reproduces_the_gem_vector_byte_for_byte(vector):
    lic = License.from_payload(vector["payload"])
    out = encode(lic, vector["private"], aes_key=vector["aes_key"], iv=vector["iv"], boundary=DEFAULT_BOUNDARY)
    assert out == vector["boundary"]


@pytest.mark.parametrize("which", ["plain", "boundary"])
def test_decode_reads_the_gem_vector(vector, which):
    assert decode(vector[which], vector["public"]).to_payload() == vector["payload"]


def test_trial_builder_matches_the_vector_payload(vector):
    # The vector was made for jane.doe on 2026-11-27 with the default terms.
    lic = build_trial("jane.doe@example.com", 120, date(2026, 11, 27), TrialTerms())
    assert lic.to_json() == vector["payload_json"]


def test_normal_use_draws_a_fresh_key_and_iv(private_key):
    lic = build_trial("a@example.com", 5, TODAY, TrialTerms())
    assert encode(lic, private_key) != encode(lic, private_key)


# --- round trips -------------------------------------------------------------------------------------

@pytest.mark.parametrize("bits", [2048, 3072, 4096])
def test_round_trip_for_each_key_size(bits):
    key = keys.generate(bits)
    lic = build_trial("ops@example.org", 1250, TODAY, TrialTerms())
    assert decode(encode(lic, key), key.public_key()) == lic


def test_round_trip_keeps_non_ascii_licensee_and_optional_fields(private_key):
    lic = replace(
        build_trial("ops@example.org", 3, TODAY, TrialTerms(licensee_company="Müller & Søn")),
        notify_admins_at=TODAY, notify_users_at=TODAY, next_sync_at="2026-11-28T10:00:00.000Z",
    )
    assert decode(encode(lic, private_key, boundary="Test"), private_key.public_key()) == lic


# --- leniency: everything GitLab's importer accepts ---------------------------------------------------

def _one_line(text: str) -> str:
    return text.replace("\n", "")


def _reflow_76(text: str) -> str:
    flat = _one_line(text)
    return "\n".join(flat[i:i + 76] for i in range(0, len(flat), 76)) + "\n"


@pytest.mark.parametrize("variant", [
    lambda v: v["boundary"].replace("\n", "\r\n"),
    lambda v: v["plain"].replace("\n", "\r\n"),
    lambda v: _one_line(v["plain"]),
    lambda v: _reflow_76(v["plain"]),
    lambda v: "\n\n" + v["boundary"] + "\n\n",
    lambda v: v["boundary"].replace("GITLAB ENTERPRISE EDITION", "SOMETHING ELSE") + "\n",
    lambda v: "-----BEGIN GITLAB LICENSE-----\n" + _reflow_76(v["plain"]) + "-----END GITLAB LICENSE-----",
], ids=["crlf-boundary", "crlf", "one-line", "76-columns", "blank-lines", "other-boundary", "short-dashes"])
def test_decode_accepts_what_gitlab_accepts(vector, variant):
    assert decode(variant(vector), vector["public"]).to_payload() == vector["payload"]


def test_decode_accepts_bytes(vector):
    assert decode(vector["boundary"].encode(), vector["public"]).email == "jane.doe@example.com"


# --- one clear LicenseError per cause -----------------------------------------------------------------

def _envelope(vector) -> dict:
    return json.loads(base64.b64decode(vector["plain"]))


def _wrap(envelope: dict) -> str:
    return base64.b64encode(json.dumps(envelope).encode()).decode()


def _reencrypt(vector, payload_bytes: bytes) -> str:
    """A correctly signed key around an arbitrary plaintext, to reach the payload checks."""
    from cryptography.hazmat.primitives import padding as sym_padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    padder = sym_padding.PKCS7(128).padder()
    enc = Cipher(algorithms.AES(vector["aes_key"]), modes.CBC(vector["iv"])).encryptor()
    data = enc.update(padder.update(payload_bytes) + padder.finalize()) + enc.finalize()
    env = _envelope(vector)
    env["data"] = base64.b64encode(data).decode()
    return _wrap(env)


def test_error_not_base64_or_json(vector):
    with pytest.raises(LicenseError, match="not a GitLab license key"):
        decode("this is not a license at all", vector["public"])
    with pytest.raises(LicenseError, match="not a GitLab license key"):
        decode(base64.b64encode(b"[1, 2, 3]").decode(), vector["public"])


def test_error_wrong_public_key(vector, private_key):
    with pytest.raises(LicenseError, match="wrong public key"):
        decode(vector["plain"], private_key.public_key())


def test_error_corrupted_data(vector):
    env = _envelope(vector)
    data = bytearray(base64.b64decode(env["data"]))
    data[-1] ^= 0xFF  # breaks the PKCS#7 padding of the last block
    env["data"] = base64.b64encode(bytes(data)).decode()
    with pytest.raises(LicenseError, match="damaged"):
        decode(_wrap(env), vector["public"])


def test_error_payload_not_a_license(vector):
    with pytest.raises(LicenseError, match="not a license"):
        decode(_reencrypt(vector, b'"just a string"'), vector["public"])
    with pytest.raises(LicenseError, match="'licensee' must be a non-empty object"):
        decode(_reencrypt(vector, b'{"version":1,"licensee":{},"issued_at":"2026-01-01",'
                                  b'"expires_at":"2026-02-01"}'), vector["public"])
    with pytest.raises(LicenseError, match="'expires_at' is missing"):
        decode(_reencrypt(vector, b'{"version":1,"licensee":{"Name":"x"},"issued_at":"2026-01-01"}'),
               vector["public"])


def test_error_unsupported_version(vector):
    payload = dict(vector["payload"], version=2)
    with pytest.raises(LicenseError, match="unsupported license version 2"):
        decode(_reencrypt(vector, json.dumps(payload).encode()), vector["public"])


def test_errors_never_chain_a_traceback(vector):
    with pytest.raises(LicenseError) as info:
        decode("@@@", vector["public"])
    assert info.value.__cause__ is None and info.value.__suppress_context__


# --- the emergency trial and the pre-flight check ----------------------------------------------------

def test_trial_terms_come_from_configuration_only():
    terms = TrialTerms(duration_days=10, backdate_days=2, grace_days=3, licensee_name="N", licensee_company="C")
    lic = build_trial("c@example.com", 30, TODAY, terms)
    assert lic.issued_at == TODAY - timedelta(days=2)
    assert lic.expires_at == TODAY + timedelta(days=10)
    assert lic.block_changes_at == TODAY + timedelta(days=13)
    assert lic.restrictions == {"plan": "ultimate", "active_user_count": 30, "trial": True}
    assert lic.licensee == {"Name": "N", "Company": "C", "Email": "c@example.com"}
    assert not any([lic.cloud_licensing_enabled, lic.offline_cloud_licensing_enabled, lic.auto_renew_enabled,
                    lic.seat_reconciliation_enabled, lic.operational_metrics_enabled,
                    lic.generated_from_customers_dot, lic.generated_from_cancellation, lic.temporary_extension])


def test_default_trial_is_active_now_and_lasts_ten_days():
    lic = build_trial("c@example.com", 30, TODAY, TrialTerms())
    assert lic.issued_at < TODAY and (lic.expires_at - TODAY).days == 10
    assert preflight(lic, TODAY) == []


def test_preflight_refuses_what_gitlab_refuses(private_key):
    lic = build_trial("c@example.com", 30, TODAY, TrialTerms())
    assert "already expired" in preflight(lic, lic.expires_at)[0]
    assert preflight(lic, lic.expires_at - timedelta(days=1)) == []
    assert "starts after it expires" in " ".join(preflight(replace(lic, issued_at=lic.expires_at +
                                                                    timedelta(days=1)), TODAY))
    assert "at least 1" in " ".join(preflight(build_trial("c@example.com", 0, TODAY, TrialTerms()), TODAY))
    with pytest.raises(LicenseError, match="GitLab would refuse this license: it has already expired"):
        sign(lic, private_key, lic.expires_at + timedelta(days=5))
    check_acceptable(lic, TODAY)


def test_file_name_is_company_letters_and_digits():
    lic = build_trial("c@example.com", 1, TODAY, TrialTerms(licensee_company="GitLab Support: Trial #1"))
    assert file_name(lic) == "GitLabSupportTrial1.gitlab-license"


# --- an independent check with the openssl command line ----------------------------------------------

def test_openssl_decrypts_what_the_engine_makes(tmp_path, key_files, private_key):
    lic = build_trial("ops@example.org", 77, TODAY, TrialTerms())
    key_text = encode(lic, private_key, boundary=DEFAULT_BOUNDARY)
    body = "".join(line for line in key_text.splitlines(True) if "-----" not in line)
    envelope = json.loads(base64.b64decode(body))
    for name in ("key", "iv", "data"):
        (tmp_path / f"{name}.bin").write_bytes(base64.b64decode(envelope[name]))
    subprocess.run(
        ["openssl", "pkeyutl", "-verifyrecover", "-pubin", "-inkey", str(key_files[1]),
         "-pkeyopt", "rsa_padding_mode:pkcs1", "-in", str(tmp_path / "key.bin"), "-out", str(tmp_path / "aes.key")],
        check=True, capture_output=True,
    )
    aes = (tmp_path / "aes.key").read_bytes()
    assert len(aes) == 16
    plain = subprocess.run(
        ["openssl", "enc", "-d", "-aes-128-cbc", "-K", aes.hex(), "-iv", (tmp_path / "iv.bin").read_bytes().hex(),
         "-in", str(tmp_path / "data.bin")],
        check=True, capture_output=True,
    ).stdout
    assert plain.decode() == lic.to_json()


# --- issue 22: rules whose breaking no test noticed (mutation testing) --------------------------------------

def test_a_one_user_license_is_accepted():
    """Issue 22: `count < 1` -> `<= 1` refused every 1-user license, and no test asked for one."""
    lic = build_trial("c@example.com", 1, TODAY, TrialTerms())
    assert preflight(lic, TODAY) == []


@pytest.mark.parametrize("count", [0, -5, True, "30", 2.0])
def test_a_user_count_that_is_not_a_whole_number_of_at_least_one_is_refused_naming_it(count):
    lic = replace(build_trial("c@example.com", 30, TODAY, TrialTerms()),
                  restrictions={"plan": "ultimate", "active_user_count": count, "trial": True})
    assert preflight(lic, TODAY) == [f"its user count must be at least 1, got {count!r}"]


def test_a_license_without_a_user_count_has_no_count_to_refuse():
    lic = replace(build_trial("c@example.com", 30, TODAY, TrialTerms()), restrictions={"plan": "ultimate"})
    assert preflight(lic, TODAY) == []


def test_each_refusal_says_exactly_what_and_all_are_said_at_once():
    lic = replace(build_trial("c@example.com", 0, TODAY, TrialTerms()), licensee={},
                  issued_at=date(2026, 12, 1), expires_at=date(2026, 11, 20))
    assert preflight(lic, TODAY) == [
        "the licensee is empty",
        "it has already expired (expires_at 2026-11-20, today 2026-11-27)",
        "it starts after it expires (2026-12-01 > 2026-11-20)",
        "its user count must be at least 1, got 0",
    ]
    with pytest.raises(LicenseError) as info:
        check_acceptable(lic, TODAY)
    assert str(info.value) == ("GitLab would refuse this license: the licensee is empty; it has already expired "
                               "(expires_at 2026-11-20, today 2026-11-27); it starts after it expires (2026-12-01 > "
                               "2026-11-20); its user count must be at least 1, got 0")


def test_a_key_that_starts_the_day_it_expires_does_not_start_after_it():
    """Issue 22: `issued_at == expires_at` was untested: `>` -> `>=` would say "starts after it expires" of a key
    that does not. GitLab refuses only what has expired on upload (today >= expires_at) and what is not `valid?`
    (shared/reference/license-format.md); a start on the expiry day is neither."""
    day = TODAY + timedelta(days=3)
    lic = replace(build_trial("c@example.com", 30, TODAY, TrialTerms()), issued_at=day, expires_at=day)
    assert preflight(lic, TODAY) == []
    assert preflight(lic, day) == [f"it has already expired (expires_at {day}, today {day})"]


def test_a_license_without_an_expiry_is_never_expired():
    lic = replace(build_trial("c@example.com", 30, TODAY, TrialTerms()), expires_at=None)
    assert preflight(lic, date(2099, 1, 1)) == []


def _payload(**changes) -> dict:
    return {"version": 1, "licensee": {"Name": "x"}, "issued_at": "2026-01-01", "expires_at": "2026-02-01",
            "restrictions": {"active_user_count": 5}, **changes}


def test_offline_cloud_licensing_without_cloud_licensing_is_not_a_license():
    """Issue 22: the gem's `valid?` refuses offline cloud licensing without cloud licensing
    (shared/reference/license-format.md, "The gem's `valid?`"); no test held the bot to it."""
    with pytest.raises(LicenseError) as info:
        License.from_payload(_payload(offline_cloud_licensing_enabled=True, cloud_licensing_enabled=False))
    assert str(info.value) == "the payload is not a valid license: offline cloud licensing needs cloud licensing"
    with pytest.raises(LicenseError):
        License.from_payload(_payload(offline_cloud_licensing_enabled=True))
    both = License.from_payload(_payload(offline_cloud_licensing_enabled=True, cloud_licensing_enabled=True))
    assert both.offline_cloud_licensing_enabled and both.cloud_licensing_enabled
    assert License.from_payload(_payload(cloud_licensing_enabled=True)).cloud_licensing_enabled


@pytest.mark.parametrize("changes, says", [
    ({"version": "1"}, "unsupported license version '1': only version 1 exists"),
    ({"version": None}, "unsupported license version None: only version 1 exists"),
    ({"licensee": ["Name", "x"]}, "the payload is not a valid license: 'licensee' must be a non-empty object"),
    ({"restrictions": [1]}, "the payload is not a valid license: 'restrictions' must be an object"),
    ({"issued_at": None}, "the payload is not a valid license: 'issued_at' is missing"),
    ({"expires_at": "soon"}, "the payload is not a valid license: 'expires_at' is not a date: 'soon'"),
    ({"notify_admins_at": "2026-13-01"},
     "the payload is not a valid license: 'notify_admins_at' is not a date: '2026-13-01'"),
])
def test_a_payload_gitlab_would_call_invalid_is_refused_naming_the_field(changes, says):
    with pytest.raises(LicenseError) as info:
        License.from_payload(_payload(**changes))
    assert str(info.value) == says


def test_a_payload_reads_back_every_optional_field_and_defaults_the_rest():
    lic = License.from_payload(_payload(notify_admins_at="2026-01-20T00:00:00Z", block_changes_at="2026-02-05",
                                        next_sync_at="2026-01-02T10:00:00Z", temporary_extension=True,
                                        contract_overages_allowed=False, unknown_key="ignored"))
    assert lic.notify_admins_at == date(2026, 1, 20) and lic.block_changes_at == date(2026, 2, 5)
    assert lic.notify_users_at is None and lic.next_sync_at == "2026-01-02T10:00:00Z"
    assert lic.temporary_extension is True and lic.contract_overages_allowed is False
    assert lic.issued_at == date(2026, 1, 1) and lic.expires_at == date(2026, 2, 1)
    assert lic.user_count == 5 and lic.plan is None and lic.trial is False and lic.email is None
    assert License.from_payload({k: v for k, v in _payload().items() if k != "restrictions"}).restrictions == {}
    assert License.from_payload(_payload()).contract_overages_allowed is True  # the gem's default when missing


def test_the_default_emergency_license_is_exactly_the_workflows():
    """Every term of the default trial: a 10-day Ultimate trial, started yesterday, read-only from its expiry."""
    lic = build_trial("c@example.com", 30, TODAY, TrialTerms())
    assert lic == License(
        licensee={"Name": "Emergency License", "Company": "GitLab Support Emergency Trial", "Email": "c@example.com"},
        issued_at=date(2026, 11, 26), expires_at=date(2026, 12, 7), block_changes_at=date(2026, 12, 7),
        restrictions={"plan": "ultimate", "active_user_count": 30, "trial": True})
    assert (lic.email, lic.plan, lic.user_count, lic.trial) == ("c@example.com", "ultimate", 30, True)
    assert file_name(lic) == "GitLabSupportEmergencyTrial.gitlab-license"
    assert file_name(replace(lic, licensee={"Name": "x"})) == "GitLab.gitlab-license"
    assert file_name(replace(lic, licensee={"Company": "***"})) == "GitLab.gitlab-license"


@pytest.mark.parametrize("mangle, says", [
    (lambda v: "-----BEGIN GITLAB LICENSE-----\r\r\n" + v["plain"] + "-----END GITLAB LICENSE-----",
     "its BEGIN or END line is damaged (a stray character after it, such as a lone carriage return): the "
     "gitlab-license gem does not strip such a line and refuses the key; save the file with plain line endings"),
    (lambda v: "this is not a license at all", "not a GitLab license key: the text is not base64 of a license "
                                               "envelope"),
    (lambda v: _wrap({"data": "AA==", "key": "AA=="}), "not a GitLab license key: the text is not base64 of a "
                                                       "license envelope"),
    (lambda v: _wrap({**_envelope(v), "iv": base64.b64encode(b"short").decode()}),
     "the key is damaged: its encryption key or IV has the wrong length"),
])
def test_each_damaged_key_gets_its_one_whole_message(vector, mangle, says):
    with pytest.raises(LicenseError) as info:
        decode(mangle(vector), vector["public"])
    assert str(info.value) == says


def test_a_key_signed_by_another_key_says_so_whole(vector, private_key):
    with pytest.raises(LicenseError) as info:
        decode(vector["plain"], private_key.public_key())
    assert str(info.value) == ("the key was not signed by the private key that matches this public key (wrong public "
                               "key, or the key block is damaged)")


def test_ruby_base64_lines_are_60_characters_each_ending_in_a_newline(vector):
    from bot.license import _decode64, _encode64

    text = _encode64(bytes(range(256)))
    lines = text.split("\n")
    assert lines[-1] == "" and all(len(line) == 60 for line in lines[:-2]) and 0 < len(lines[-2]) <= 60
    assert _decode64(text) == bytes(range(256))
    assert _decode64("QUJD\n=ignored after the first pad") == b"ABC"
    assert _decode64("QUI") == b"AB"  # missing padding, as Ruby's decode64 takes it
    assert _encode64(b"") == ""


@pytest.mark.parametrize("boundary, first, last", [
    ("Test License", "-" * 21 + "BEGIN TEST LICENSE" + "-" * 21, "-" * 22 + "END TEST LICENSE" + "-" * 22),
    ("x", "-" * 23 + "BEGIN X LICENSE" + "-" * 22, "-" * 24 + "END X LICENSE" + "-" * 23),
])
def test_the_boundary_lines_are_60_wide_and_centred_as_the_gem_writes_them(private_key, boundary, first, last):
    """The gem pads `BEGIN <BOUNDARY> LICENSE` with dashes to 60, the odd one on the left (the vector pins the
    default boundary); " LICENSE" is added only when the boundary does not already end with it."""
    key = encode(build_trial("c@example.com", 3, TODAY, TrialTerms()), private_key, boundary=boundary)
    lines = key.split("\n")
    assert (lines[0], lines[-1]) == (first, last)
    assert decode(key, private_key.public_key()).email == "c@example.com"


@pytest.mark.parametrize("dress", [lambda key: "\ufeff" + key, lambda key: ("\xff" + key).encode("latin-1"),
                                   lambda key: "é" + key],
                         ids=["byte-order mark", "a byte that is not UTF-8", "a stray letter"])
def test_a_key_with_a_stray_non_ascii_character_still_decodes(vector, dress):
    """A key saved by a Windows editor starts with a byte-order mark; Ruby's Base64.decode64 skips whatever is
    outside its alphabet, so GitLab accepts it: so must the bot's own check, and never with a traceback."""
    assert decode(dress(vector["plain"]), vector["public"]).email == "jane.doe@example.com"


def test_base64_that_cannot_be_decoded_is_one_clear_error(vector):
    with pytest.raises(LicenseError) as info:
        decode("QUJDR", vector["public"])
    assert str(info.value) == "the key is not valid base64 text"


def test_non_ascii_licensee_text_is_written_raw_as_rubys_json_dump_does():
    """Byte compatibility with the gem: Ruby's JSON.dump writes UTF-8 as is, not as \\u escapes."""
    lic = replace(build_trial("c@example.com", 3, TODAY, TrialTerms()), licensee={"Company": "Müller & Søn"})
    assert lic.to_json().startswith('{"version":1,"licensee":{"Company":"Müller & Søn"},"issued_at":"2026-11-26",')


def test_the_derived_key_material_is_the_same_in_every_version_of_the_bot(vector):
    """A run that crashed after signing is re-run, perhaps by a newer bot: the same request must get the
    byte-identical key (one license per request), so the derivation itself is pinned, not only its repeatability."""
    from bot.license import derive_key_material

    lic = License.from_payload(vector["payload"])
    aes_key, iv = derive_key_material(vector["private"], "https://gitlab.example.com/p#5", lic)
    assert (aes_key.hex(), iv.hex()) == ("3ce923a7770ae5eaad1631fcf20f2774", "e575934e30a6ddc99d1e2fb870be2f53")


def test_a_keys_fingerprint_and_id_are_its_sha256():
    """Notes and logs name a license by these; the record and `find` match them across runs."""
    from bot.license import fingerprint, license_id

    assert fingerprint("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert license_id("abc") == "ba7816bf8f01cfea"


@pytest.mark.parametrize("payload", ["just a string", [1, 2], None])
def test_a_payload_that_is_not_a_json_object_is_said_whole(payload):
    with pytest.raises(LicenseError) as info:
        License.from_payload(payload)
    assert str(info.value) == "the key decrypted, but its payload is not a license (not a JSON object)"


def test_a_key_whose_data_does_not_decrypt_to_json_is_said_whole(vector):
    env = _envelope(vector)
    data = bytearray(base64.b64decode(env["data"]))
    data[-1] ^= 0xFF  # breaks the PKCS#7 padding of the last block
    env["data"] = base64.b64encode(bytes(data)).decode()
    with pytest.raises(LicenseError) as info:
        decode(_wrap(env), vector["public"])
    assert str(info.value) == "the key is damaged: its license data does not decrypt to JSON"
