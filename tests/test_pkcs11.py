"""Signing through PKCS#11 (issue 12), against a real SoftHSM2 token in a temporary directory; nothing mocked."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from bot import keys
from bot import license as lic_mod
from bot.signer import FileSigner, Pkcs11Signer, SignerError

from .conftest import TODAY, VECTOR
from .e2e import ROOT, client, license_keys, mail, request_text

MODULE = next((p for p in ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
                           "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so") if Path(p).exists()), None)
TOKEN, PIN = "license-bot", "4711-pin-secret"


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory):
    """A SoftHSM2 token for this test process, with the gem vector's key imported (label `vector`).
    SoftHSM reads SOFTHSM2_CONF once per process, so one token serves every test."""
    assert MODULE and shutil.which("softhsm2-util"), "SoftHSM2 is not installed: apt-get install softhsm2 (.ci/test)"
    home = tmp_path_factory.mktemp("softhsm")
    (home / "tokens").mkdir()
    conf = home / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {home / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    util = ["softhsm2-util"]
    subprocess.run([*util, "--init-token", "--free", "--label", TOKEN, "--pin", PIN, "--so-pin", "so-pin-5678"],
                   check=True, capture_output=True)
    pkcs8 = home / "vector.p8"
    subprocess.run(["openssl", "pkcs8", "-topk8", "-nocrypt", "-in", str(VECTOR / "test-signing-key.pem"),
                    "-out", str(pkcs8)], check=True, capture_output=True)
    subprocess.run([*util, "--import", str(pkcs8), "--token", TOKEN, "--label", "vector", "--id", "01", "--pin", PIN],
                   check=True, capture_output=True)
    pkcs8.unlink()
    return {"conf": conf, "module": MODULE}


def test_a_license_signed_in_the_token_is_byte_for_byte_the_file_backends(softhsm, vector, tmp_path):
    token = Pkcs11Signer(MODULE, TOKEN, "vector", PIN)
    file = FileSigner(vector["private"])
    lic = lic_mod.build_trial("ops@example.org", 77, TODAY, lic_mod.TrialTerms())
    made = []
    for signer in (token, file):
        aes_key, iv = lic_mod.derive_key_material(signer, "https://gitlab.example.com/p#5", lic)
        made.append(lic_mod.sign(lic, signer, TODAY, boundary=lic_mod.DEFAULT_BOUNDARY, aes_key=aes_key, iv=iv))
    assert made[0] == made[1]
    # openssl's command line, independently: the key block recovers with the public key, the data decrypts.
    body = "".join(line for line in made[0].splitlines(True) if "-----" not in line)
    envelope = json.loads(base64.b64decode(body))
    for name in ("key", "iv", "data"):
        (tmp_path / f"{name}.bin").write_bytes(base64.b64decode(envelope[name]))
    subprocess.run(["openssl", "pkeyutl", "-verifyrecover", "-pubin", "-inkey", str(VECTOR / "test-signing-key.pub"),
                    "-pkeyopt", "rsa_padding_mode:pkcs1", "-in", str(tmp_path / "key.bin"), "-out",
                    str(tmp_path / "aes.key")], check=True, capture_output=True)
    plain = subprocess.run(["openssl", "enc", "-d", "-aes-128-cbc", "-K", (tmp_path / "aes.key").read_bytes().hex(),
                            "-iv", (tmp_path / "iv.bin").read_bytes().hex(), "-in", str(tmp_path / "data.bin")],
                           check=True, capture_output=True).stdout
    assert plain.decode() == lic.to_json()
    key_file = tmp_path / "k.gitlab-license"
    key_file.write_text(made[0])
    shown = subprocess.run([sys.executable, "-m", "bot", "inspect", str(key_file), "--public-key",
                            str(VECTOR / "test-signing-key.pub")], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert shown.returncode == 0 and "ops@example.org" in shown.stdout and "77" in shown.stdout


def test_keygen_makes_a_non_extractable_pair_in_the_token(softhsm, tmp_path):
    from pkcs11 import Attribute, KeyType, ObjectClass, lib
    from pkcs11.exceptions import UserAlreadyLoggedIn

    config = _config(tmp_path, "made-by-keygen")
    result = _cli(config, "keygen", "--pkcs11", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    public = keys.load_public_key(tmp_path / "license_key.pub")
    token = lib(MODULE).get_token(token_label=TOKEN)
    try:
        session = token.open(user_pin=PIN)
    except UserAlreadyLoggedIn:  # this process's other tests hold a login
        session = token.open()
    with session:
        private = session.get_key(key_type=KeyType.RSA, object_class=ObjectClass.PRIVATE_KEY, label="made-by-keygen")
        assert private[Attribute.EXTRACTABLE] is False and private[Attribute.SENSITIVE] is True
    signer = Pkcs11Signer(MODULE, TOKEN, "made-by-keygen", PIN)
    assert signer.public_key().public_numbers() == public.public_numbers()
    again = _cli(config, "keygen", "--pkcs11", "--out", str(tmp_path), "--force")
    assert again.returncode == 1 and "already holds a key labelled 'made-by-keygen'" in again.stderr


@pytest.mark.parametrize("module,token,key,pin,says", [
    ("/nonexistent/libpkcs11.so", TOKEN, "vector", PIN, "cannot load /nonexistent/libpkcs11.so"),
    (None, "no-such-token", "vector", PIN, "no token labelled 'no-such-token'"),
    (None, TOKEN, "no-such-key", PIN, "holds no RSA key pair labelled 'no-such-key'"),
    (None, TOKEN, "vector", "wrong-pin-9999", "refused LICENSE_SIGNER_PIN (wrong PIN)"),
    (None, TOKEN, "vector", None, "LICENSE_SIGNER_PIN is not set"),
])
def test_every_signer_problem_is_one_clear_error_that_never_echoes_the_pin(softhsm, module, token, key, pin, says):
    with pytest.raises(SignerError) as info:
        Pkcs11Signer(module or MODULE, token, key, pin)
    assert says in str(info.value) and PIN not in str(info.value) and "wrong-pin-9999" not in str(info.value)


# --- end to end: the bot as CI runs it, signing in the token ------------------------------------------------

def _config(tmp_path: Path, key_label: str, url: str = "http://127.0.0.1:9", smtp_port: int = 25) -> Path:
    import yaml

    from bot import resources

    config = yaml.safe_load(resources.default_config().read_text())
    config["gitlab"].update(url=url, project="support/internal-requests", timeout_seconds=5)
    config["smtp"].update(host="127.0.0.1", port=smtp_port, security="none", username=None, timeout_seconds=3)
    config["license"].update(signer="pkcs11", pkcs11={"module": MODULE, "token_label": TOKEN, "key_label": key_label})
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _env(pin: str = PIN) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LICENSE_", "GITLAB_", "SMTP_", "CI"))}
    return {**env, "PYTHONPATH": str(ROOT), "GITLAB_TOKEN": "bot-token", "LICENSE_SIGNER_PIN": pin}


def _cli(config: Path, *args: str, pin: str = PIN) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot", "--config", str(config), *args], capture_output=True,
                          text=True, env=_env(pin), timeout=120)


def test_the_bot_signs_in_the_token_and_a_kill_after_signing_remakes_the_identical_key(softhsm, sandbox, tmp_path):
    config = _config(tmp_path, "vector", sandbox.url, sandbox.smtp_port)
    issue = client(sandbox.url).issues.create({"title": "x", "description": request_text(1)})
    uploads = sandbox.sandbox.state["projects"][0]["uploads"]
    proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(config), "run"], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not uploads and proc.poll() is None and time.time() < deadline:  # signed and uploaded, not yet recorded
        time.sleep(0.0005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert _cli(config, "run").returncode == 0
    issue = client(sandbox.url, "bot-token").issues.get(issue.iid)
    (key,) = license_keys(issue)
    assert issue.state == "closed" and [m["key"] for m in mail(sandbox.url)] == [key]
    made = {base64.b64decode(u["data"]).decode() for u in uploads.values()}
    assert made == {key}  # the killed run's upload and the rerun's are the same license, byte for byte
    assert lic_mod.decode(key, keys.load_public_key(VECTOR / "test-signing-key.pub")).user_count == 101


def test_a_wrong_pin_stops_the_run_before_any_request_and_is_never_printed(softhsm, sandbox, tmp_path):
    config = _config(tmp_path, "vector", sandbox.url, sandbox.smtp_port)
    issue = client(sandbox.url).issues.create({"title": "x", "description": request_text(1)})
    before = len(sandbox.sandbox.requests)
    result = _cli(config, "run", pin="wrong-pin-9999")
    assert len(sandbox.sandbox.requests) == before  # not one call to GitLab: nothing touched
    assert result.returncode == 1 and "refused LICENSE_SIGNER_PIN (wrong PIN)" in result.stderr
    assert "wrong-pin-9999" not in result.stdout + result.stderr
    assert client(sandbox.url, "bot-token").issues.get(issue.iid).labels == ["license-request"]


def test_doctor_checks_the_token_signer_and_warns_about_a_file_key_in_ci(softhsm, tmp_path, key_files):
    from bot import config as config_mod
    from bot import doctor

    config = config_mod.load(_config(tmp_path, "vector"), environ={})
    secrets = config_mod.Secrets(signer_pin=PIN, public_key_file=str(VECTOR / "test-signing-key.pub"))
    check = doctor._key_check(config, secrets, {})
    assert check.ok and "a key in the PKCS#11 token 'license-bot' signs" in check.detail
    mismatched = doctor._key_check(config, config_mod.Secrets(signer_pin=PIN, public_key_file=str(key_files[1])), {})
    assert mismatched.ok is False and "does not match the public key" in mismatched.detail
    file_config = config_mod.load(environ={})
    file_secrets = config_mod.Secrets(private_key_pem=key_files[0].read_bytes(), public_key_file=str(key_files[1]))
    warned = doctor._key_check(file_config, file_secrets, {"GITLAB_CI": "true"})
    assert warned.ok and warned.warn and "every maintainer of this project can read the signing key" in warned.detail
