"""keygen / generate / inspect through the real entry point (`python -m bot`)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bot import keys
from bot.license import decode

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items()
                if k != "CI" and not k.startswith(("LICENSE_", "GITLAB_", "SMTP_", "SLACK_", "CI_"))}
    full_env["PYTHONPATH"] = str(ROOT)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd or ROOT, timeout=60)


def test_keygen_generate_inspect_round_trip(tmp_path):
    assert run_cli("keygen", "--out", str(tmp_path)).returncode == 0
    private_path, public_path = tmp_path / "license_key", tmp_path / "license_key.pub"
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600

    out = tmp_path / "customer.gitlab-license"
    gen = run_cli("generate", "--email", "ops@example.org", "--users", "1,250", "--date", "2026-11-27",
                  "--private-key", str(private_path), "--output", str(out))
    assert gen.returncode == 0, gen.stderr
    lic = decode(out.read_text(), keys.load_public_key(public_path))
    assert (lic.email, lic.user_count, str(lic.expires_at)) == ("ops@example.org", 1250, "2026-12-07")
    assert out.read_text().startswith("-----------BEGIN GITLAB ENTERPRISE EDITION LICENSE")

    shown = run_cli("inspect", str(out), "--public-key", str(public_path), "--today", "2026-11-27")
    assert shown.returncode == 0
    assert "ops@example.org" in shown.stdout and "1250" in shown.stdout and "2026-12-07" in shown.stdout
    assert "GitLab accepts it on 2026-11-27: yes" in shown.stdout

    as_json = json.loads(run_cli("inspect", str(out), "--public-key", str(public_path), "--json",
                                 "--today", "2026-12-07").stdout)
    assert as_json["license"]["restrictions"] == {"plan": "ultimate", "active_user_count": 1250, "trial": True}
    assert as_json["accepted_today"] is False and "already expired" in as_json["problems"][0]


def test_generate_writes_to_stdout_from_the_environment_key(key_files):
    private_path, public_path = key_files
    result = run_cli("generate", "--email", "a@example.com", "--users", "3",
                     env={"LICENSE_PRIVATE_KEY": private_path.read_text()})
    assert result.returncode == 0
    assert decode(result.stdout, keys.load_public_key(public_path)).user_count == 3


@pytest.mark.parametrize("args,message", [
    (["generate", "--email", "a@example.com", "--users", "3"], "no signing key"),
    (["generate", "--email", "a@example.com", "--users", "zero"], "expected a whole number of users"),
    (["generate", "--email", "a@example.com", "--users", "0"], "at least 1"),
    (["generate", "--email", "a@example.com", "--users", "3", "--date", "27/11/2026"], "YYYY-MM-DD"),
    (["inspect", "nothing.gitlab-license", "--public-key", "nothing.pub"], "cannot read the public key"),
])
def test_errors_are_one_line_and_non_zero(args, message):
    result = run_cli(*args)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr


def test_inspect_with_the_wrong_key_says_so(tmp_path, key_files):
    other = tmp_path / "other"
    keys.write_pair(keys.generate(2048), other)
    lic_file = tmp_path / "x.gitlab-license"
    assert run_cli("generate", "--email", "a@example.com", "--users", "3", "--private-key", str(key_files[0]),
                   "--output", str(lic_file)).returncode == 0
    result = run_cli("inspect", str(lic_file), "--public-key", str(other / "license_key.pub"))
    assert result.returncode == 1 and "wrong public key" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_config_stops_before_anything_is_written(tmp_path, key_files):
    bad = tmp_path / "bad.yaml"
    bad.write_text("license:\n  duration_days: ten\n")
    out = tmp_path / "never.gitlab-license"
    result = run_cli("--config", str(bad), "generate", "--email", "a@example.com", "--users", "3",
                     "--private-key", str(key_files[0]), "--output", str(out))
    assert result.returncode == 1 and not out.exists()
    assert ('license.duration_days: expected a whole number of days from 1 to 30, got a text of 3 characters (line 2, '
            'column 18)') in result.stderr


def test_no_secret_reaches_any_output(tmp_path, private_key):
    from cryptography.hazmat.primitives import serialization

    passphrase = "correct-horse-battery"
    pem = private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.BestAvailableEncryption(passphrase.encode())).decode()
    env = {"LICENSE_PRIVATE_KEY": pem, "LICENSE_PRIVATE_KEY_PASSPHRASE": passphrase,
           "GITLAB_TOKEN": "glpat-TOKENVALUE123", "SMTP_PASSWORD": "smtp-PASSWORD-456"}
    pub = tmp_path / "k.pub"
    pub.write_bytes(keys.public_pem(private_key))
    outputs = []
    gen = run_cli("generate", "--email", "a@example.com", "--users", "9", "--output", str(tmp_path / "l"), env=env)
    outputs += [gen.stdout, gen.stderr]
    for wrong in ({"LICENSE_PRIVATE_KEY_PASSPHRASE": "nope"}, {"LICENSE_PRIVATE_KEY_PASSPHRASE": ""},
                  {"LICENSE_PRIVATE_KEY": pem.replace("A", "B", 40)}):
        bad = run_cli("generate", "--email", "a@example.com", "--users", "9", env={**env, **wrong})
        assert bad.returncode == 1
        outputs += [bad.stdout, bad.stderr]
    shown = run_cli("inspect", str(tmp_path / "l"), "--public-key", str(pub), "--json", env=env)
    outputs += [shown.stdout, shown.stderr]
    everything = "\n".join(outputs)
    secret_lines = [line for line in pem.splitlines() if "-----" not in line]
    for secret in [passphrase, "glpat-TOKENVALUE123", "smtp-PASSWORD-456", *secret_lines]:
        assert secret not in everything


# --- check-request ------------------------------------------------------------------------------------

REQUESTS = ROOT / "tests" / "data" / "requests"


def test_check_request_valid_exits_0_and_says_what_would_be_sent():
    result = run_cli("check-request", str(REQUESTS / "good-template.md"), "--today", "2026-11-27")
    assert result.returncode == 0
    assert "250 users would be sent to jane.doe@example.com" in result.stdout


def test_check_request_json_has_exactly_the_documented_shape():
    result = run_cli("check-request", str(REQUESTS / "good-hash-number.md"), "--today", "2026-11-27", "--json")
    assert result.returncode == 0
    assert json.loads(result.stdout) == {
        "valid": True,
        "request": {"ticket_url": "https://gitlab.zendesk.com/agent/tickets/512345", "ticket_id": 512345,
                    "email": "jane.doe@example.com", "user_count": 1250, "expired_on": "2026-11-12"},
        "errors": [], "warnings": [],
    }


def test_check_request_invalid_exits_1_with_fields_and_fixes():
    result = run_cli("check-request", str(REQUESTS / "bad-everything.md"), "--today", "2026-11-27", "--json")
    assert result.returncode == 1
    out = json.loads(result.stdout)
    assert out["valid"] is False and out["request"] is None
    assert [e["field"] for e in out["errors"]] == ["ticket", "email", "user_count", "expired_on", "checklist",
                                                 "checklist"]  # one per unticked box


def test_check_request_text_output_is_the_comment_addressed_to_the_author():
    result = subprocess.run(
        [sys.executable, "-m", "bot", "check-request", "-", "--author", "bob", "--today", "2026-11-27"],
        input=(REQUESTS / "bad-ambiguous-date.md").read_text(), capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert result.returncode == 1
    assert result.stdout.startswith("@bob this request was **not** processed")
    assert "- **License expiration date**: `11/12/2026` is ambiguous" in result.stdout


def test_check_request_judges_scope_against_the_given_day():
    late = run_cli("check-request", str(REQUESTS / "good-template.md"), "--today", "2026-12-10", "--json")
    assert late.returncode == 1 and [e["field"] for e in json.loads(late.stdout)["errors"]] == ["expired_on"]
