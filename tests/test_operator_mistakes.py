"""Issue 19: every command, run by a careless operator or fed by a hostile Guest, answers with its exit code and
one `license-bot: error:` line, never a traceback, never a secret of its environment (short ones too), and
changes no file but the one it was asked to write.

Facts relied on: GitLab refuses an issue description longer than 1,048,576 characters
(`Issuable::DESCRIPTION_LENGTH_MAX = 1.megabyte`, validated as a length in app/models/concerns/issuable.rb), so
`check-request` refuses more than GitLab would ever hand the bot. GitLab answers 404 for an issue that was
deleted (lib/api/helpers.rb `find_project_issue`: `IssuesFinder...find_by!(iid:)`, whose RecordNotFound the API
renders as 404 Not Found), so such an event is ignored. A webhook's payload carries `project` and `user` as
objects and `object_attributes.iid` as a number (lib/gitlab/hook_data/issue_builder.rb; the payload example
in doc/user/project/integrations/webhook_events.md, "Issue events")."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot import files, find, request
from bot.scrub import Scrubber

from .e2e import ROOT, client, request_text

TOKEN = "glpat-h19SECRETtoken"
SHORT = {"SMTP_PASSWORD": "Zq9", "ZENDESK_API_TOKEN": "zdK8", "LICENSE_SIGNER_PIN": "Vw2x"}
SLACK = "https://hooks.slack.com/services/T9/B9/h19slackSECRET"


@dataclass
class Row:
    args: list[str]
    code: int
    says: str
    env: dict = field(default_factory=dict)
    errors: int = 1  # lines starting `license-bot: error:`


def _world(tmp: Path, key_files) -> tuple[dict, dict[str, Row]]:
    private, public = (str(p) for p in key_files)
    (tmp / "victim.txt").write_text("victim")
    dotenv = tmp / ".env"
    dotenv.write_text(f"GITLAB_TOKEN={TOKEN}\nSMTP_PASSWORD={SHORT['SMTP_PASSWORD']}\n")
    (tmp / "deep.yaml").write_text("[" * 100_000)
    (tmp / "zero-key.yaml").write_text("license:\n  public_key_file: /dev/zero\n")
    (tmp / "zero-ca.yaml").write_text("smtp:\n  security: ssl\n  ca_file: /dev/zero\n")
    (tmp / "out").mkdir()
    (tmp / "out" / "license_key.pub").symlink_to(tmp / "victim.txt")  # planted: keygen must not follow it
    (tmp / "out2").mkdir()
    (tmp / "out2" / "license_key.pub").write_text("an older public key")
    (tmp / "dangling.gitlab-license").symlink_to(tmp / "made-by-the-attacker")
    (tmp / "report.json").write_text("yesterday's report")
    (tmp / "existing.gitlab-license").write_text("keep me")
    (tmp / "bad-state.json").write_text('{"users": [')
    (tmp / "list-state.json").write_text("[]")
    (tmp / "big.md").write_bytes(b"x" * (files.DESCRIPTION_CHARS + 1))
    env = {"GITLAB_URL": f"http://oauth2:{TOKEN}@127.0.0.1:9", "CI_PROJECT_PATH": "support/internal-requests",
           "GITLAB_TOKEN": TOKEN, "SLACK_WEBHOOK_URL": SLACK, **SHORT,
           "LICENSE_PRIVATE_KEY_FILE": private, "LICENSE_PUBLIC_KEY_FILE": public}
    gen = ["generate", "--email", "a@example.com", "--users", "5"]
    rows = {
        # 1. The signing key or a .env file named as the config.
        "config is the private key: run": Row(["--config", private, "run"], 1, "expected a mapping of keys"),
        "config is the private key: doctor": Row(["--config", private, "doctor"], 1, "line 1, column 1"),
        "config is a .env: find": Row(["--config", str(dotenv), "find", "a@example.com"], 1, "a mapping of keys"),
        "config is a .env: setup": Row(["--config", str(dotenv), "setup"], 1, "a mapping of keys"),
        # 2. A token in GITLAB_URL, and short secrets.
        "token in GITLAB_URL: doctor": Row(["doctor"], 1, "127.0.0.1:9", errors=0),
        "token in GITLAB_URL: find": Row(["find", "a@example.com"], 1, "could not search"),
        "token in GITLAB_URL: run": Row(["run"], 1, "127.0.0.1"),
        "token in GITLAB_URL: setup": Row(["setup"], 1, "127.0.0.1"),
        "short secret in GITLAB_URL: find": Row(["find", "a@example.com"], 1, "could not search",
                                                {"GITLAB_URL": f"http://u:{SHORT['LICENSE_SIGNER_PIN']}@127.0.0.1:9"}),
        # 3. Files written through symlinks or over existing files.
        "keygen over a planted symlink": Row(["keygen", "--out", str(tmp / "out")], 1, "already exists"),
        "keygen over an existing public key": Row(["keygen", "--out", str(tmp / "out2")], 1, "--force"),
        "generate through a dangling symlink": Row([*gen, "--output", str(tmp / "dangling.gitlab-license")], 1,
                                                   "exists already"),
        "generate over a file": Row([*gen, "--output", str(tmp / "existing.gitlab-license")], 1, "--force"),
        "run --report over a file": Row(["run", "--report", str(tmp / "report.json")], 1, "exists already"),
        # 4. Unbounded reads.
        "check-request /dev/urandom": Row(["check-request", "/dev/urandom"], 1, "1,048,576 characters"),
        "check-request /dev/zero": Row(["check-request", "/dev/zero"], 1, "1,048,576 characters"),
        "check-request over GitLab's limit": Row(["check-request", str(tmp / "big.md")], 1, "1,048,576"),
        "inspect /dev/zero": Row(["inspect", "/dev/zero", "--public-key", public], 1, "larger than 64 KB"),
        "inspect with /dev/zero as the key": Row(["inspect", private, "--public-key", "/dev/zero"], 1, "larger than"),
        "generate --private-key /dev/zero": Row([*gen, "--private-key", "/dev/zero"], 1, "larger than 64 KB"),
        "LICENSE_PRIVATE_KEY_FILE=/dev/zero": Row(gen, 1, "larger than 64 KB",
                                                  {"LICENSE_PRIVATE_KEY_FILE": "/dev/zero"}),
        "license.public_key_file: /dev/zero": Row(["--config", str(tmp / "zero-key.yaml"), "find", "a@example.com"], 1,
                                                  "larger than 64 KB", {"LICENSE_PUBLIC_KEY_FILE": ""}),
        "config /dev/zero": Row(["--config", "/dev/zero", "run"], 1, "larger than 256 KB"),
        "smtp.ca_file: /dev/zero": Row(["--config", str(tmp / "zero-ca.yaml"), "doctor"], 1,
                                       "smtp.ca_file /dev/zero is larger than 1 MB", errors=0),
        # 5. Input that ended in an internal error.
        "100,000-level YAML config": Row(["--config", str(tmp / "deep.yaml"), "run"], 1, "nested too deeply"),
        "sandbox --port 99999": Row(["sandbox", "--port", "99999"], 2, "argument --port"),
        "sandbox --smtp-port -1": Row(["sandbox", "--smtp-port", "-1"], 2, "argument --smtp-port"),
        "sandbox --state not JSON": Row(["sandbox", "--port", "0", "--smtp-port", "0", "--state",
                                         str(tmp / "bad-state.json")], 1, "not JSON at line 1"),
        "sandbox --state not a state": Row(["sandbox", "--port", "0", "--smtp-port", "0", "--state",
                                            str(tmp / "list-state.json")], 1, "not a sandbox state file"),
        "run --issue abc": Row(["run", "--issue", "abc"], 2, "argument --issue"),
        "generate --users many": Row(["generate", "--email", "a@example.com", "--users", "many"], 2, "--users"),
        "find --ticket abc": Row(["find", "a@example.com", "--ticket", "abc"], 2, "--ticket"),
        "an unknown command": Row(["frobnicate"], 2, "invalid choice"),
    }
    return env, rows


def _secrets(env: dict, key_files) -> list[str]:
    pem = key_files[0].read_text().splitlines()
    return [TOKEN, SLACK, "h19slackSECRET", *SHORT.values(), *(line for line in pem if "-----" not in line)]


def _snapshot(root: Path) -> dict[str, str]:
    """Every file and link under root: a link by where it points, a file by its content's hash."""
    seen = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            seen[str(path)] = "-> " + os.readlink(path)
        elif path.is_file():
            seen[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return seen


def _cli(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    hidden = ("LICENSE_", "GITLAB_", "SMTP_", "SLACK_", "CI_", "TRIGGER_", "ZENDESK_")
    clean = {k: v for k, v in os.environ.items() if k != "CI" and not k.startswith(hidden)}
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, cwd=cwd, timeout=60,
                          env={**clean, "PYTHONPATH": str(ROOT), **env})


def _check(result: subprocess.CompletedProcess, row: Row, secrets: list[str], name: str) -> None:
    shown = result.stdout + result.stderr
    errors = [line for line in shown.splitlines() if line.startswith("license-bot: error:")]
    assert result.returncode == row.code, (name, result.returncode, shown)
    assert len(errors) == row.errors, (name, shown)
    assert "Traceback" not in shown and "internal error" not in shown, (name, shown)
    assert row.says in shown, (name, row.says, shown)
    for secret in secrets:
        assert secret not in shown, (name, secret, shown)


def _names() -> list[str]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return list(_world(Path(tmp), (Path(tmp) / "k", Path(tmp) / "k.pub"))[1])


@pytest.mark.parametrize("name", _names())
def test_every_command_answers_each_hostile_input_with_one_clean_line(name, tmp_path, key_files):
    env, rows = _world(tmp_path, key_files)
    row = rows[name]
    before = _snapshot(tmp_path)
    keys_before = [p.read_bytes() for p in key_files]
    result = _cli(row.args, {**env, **row.env}, tmp_path)
    _check(result, row, _secrets(env, key_files), name)
    assert _snapshot(tmp_path) == before, name  # every row is refused: nothing anywhere changed
    assert [p.read_bytes() for p in key_files] == keys_before
    assert not (tmp_path / "made-by-the-attacker").exists()


# Events a GitLab webhook (or someone who can trigger the pipeline) hands the bot.

def _event(**changes) -> dict:
    event = {"object_kind": "issue", "event_type": "confidential_issue", "user": {"username": "alice"},
             "project": {"id": 1, "path_with_namespace": "support/internal-requests"},
             "object_attributes": {"iid": 1, "action": "open"}}
    event.update(changes)
    return event


PAYLOADS = {
    "project is a list": (json.dumps(_event(project=[1])), "project is not an object"),
    "user is a text": (json.dumps(_event(user="x")), "user is not an object"),
    "iid is true": (json.dumps(_event(object_attributes={"iid": True})), "names no issue"),
    "iid is a text": (json.dumps(_event(object_attributes={"iid": "1"})), "names no issue"),
    "100,000 levels": ("[" * 100_000, "nested too deeply"),
    "100,000 levels of objects": ('{"a":' * 100_000, "nested too deeply"),
    "not JSON": ("{", "not JSON"),
    "a deleted issue": (json.dumps(_event(object_attributes={"iid": 999})), "#999 no longer exists"),
}


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_a_malformed_or_stale_webhook_event_is_a_quiet_one_line_no_op(name, bot, sandbox, tmp_path, key_pair):
    payload, says = PAYLOADS[name]
    client(sandbox.url).issues.create({"title": "x", "description": request_text(1)})
    path = tmp_path / "payload.json"
    path.write_text(payload)
    env = {**bot.env(), "CI_PIPELINE_SOURCE": "trigger", "TRIGGER_PAYLOAD": str(path), **SHORT}
    result = subprocess.run(bot.command(), capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    _check(result, Row([], 0, says, errors=0), [*SHORT.values(), "bot-token"], name)
    assert client(sandbox.url).issues.get(1).labels == ["license-request"]  # nothing was processed


def test_a_payload_file_larger_than_any_event_is_one_error_line(bot, tmp_path):
    path = tmp_path / "payload.json"
    path.write_bytes(b" " * (8 * files.MB + 1))
    env = {**bot.env(), "CI_PIPELINE_SOURCE": "trigger", "TRIGGER_PAYLOAD": str(path)}
    result = subprocess.run(bot.command(), capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    _check(result, Row([], 1, "larger than 8 MB"), ["bot-token"], "payload")


# Writes: one rule for every file (bot/files.py).

def test_a_write_replaces_a_planted_symlink_and_never_follows_it(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("victim")
    target = tmp_path / "license.gitlab-license"
    target.symlink_to(victim)
    with pytest.raises(files.FileError, match="exists already"):
        files.write(target, "KEY", "--download", force=False)
    files.write(target, "KEY", "--download", force=True)
    assert victim.read_text() == "victim" and not target.is_symlink() and target.read_text() == "KEY"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["license.gitlab-license", "victim.txt"]  # no temp left


def test_find_download_never_writes_through_the_old_predictable_temporary_name(tmp_path, monkeypatch):
    # The old code wrote `.NAME.PID` with write_text: a symlink planted there redirected the key anywhere.
    victim = tmp_path / "victim.txt"
    victim.write_text("victim")
    out = tmp_path / "dl"
    out.mkdir()
    (out / f".license.gitlab-license.{os.getpid()}").symlink_to(victim)

    class Entry:
        license_id, issue_iid, file_name = "L1", 7, "license.gitlab-license"

    class Recorded:
        entry, key_text = Entry(), "KEY TEXT"

    class Record:
        def entries(self):
            return [Recorded()]

    hit = find.Found(find.LICENSE, 7, "", "", "", "", None, None, None, "L1", "")
    written = find.download(Record(), [hit], out)
    assert [p.name for p, _ in written] == ["license.gitlab-license"]
    assert (out / "license.gitlab-license").read_text() == "KEY TEXT" and victim.read_text() == "victim"
    with pytest.raises(Exception, match="exists already"):
        find.download(Record(), [hit], out)


# Secrets: one scrubber.

def test_the_scrubber_drops_url_user_info_and_short_secrets_where_secrets_stand():
    scrub = Scrubber([TOKEN, *SHORT.values()])
    assert scrub(f"GET http://oauth2:{TOKEN}@gitlab.example.com/api") == "GET http://gitlab.example.com/api"
    assert scrub("http://u:Vw2x@h/ failed; password=Zq9, token: zdK8") == \
        "http://h/ failed; password=[secret], token: [secret]"
    # A short secret is taken out only where secrets stand: elsewhere it would blank out words.
    assert scrub("Zq9 appears in a word like Zq9x") == "Zq9 appears in a word like Zq9x"
    assert scrub("?private_token=anything&x=1") == "?private_token=[secret]&x=1"  # whoever's token it is


# Each description is parsed at most once per run (it was twice: "is it a request?", then "what does it ask?").

def test_a_description_is_parsed_once_per_run(config, private_key, monkeypatch):
    from .test_processor import World, filled, outcomes

    calls = []
    real = request._parse
    monkeypatch.setattr(request, "_parse", lambda *a: calls.append(1) or real(*a))
    request._parse_once.cache_clear()
    world = World(config, private_key)
    world.tracker.file(filled(), labels=())  # no label: the form marker makes it a request
    assert outcomes(world.run()) == ["succeeded"]
    assert len(calls) == 1


# The README's test command on a machine without the Debian packages the tests use.

def test_the_readme_test_command_names_the_missing_debian_packages_and_stops(tmp_path):
    import shutil

    bin_dir = tmp_path / "bin"  # python3 and the basics, but no openssl, chromium, softhsm2-util or apt-get
    bin_dir.mkdir()
    for tool in ("python3", "dirname", "id"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    result = subprocess.run([shutil.which("bash"), str(ROOT / ".ci" / "test")], capture_output=True, text=True,
                            timeout=60, env={"PATH": str(bin_dir), "HOME": str(tmp_path)})
    assert result.returncode == 1, result.stderr
    assert "the tests need these Debian packages, which are missing: openssl chromium softhsm2" in result.stderr
    assert "sudo apt-get install openssl chromium softhsm2" in result.stderr
    assert "pytest" not in result.stdout + result.stderr
