"""Signing through PKCS#11 (issue 12), against a real SoftHSM2 token in a temporary directory; nothing mocked."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bot import keys
from bot import license as lic_mod
from bot.signer import FileSigner, Pkcs11Signer, SignerError

from .conftest import TODAY, VECTOR
from .e2e import HANG_SECONDS, ROOT, KillAt, client, license_keys, mail, request_text

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


@pytest.fixture
def own_token(tmp_path) -> Path:
    """A token of the test's own in a second SoftHSM configuration (the vector's key imported), for what must not
    touch the shared token: a wrong login (it sets CKF_USER_PIN_COUNT_LOW), pulling the token out. The bot's
    process gets it through SOFTHSM2_CONF; returns that file."""
    home = tmp_path / "hsm2"
    (home / "tokens").mkdir(parents=True)
    conf = home / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {home / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    util = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", TOKEN, "--pin", PIN, "--so-pin", "so-5678"],
                   check=True, capture_output=True, env=util)
    pkcs8 = home / "vector.p8"
    subprocess.run(["openssl", "pkcs8", "-topk8", "-nocrypt", "-in", str(VECTOR / "test-signing-key.pem"), "-out",
                    str(pkcs8)], check=True, capture_output=True)
    subprocess.run(["softhsm2-util", "--import", str(pkcs8), "--token", TOKEN, "--label", "vector", "--id", "01",
                    "--pin", PIN], check=True, capture_output=True, env=util)
    pkcs8.unlink()
    return conf


def _login_by_hand(conf: Path, pin: str) -> None:
    """What a person does to clear CKF_USER_PIN_COUNT_LOW: one login with the right PIN (pkcs11-tool --login)."""
    subprocess.run([sys.executable, "-c", f"import pkcs11; pkcs11.lib({MODULE!r}).get_token(token_label={TOKEN!r})"
                                          f".open(user_pin={pin!r}).close()"],
                   check=True, env={**os.environ, "SOFTHSM2_CONF": str(conf)}, timeout=60)


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
    assert again.returncode == 1 and "already holds an object labelled 'made-by-keygen'" in again.stderr


@pytest.mark.parametrize("module,token,key,pin,says", [
    ("/nonexistent/libpkcs11.so", TOKEN, "vector", PIN, "cannot load /nonexistent/libpkcs11.so"),
    (None, "no-such-token", "vector", PIN, "no token labelled 'no-such-token'"),
    (None, TOKEN, "no-such-key", PIN, "holds no RSA key pair labelled 'no-such-key'"),
    (None, TOKEN, "vector", "wrong-pin-9999", "refused LICENSE_SIGNER_PIN (wrong PIN)"),
    (None, TOKEN, "vector", None, "LICENSE_SIGNER_PIN is not set"),
])
def test_every_signer_problem_is_one_clear_error_that_never_echoes_the_pin(softhsm, module, token, key, pin, says):
    # Logged in first, so this process's wrong PIN is refused without a C_Login: a real wrong login would set the
    # shared token's CKF_USER_PIN_COUNT_LOW, and the bot then rightly refuses every PIN (tests below, own token).
    Pkcs11Signer(MODULE, TOKEN, "vector", PIN)
    with pytest.raises(SignerError) as info:
        Pkcs11Signer(module or MODULE, token, key, pin)
    assert says in str(info.value) and PIN not in str(info.value) and "wrong-pin-9999" not in str(info.value)


# --- end to end: the bot as CI runs it, signing in the token ------------------------------------------------

def _config(tmp_path: Path, key_label: str, url: str = "http://127.0.0.1:9", smtp_port: int = 25) -> Path:
    import yaml

    from bot import resources

    config = yaml.safe_load(resources.default_config().read_text())
    config["gitlab"].update(url=url, project="support/internal-requests", timeout_seconds=HANG_SECONDS)
    config["smtp"].update(host="127.0.0.1", port=smtp_port, security="none", username=None,
                          timeout_seconds=HANG_SECONDS)
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "config.yaml"
    config["license"].update(signer="pkcs11", pkcs11={"module": MODULE, "token_label": TOKEN, "key_label": key_label,
                                                      "refused_pins_file": str(path.parent / "refused-pins")})
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
    # killed while the sandbox takes the upload: signed and uploaded, not yet recorded, on any machine
    killer = KillAt(sandbox, 1, when=lambda method, path: method == "POST" and path.endswith("/uploads"))
    killer.start(lambda: subprocess.Popen([sys.executable, "-m", "bot", "--config", str(config), "run"],
                                          env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    killer.finish()
    assert killer.killed and uploads and not mail(sandbox.url)
    assert _cli(config, "run").returncode == 0
    issue = client(sandbox.url, "bot-token").issues.get(issue.iid)
    (key,) = license_keys(issue)
    assert issue.state == "closed" and [m["key"] for m in mail(sandbox.url)] == [key]
    made = {base64.b64decode(u["data"]).decode() for u in uploads.values()}
    assert made == {key}  # the killed run's upload and the rerun's are the same license, byte for byte
    assert lic_mod.decode(key, keys.load_public_key(VECTOR / "test-signing-key.pub")).user_count == 101


def test_a_wrong_pin_stops_the_run_before_any_request_and_is_never_printed(softhsm, own_token, sandbox, tmp_path):
    config = _config(tmp_path, "vector", sandbox.url, sandbox.smtp_port)
    issue = client(sandbox.url).issues.create({"title": "x", "description": request_text(1)})
    before = len(sandbox.sandbox.requests)
    result = subprocess.run([sys.executable, "-m", "bot", "--config", str(config), "run"], capture_output=True,
                            text=True, timeout=120, env={**_env("wrong-pin-9999"), "SOFTHSM2_CONF": str(own_token)})
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


# --- issue 17: the token as a real HSM behaves ---------------------------------------------------------------
# PKCS#11 facts pinned below (OASIS PKCS#11 Base Specification v2.40, section 4.4 CK_TOKEN_INFO, table 12; the same
# words in python-pkcs11's pkcs11/constants.py TokenFlag): CKF_USER_PIN_COUNT_LOW "an incorrect user login PIN has
# been entered at least once since the last successful authentication"; CKF_USER_PIN_FINAL_TRY "supplying an
# incorrect user PIN will cause it to become locked"; CKF_USER_PIN_LOCKED "the user PIN has been locked. User login
# to the token is not possible". Section 4.8/4.9 (common key and private key attributes): CKA_ID is the key
# identifier that pairs a public and a private key; CKA_SIGN, CKA_DECRYPT, CKA_UNWRAP and CKA_DERIVE say what the
# private key may be used for. SoftHSM2 sets CKF_USER_PIN_COUNT_LOW after a wrong PIN and clears it at the next
# good login, but never FINAL_TRY or LOCKED (it does not lock): tests/pkcs11_spy/sitecustomize.py adds those
# around the real token info, and counts C_Login calls.

SPY = Path(__file__).resolve().parent / "pkcs11_spy"


def _spy_env(log: Path, pin: str = PIN, **spy: str) -> dict:
    env = _env(pin)
    env.update(PYTHONPATH=f"{SPY}{os.pathsep}{ROOT}", PKCS11_SPY_LOG=str(log), **spy)
    return env


def _logins(log: Path) -> int:
    return len(log.read_text().split()) if log.exists() else 0


def test_a_wrong_pin_is_tried_once_in_all_runs_until_the_pin_changes(softhsm, own_token, sandbox, tmp_path):
    """Finding 7: every run, dry run and doctor spent one login try, so the schedule locked a real HSM within
    the hour. Now a refused PIN is remembered (as a hash) and never tried again by any process of the bot; and
    the token's own CKF_USER_PIN_COUNT_LOW (SoftHSM2 sets it after a wrong PIN) keeps the bot from trying even a
    new PIN until a person has logged in by hand."""
    config = _config(tmp_path, "vector", sandbox.url, sandbox.smtp_port)
    log = tmp_path / "logins"
    run = [sys.executable, "-m", "bot", "--config", str(config)]

    def bot(command: str, pin: str) -> subprocess.CompletedProcess:
        return subprocess.run([*run, command], capture_output=True, text=True, timeout=120,
                              env=_spy_env(log, pin, SOFTHSM2_CONF=str(own_token)))

    first = bot("run", "wrong-pin-9999")
    assert first.returncode == 1 and "refused LICENSE_SIGNER_PIN (wrong PIN)" in first.stderr
    for command in ("run", "doctor"):
        again = bot(command, "wrong-pin-9999")
        assert again.returncode == 1 and "refused this LICENSE_SIGNER_PIN before" in again.stdout + again.stderr
        assert "wrong-pin-9999" not in again.stdout + again.stderr
    assert _logins(log) == 1  # one login attempt in all
    remembered = (config.parent / "refused-pins").read_text()
    assert "wrong-pin-9999" not in remembered and len(remembered.split()) == 1
    corrected = bot("run", PIN)  # a new PIN, but the token says a wrong one was given: a person must look first
    assert corrected.returncode == 1 and "says a wrong PIN was given since its last login" in corrected.stderr
    assert _logins(log) == 1
    _login_by_hand(own_token, PIN)
    fixed = bot("run", PIN)
    assert fixed.returncode == 0, fixed.stderr
    assert _logins(log) == 2


@pytest.mark.parametrize("flags,says", [
    ("USER_PIN_FINAL_TRY", "says one more wrong PIN locks it, so the bot does not try LICENSE_SIGNER_PIN"),
    ("USER_PIN_LOCKED", "is locked after wrong PINs; its security officer must unlock it"),
])
def test_token_flags_warning_of_a_lock_stop_the_bot_before_any_login(softhsm, sandbox, tmp_path, flags, says):
    """Finding 7, the flags SoftHSM2 never sets (it does not lock): added around its real token info."""
    config = _config(tmp_path, "vector", sandbox.url, sandbox.smtp_port)
    log = tmp_path / "logins"
    result = subprocess.run([sys.executable, "-m", "bot", "--config", str(config), "run"], capture_output=True,
                            text=True, timeout=120, env=_spy_env(log, PKCS11_SPY_FLAGS=flags))
    assert result.returncode == 1 and says in result.stderr
    assert _logins(log) == 0 and not (config.parent / "refused-pins").exists()


def test_a_token_removed_between_two_requests_stops_the_run_and_counts_no_attempt(softhsm, own_token, sandbox,
                                                                                   tmp_path):
    """Finding 8: a token lost mid-run failed each following request as an "internal error", and after
    max_attempts the customers' requests were failed. Now the run stops; no request's attempt count changes."""
    config = _config(tmp_path, "vector", sandbox.url, sandbox.smtp_port)
    issues = [client(sandbox.url).issues.create({"title": f"x{n}", "description": request_text(n)}) for n in (1, 2)]
    (token_dir,) = (own_token.parent / "tokens").iterdir()
    # The first request signs three times (the key-material secret, its key, its record entry): then the token
    # is gone.
    env = _spy_env(tmp_path / "logins", SOFTHSM2_CONF=str(own_token), PKCS11_SPY_REMOVE_AFTER="3",
                   PKCS11_SPY_TOKEN_DIR=str(token_dir))
    result = subprocess.run([sys.executable, "-m", "bot", "--config", str(config), "run"], capture_output=True,
                            text=True, timeout=120, env=env)
    assert result.returncode == 1 and "could not sign" in result.stderr and "no request is counted" in result.stderr
    gl = client(sandbox.url, "bot-token")
    states = sorted(gl.issues.get(i.iid).state for i in issues)
    assert states == ["closed", "opened"] and len(mail(sandbox.url)) == 1
    (waiting,) = [gl.issues.get(i.iid) for i in issues if gl.issues.get(i.iid).state == "opened"]
    assert waiting.labels == ["license-request"]  # no failed label
    # Its status note only announces the claim the run took before signing (issue 16): no attempt, no error,
    # and the next run takes the next claim, since this run's process is gone.
    from bot import status as status_mod

    (state,) = [status_mod.read(n.body) for n in waiting.notes.list(get_all=True) if "license-bot:status" in n.body]
    assert state.step == "claimed" and state.attempts == 0 and state.internal_errors == 0 and not state.errors


def test_keygen_refuses_a_label_held_by_any_object_and_makes_a_sign_only_pair_with_an_id(softhsm, tmp_path):
    """Finding 9: keygen made a second key with the same label when the token held a private key without its
    public half (every later start failed); the key could also decrypt and unwrap, had no CKA_ID, and
    `--out DIR` was not created."""
    from pkcs11 import Attribute, KeyType, ObjectClass, lib
    from pkcs11.exceptions import UserAlreadyLoggedIn

    token = lib(MODULE).get_token(token_label=TOKEN)
    try:
        session = token.open(user_pin=PIN, rw=True)
    except UserAlreadyLoggedIn:  # this process's other tests hold a login
        session = token.open(rw=True)
    with session:
        session.create_object({Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: True, Attribute.LABEL: "taken-data",
                               Attribute.VALUE: b"x"})
        public, _ = session.generate_keypair(KeyType.RSA, 1024, label="orphan", store=True)
        public.destroy()  # a private key without its public half
    for label in ("taken-data", "orphan"):
        refused = _cli(_config(tmp_path, label), "keygen", "--pkcs11", "--out", str(tmp_path / label))
        assert refused.returncode == 1 and f"already holds an object labelled {label!r}" in refused.stderr
    out = tmp_path / "new" / "keys"
    made = _cli(_config(tmp_path, "sign-only"), "keygen", "--pkcs11", "--out", str(out))
    assert made.returncode == 0, made.stderr
    assert (out / "license_key.pub").exists()
    try:
        session = token.open(user_pin=PIN)
    except UserAlreadyLoggedIn:
        session = token.open()
    with session:
        private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label="sign-only")
        public = session.get_key(object_class=ObjectClass.PUBLIC_KEY, label="sign-only")
        assert private[Attribute.SIGN] is True
        assert (private[Attribute.DECRYPT], private[Attribute.UNWRAP], private[Attribute.DERIVE]) == (False,) * 3
        assert private[Attribute.ID] and private[Attribute.ID] == public[Attribute.ID]
        assert private[Attribute.EXTRACTABLE] is False and private[Attribute.SENSITIVE] is True
