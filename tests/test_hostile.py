"""Issue 10's findings, one test each: what a Guest, a careless Maintainer or a 3 a.m. operator did to the
bot, and what it must do instead. Each failed on the code before the record of issued licenses."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta

import pytest
import yaml

from bot import config as config_mod
from bot import keys, request
from bot.license import LicenseError, decode
from bot.mailer import MailError

from .e2e import ROOT, client, mail, post, request_text, status_notes
from .fakes import NOW
from .test_cli_license import run_cli
from .test_processor import World, filled, outcomes


@pytest.fixture
def world(config, private_key):
    return World(config, private_key)


# 1. One issue stalled every run: the email regex backtracked at every start position.

def test_1_a_megabyte_under_customer_email_is_a_field_error_not_a_stall(world):
    hostile = request.FORM_MARKER.join(("<!-- ", " -->\n")) + "### Customer email\n" + "a" * 1_048_000
    parsed = request.parse(hostile)
    assert [e.field for e in parsed.errors] == ["email"] and "1,048,000 characters long" in parsed.errors[0].message
    world.tracker.file(hostile, author="mallory", author_id=66)
    world.tracker.file(filled())
    assert outcomes(world.run()) == ["failed", "succeeded"]  # the next request is served in the same run


# 2. Forged records were trusted.

def test_2_a_forged_success_issue_neither_blocks_nor_counts(world):
    forged = world.tracker.file("x", title="[Success] - Created a license under victim99@example.com for 5 users",
                                labels=("license-request::success",), author="rita", author_id=20)
    world.tracker.issues[forged.iid] = replace(forged, state="closed", closed_at=NOW)
    world.tracker.file(filled(email_="victim99@example.com"))
    assert outcomes(world.run()) == ["succeeded"]  # the genuine request is not refused by a title anyone can type


# 3. The cooldown missed licenses in flight.

def test_3_a_license_waiting_for_its_email_counts_for_the_cooldown(world):
    world.tracker.file(filled())
    world.mailer.fail = [MailError("could not reach the mail server", permanent=False)]
    assert outcomes(world.run()) == ["retrying"]
    world.tracker.file(filled(ticket="600001"))  # same address, another ticket
    assert outcomes(world.run()) == ["succeeded", "failed"]
    assert "jane.doe@example.com already got a license in #1" in world.note(2).body
    assert [m["To"] for m in world.mailer.sent] == ["jane.doe@example.com"]  # once, A's


# 4. A deleted status note reopened a ticket.

def test_4_erasing_the_status_note_never_yields_a_second_license(world):
    world.tracker.file(filled())
    world.run()
    world.tracker.notes[1] = [n for n in world.tracker.notes[1] if "license-bot:status" not in n.body]
    issue = world.issue()
    world.tracker.issues[1] = replace(issue, state="opened", description=filled(email_="other@example.com"))
    assert outcomes(world.run()) == ["failed"]
    assert len(world.tracker.uploads) == 1 and len(world.mailer.sent) == 1
    assert world.status().step == "held" and "a person must look" in world.note().body
    # Issue 18: an open issue held for a person does not keep its [Success] title; a search still finds it.
    assert world.issue().title == "[Held] - Created a license under jane.doe@example.com for 250 users"
    assert "`license-bot find jane.doe@example.com`" in world.note().body and "[success]" not in world.note().body
    assert outcomes(world.run()) == ["skipped"]  # and it stays that way


def test_4_erasing_the_note_and_the_record_entry_still_never_yields_a_second_license(world):
    world.tracker.file(filled())
    world.run()
    world.tracker.notes[1] = [n for n in world.tracker.notes[1] if "license-bot:status" not in n.body]
    world.tracker.erase_record_entries()
    world.tracker.issues[1] = replace(world.issue(), state="opened", labels=("license-request",),
                                      description=filled(email_="other@example.com"))
    assert outcomes(world.run()) == ["failed"]  # the label history shows the bot claimed it
    assert len(world.tracker.uploads) == 1 and len(world.mailer.sent) == 1


# 5. Reopening re-sent, even an expired key.

@pytest.mark.parametrize("days_later", [0, 40])
def test_5_a_reopened_success_is_closed_again_and_never_re_emailed(world, days_later):
    world.tracker.file(filled())
    world.run()
    world.tracker.issues[1] = replace(world.issue(), state="opened")
    assert outcomes(world.run(now=NOW + timedelta(days=days_later))) == ["skipped"]
    assert world.issue().state == "closed" and len(world.mailer.sent) == 1
    assert "Reopened after its license was emailed" in world.note().body


def test_5_an_expired_key_is_never_sent_even_when_a_person_asks(world):
    world.tracker.file(filled())
    world.mailer.fail = [MailError("refused", permanent=True)]
    world.run()
    world.tracker.label_as(1, "license-request::processing", "alice", 10)  # 40 days later: "send it again"
    world.tracker.issues[1] = replace(world.issue(), updated_at=NOW + timedelta(days=40))
    assert outcomes(world.run(now=NOW + timedelta(days=40))) == ["failed"]
    assert world.mailer.sent == [] and "GitLab would no longer accept this license" in world.note().body


# 6. A blind token looked like a quiet day.

def test_6_a_token_that_cannot_see_confidential_issues_fails_run_and_find(bot, sandbox):
    client(sandbox.url).issues.create({"title": "x", "description": request_text(1)})
    env = {**bot.env(), "GITLAB_TOKEN": "mallory-token", "LICENSE_PUBLIC_KEY_FILE": str(bot.public_key)}
    for args in (["run"], ["find", "admin1@customer1.example.com"]):
        result = subprocess.run([sys.executable, "-m", "bot", "--config", str(bot.config_path), *args],
                                capture_output=True, text=True, env=env, timeout=60)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert "Guest role" in result.stderr and "Reporter" in result.stderr
        assert "found 0" not in result.stdout and "nothing found" not in result.stdout


# 7. Errors that never ended.

def test_7_an_absurd_date_is_a_field_error_everywhere(tmp_path):
    parsed = request.parse(filled(expired="9999-12-31"))
    assert [e.field for e in parsed.errors] == ["expired_on"] and "not a plausible" in parsed.errors[0].message
    doc = tmp_path / "r.md"
    doc.write_text(filled(expired="9999-12-31"))
    result = run_cli("check-request", str(doc))
    assert result.returncode == 1 and "Traceback" not in result.stderr + result.stdout


def test_7_a_from_address_that_would_add_a_header_is_a_configuration_error():
    with pytest.raises(config_mod.ConfigError, match="smtp.from: expected one address"):
        config_mod.parse({"smtp": {"from": "a@example.com\r\nBcc: x@evil.example"}}, {})


def test_7_a_login_the_mail_server_cannot_offer_stops_the_run_before_any_request(bot, sandbox):
    issue = client(sandbox.url).issues.create({"title": "x", "description": request_text(1)})
    bot.write_config(username="bot@example.com")
    env = {**bot.env(), "SMTP_PASSWORD": "hunter2-secret"}
    result = subprocess.run(bot.command(), capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1 and "does not offer a login (no AUTH)" in result.stderr
    assert "STARTTLS" not in result.stderr and "hunter2-secret" not in result.stderr + result.stdout
    issue = client(sandbox.url).issues.get(issue.iid)
    assert issue.labels == ["license-request"] and status_notes(issue) == []  # untouched: no attempt used up


# 8. The CLI trusted its user too much.

def test_8_generate_never_overwrites_the_signing_key_or_signs_nonsense(key_files, tmp_path):
    private_path, _ = key_files
    before = private_path.read_bytes()
    base = ["generate", "--private-key", str(private_path)]
    cases = [
        (["--email", "a@example.com", "--users", "5", "--output", str(private_path)], "exists already"),
        (["--email", "not an email", "--users", "5"], "--email"),
        (["--email", "a@example.com\nBcc: b@example.com", "--users", "5"], "--email"),
        (["--email", "a@example.com", "--users", "1000000000000"], "--users"),
        (["--email", "a@example.com", "--users", "5", "--date", "2020-01-01"], "already expired"),
        (["--email", "a@example.com", "--users", "5", "--date", "9999-12-31"], "outside"),
        (["--email", "a@example.com", "--users", "5", "--output", str(tmp_path)], "is a folder"),
        (["--email", "a@example.com", "--users", "5", "--output", str(tmp_path / "no" / "x")], "does not exist"),
    ]
    for args, says in cases:
        result = run_cli(*base, *args)
        assert result.returncode != 0 and says in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert private_path.read_bytes() == before


def test_8_run_report_to_an_unwritable_path_fails_before_any_email(bot, sandbox, tmp_path):
    client(sandbox.url).issues.create({"title": "x", "description": request_text(1)})
    result = bot.run("--report", str(tmp_path / "missing" / "report.json"))
    assert result.returncode == 1 and "--report" in result.stderr and "does not exist" in result.stderr
    assert mail(sandbox.url) == []


def test_8_the_sandbox_on_a_busy_port_says_which_port():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("sandbox", "--port", str(port), "--smtp-port", "0")
    assert result.returncode == 1 and f"port {port}" in result.stderr and "Traceback" not in result.stderr


# 9. A secret could reach an issue.

def test_9_a_slack_reply_that_echoes_the_webhook_never_reaches_the_issue(config, private_key):
    from bot import runner
    from bot.scrub import Scrubber
    from bot.slack import SlackError

    from .fakes import FakeNotifier

    secret_url = "https://hooks.slack.com/services/T000/B000/XyZsecretWebhookPath"

    class Echoing(FakeNotifier):
        def post(self, text):
            raise SlackError("Slack answered 404: no_service for /services/T000/B000/XyZsecretWebhookPath")

    w = World(replace(config, slack=replace(config.slack, enabled=True)), private_key)
    w.notifier = Echoing()
    w.tracker.file(filled())
    w.tracker.new_run()
    ctx = runner.Context(config=w.config, tracker=w.tracker, mailer=w.mailer, signer=w.key, now=NOW,
                         notifier=w.notifier, scrub=Scrubber([secret_url]))
    runner.run(ctx, say=lambda _: None)
    body = w.note().body
    assert "Slack post failed" in body and "XyZsecretWebhookPath" not in body and "[secret]" in body


# 10. The parser read what GitLab does not render, and missed what it does.

def test_10_setext_headings_are_headings():
    doc = filled().replace("### Customer email\n", "Customer email\n==============\n")
    assert request.parse(doc).request.email == "jane.doe@example.com"


@pytest.mark.parametrize("wrap", [lambda line: "    " + line, lambda line: "> " + line])
def test_10_a_field_in_indented_code_or_a_blockquote_is_not_a_value(wrap):
    doc = "Some context first.\n\n" + wrap("Customer email: mallory@evil.example") + "\n\n" + filled()
    assert request.parse(doc).request.email == "jane.doe@example.com"


# 11. Small things.

def test_11_gitlab_project_true_is_refused():
    with pytest.raises(config_mod.ConfigError, match="gitlab.project: expected a project path"):
        config_mod.parse({"gitlab": {"project": True}}, {})


def test_11_find_needs_a_whole_address_and_no_private_key(bot, sandbox, key_pair):
    env = {**bot.env(), "LICENSE_PUBLIC_KEY_FILE": str(bot.public_key),
           "LICENSE_PRIVATE_KEY": key_pair[0].read_text()}  # both key variables: find needs neither
    run = [sys.executable, "-m", "bot", "--config", str(bot.config_path), "find"]
    empty = subprocess.run([*run, ""], capture_output=True, text=True, env=env, timeout=60)
    assert empty.returncode == 1 and "not an email address" in empty.stderr
    ok = subprocess.run([*run, "nobody@example.com"], capture_output=True, text=True, env=env, timeout=60)
    assert ok.returncode == 3, ok.stderr


def test_11_a_public_key_in_the_file_variable_is_named_as_that_variable(key_files):
    _, public_path = key_files
    secrets = config_mod.secrets_from_env({"LICENSE_PRIVATE_KEY_FILE": str(public_path)})
    with pytest.raises(keys.SigningKeyError, match=r"LICENSE_PRIVATE_KEY_FILE \(.*\) holds a public key"):
        keys.private_key_from(secrets)


def test_11_a_lone_carriage_return_after_the_end_line_is_refused_as_the_gem_does(vector):
    damaged = vector["boundary"].rstrip("\n") + "\r"
    with pytest.raises(LicenseError, match="BEGIN or END line is damaged"):
        decode(damaged, vector["public"])
    assert decode(vector["boundary"], vector["public"]).user_count  # the undamaged key still decodes


def test_11_one_user_is_one_user():
    from bot import messages

    assert messages.success_title("a@b.co", 1) == "[Success] - Created a license under a@b.co for 1 user"
    assert messages.parse_success_title("[Success] - Created a license under a@b.co for 1 user") == ("a@b.co", 1)


# Every command, bad input: exit 1 and one line `license-bot: error: …`, never a traceback.

def _bad_inputs(tmp_path, key_files):
    private_path, public_path = key_files
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("smtp:\n  from: Ren\xe9 <r@example.com>\n".encode("latin-1"))
    broken_yaml = tmp_path / "broken.yaml"
    broken_yaml.write_text("gitlab: [unclosed\n")
    not_a_key = tmp_path / "not-a-key.pem"
    not_a_key.write_text("hello")
    existing = tmp_path / "existing.txt"
    existing.write_text("keep me")
    garbage = tmp_path / "garbage.gitlab-license"
    garbage.write_bytes(b"\xff\xfe not base64 \x00")
    down = {"GITLAB_URL": "http://127.0.0.1:9", "CI_PROJECT_PATH": "support/internal-requests",
            "GITLAB_TOKEN": "t", "LICENSE_PUBLIC_KEY_FILE": str(public_path)}
    return [
        (["--config", str(latin1), "doctor"], {}),
        (["--config", str(broken_yaml), "run"], {}),
        (["--config", str(tmp_path / "missing.yaml"), "find", "a@b.co"], {}),
        (["keygen", "--out", str(existing)], {}),
        (["generate", "--email", "a@b.co", "--users", "5", "--private-key", str(not_a_key)], {}),
        (["generate", "--email", "a@b.co", "--users", "5", "--private-key", str(private_path),
          "--output", str(existing)], {}),
        (["inspect", str(garbage), "--public-key", str(public_path)], {}),
        (["inspect", str(tmp_path / "missing"), "--public-key", str(public_path)], {}),
        (["inspect", str(garbage), "--public-key", str(private_path)], {}),
        (["check-request", str(tmp_path / "missing.md")], {}),
        (["run"], {"GITLAB_URL": "http://127.0.0.1:9"}),
        (["run", "--report", str(tmp_path)], {}),
        (["run"], {**down, "LICENSE_PRIVATE_KEY_FILE": str(private_path)}),
        (["find", "a@b.co"], down),
        (["find", "a@b.co"], {**down, "LICENSE_PUBLIC_KEY_FILE": str(not_a_key)}),
        (["find", "@"], down),
        (["setup"], {}),
    ]


def test_every_command_answers_bad_input_with_one_error_line(tmp_path, key_files):
    for args, env in _bad_inputs(tmp_path, key_files):
        result = run_cli(*args, env=env)
        errors = [line for line in result.stderr.splitlines() if line.startswith("license-bot: error: ")]
        assert result.returncode == 1, (args, result.returncode, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout, (args, result.stderr)
        assert len(errors) == 1, (args, result.stderr)
    assert (tmp_path / "existing.txt").read_text() == "keep me"


def test_secrets_never_appear_in_any_error(tmp_path, key_files):
    private_path, _ = key_files
    secret_env = {"GITLAB_TOKEN": "glpat-VERY-SECRET-123", "SMTP_PASSWORD": "smtp-secret-456",
                  "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T1/B1/slack-secret-789",
                  "GITLAB_URL": "http://127.0.0.1:9", "CI_PROJECT_PATH": "support/internal-requests",
                  "LICENSE_PRIVATE_KEY_FILE": str(private_path)}
    pem_line = private_path.read_text().splitlines()[3]
    for args, env in _bad_inputs(tmp_path, key_files):
        result = run_cli(*args, env={**secret_env, **env})
        shown = result.stdout + result.stderr
        for secret in ("glpat-VERY-SECRET-123", "smtp-secret-456", "slack-secret-789", pem_line):
            assert secret not in shown, (args, secret)


def test_the_report_never_holds_a_secret(bot, sandbox):
    report = bot.workdir / "report.json"
    env = {**bot.env(), "GITLAB_TOKEN": "glpat-wrong-but-secret"}
    subprocess.run(bot.command("--report", str(report)), capture_output=True, text=True, env=env, timeout=60)
    data = json.loads(report.read_text())
    assert data["exit_code"] == 1 and "glpat-wrong-but-secret" not in report.read_text()


def test_the_config_written_by_the_tests_is_valid(bot):
    assert yaml.safe_load(bot.config_path.read_text())["gitlab"]["project"] == "support/internal-requests"
    assert ROOT.exists() and post  # helpers used above
