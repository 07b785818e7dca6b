"""Issue 20, findings 4, 5 and 6, through the real CLI: the ticket link the bot writes is the one it builds,
nothing a user wrote can drive the terminal, and the run's report and log name no customer."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .e2e import ROOT, client, mail, request_text, status_notes
from .test_cli_license import run_cli

BYPASS = "https://evil.example\\@gitlab.zendesk.com/agent/tickets/512000"


def _check(ticket: str, **more) -> subprocess.CompletedProcess:
    text = request_text(1, ticket=ticket, **more)
    return subprocess.run([sys.executable, "-m", "bot", "check-request", "-"], input=text, capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "COLUMNS": "1000"},
                          timeout=60)


# --- Finding 20.4: canonical links ----------------------------------------------------------------------------------

@pytest.mark.parametrize("url,why", [
    (BYPASS, "has a backslash in it"),  # urlsplit sees gitlab.zendesk.com; a browser goes to evil.example
    ("https://evil.example@gitlab.zendesk.com/agent/tickets/512000", "has a user name before the host"),
    ("https://gitlab.zendesk.com:8443/agent/tickets/512000", "names port 8443"),
    ("http://gitlab.zendesk.com/agent/tickets/512000", "is an http link, not https"),
    ("https://gitlab.zendesk.com.evil.example/agent/tickets/512000", "is not a ticket on gitlab.zendesk.com"),
])
def test_a_ticket_url_a_browser_would_take_elsewhere_is_refused(url, why):
    result = _check(url)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("- Zendesk ticket:"))
    assert why in line and "paste the Zendesk ticket's URL (https://gitlab.zendesk.com/agent/tickets/NUMBER)" in line


def test_a_valid_ticket_url_is_written_as_the_link_the_bot_builds():
    result = _check("<HTTPS://GitLab.Zendesk.com:443/agent/tickets/512000/?utm_source=evil.example#comment>")
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines()[0].endswith("(ticket https://gitlab.zendesk.com/agent/tickets/512000)")


def test_the_status_note_record_and_email_carry_the_built_link_not_the_typed_one(bot, sandbox):
    typed = "https://gitlab.zendesk.com/agent/tickets/512000?next=https://evil.example/login"
    issue = client(sandbox.url).issues.create({"title": "Emergency", "description": request_text(1, ticket=typed)})
    assert bot.run().returncode == 0
    bot_view = client(sandbox.url, "bot-token")
    notes = [n.body for i in bot_view.issues.list(get_all=True, state="all") for n in i.notes.list(get_all=True)]
    assert any("https://gitlab.zendesk.com/agent/tickets/512000" in body for body in notes)
    assert not any("evil.example" in body for body in notes)  # status note and record entry alike
    assert len(status_notes(bot_view.issues.get(issue.iid))) == 1
    (sent,) = mail(sandbox.url)
    assert "evil.example" not in sent["message"].as_string()


# --- Finding 20.5: clean terminals ----------------------------------------------------------------------------------

HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\ \x9b2J\x7f\x08\r\x1bc"


def _clean_bytes(data: bytes) -> bool:
    """No byte below 0x20 but newline and tab, no DEL, and no C1 control (U+0080 to U+009F) once decoded."""
    text = data.decode("utf-8")
    return all(b >= 0x20 or b in (0x09, 0x0A) for b in data) and 0x7F not in data and \
        not any("\x80" <= c <= "\x9f" for c in text)


def test_no_control_character_reaches_the_terminal_from_check_request():
    text = request_text(1, ticket=f"512000 {HOSTILE}", email=f"jane{HOSTILE}@example.com", users=f"lots{HOSTILE}")
    for args in (["-"], ["-", "--json"], ["-", "--author", f"bob{HOSTILE}"]):
        result = subprocess.run([sys.executable, "-m", "bot", "check-request", *args], input=text.encode(),
                                capture_output=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
                                timeout=60)
        assert result.returncode == 1
        assert _clean_bytes(result.stdout) and _clean_bytes(result.stderr), result.stdout


def test_no_control_character_reaches_the_terminal_from_run_dry_run_and_find(bot, sandbox):
    """A Guest's title cleared the screen and retitled the terminal; an OSC 8 link survived a cut."""
    client(sandbox.url, "mallory-token").issues.create(
        {"title": f"license {HOSTILE} pls", "description": request_text(1, users=f"300 {HOSTILE}")})
    client(sandbox.url).issues.create({"title": f"Emergency {HOSTILE}", "description": request_text(
        2, email="jane@example.com", users=f"lots {HOSTILE}", expired=f"{HOSTILE} 2026-11-12")})
    outputs = [subprocess.run(bot.command(*args), capture_output=True, env=bot.env(), timeout=120)
               for args in (["--dry-run"], [])]
    env = {**bot.env(), "LICENSE_PUBLIC_KEY_FILE": str(bot.public_key)}
    outputs.append(subprocess.run([sys.executable, "-m", "bot", "--config", str(bot.config_path), "find",
                                   "jane@example.com"], capture_output=True, env=env, timeout=120))
    assert b"Open requests for jane@example.com" in outputs[-1].stdout
    for result in outputs:
        assert _clean_bytes(result.stdout) and _clean_bytes(result.stderr), result.stdout[-2000:]


def test_a_recorded_ticket_url_ending_in_esc_c_does_not_reset_the_terminal_of_find(bot, sandbox):
    """A record entry written before links were built (its ticket URL as typed, ESC c at the end): every later
    `find` printed it raw and reset the engineer's terminal. Such entries are the old record issue's unsigned
    comments (issue 16 signs every field of a new entry, so an edited one is not trusted at all)."""
    from datetime import date

    from bot import keys
    from bot import license as lic_mod
    from bot.record import ISSUE_TITLE, Entry, entry_note

    private = keys.load_private_key(bot.private_key.read_bytes())
    lic = lic_mod.build_trial("jane@example.com", 40, date.today(), lic_mod.TrialTerms())
    key = lic_mod.sign(lic, private, date.today(), boundary=lic_mod.DEFAULT_BOUNDARY)
    typed = "https://gitlab.zendesk.com/agent/tickets/512001\x1bc\x1b]8;;https://evil.example\x07"
    old = Entry(lic_mod.license_id(key), lic_mod.fingerprint(key), 1, "u", "jane@example.com", 40, 512001, typed,
                date.today().isoformat(), str(lic.expires_at), "f.gitlab-license")
    as_bot = client(sandbox.url, "bot-token")
    legacy = as_bot.issues.create({"title": ISSUE_TITLE, "description": "the old record", "confidential": True})
    legacy.notes.create({"body": entry_note(old, key)})  # as the code before signing wrote it
    assert '\\u001bc' in legacy.notes.list(get_all=True)[0].body  # the escape is in the record, as JSON
    env = {**bot.env(), "LICENSE_PUBLIC_KEY_FILE": str(bot.public_key)}
    found = subprocess.run([sys.executable, "-m", "bot", "--config", str(bot.config_path), "find", "jane@example.com"],
                           capture_output=True, env=env, timeout=120)
    assert found.returncode == 0 and b"ticket https://gitlab.zendesk.com/agent/tickets/512001  issue" in found.stdout
    assert _clean_bytes(found.stdout) and _clean_bytes(found.stderr)


def test_an_internal_error_cut_to_length_leaves_no_sequence_open():
    result = run_cli("check-request", f"/nonexistent/{HOSTILE * 30}")
    assert result.returncode == 1 and _clean_bytes(result.stderr.encode())


# --- Finding 20.6: quiet artifacts and logs -------------------------------------------------------------------------

def test_report_json_and_the_log_name_no_customer(bot, sandbox, tmp_path):
    good = client(sandbox.url).issues.create(
        {"title": "Emergency", "description": request_text(1, email="jane.doe@customer-one.example")})
    bad = client(sandbox.url).issues.create(
        {"title": "Emergency", "description": request_text(2, email="ops@customer-two.example",
                                                           users="about-four-hundred-seats")})
    report = tmp_path / "report.json"
    result = bot.run("--report", str(report))
    assert result.returncode == 0, result.stderr
    text = report.read_text()
    for leaked in ("customer-one.example", "customer-two.example", "about-four-hundred-seats", "jane.doe"):
        assert leaked not in text and leaked not in result.stdout + result.stderr, leaked
    data = json.loads(text)
    (license_id,) = data["recorded"]
    assert data["results"] == [
        {"iid": good.iid, "outcome": "succeeded", "license_id": license_id, "fields": [], "reason": None},
        {"iid": bad.iid, "outcome": "failed", "license_id": None, "fields": ["user_count"], "reason": None}]
    assert result.stdout.splitlines()[:4] == ["2 requests to process", f"#{good.iid} succeeded: license {license_id}",
                                              f"#{bad.iid} failed: 1 problem", "    User count"]
    assert result.stdout.splitlines()[-1] == f"failed: #{bad.iid} (each status note says what to do)"


def test_the_terminal_filter_removes_sequences_whole_and_a_cut_never_leaves_one_open():
    from bot.terminal import clean, cut

    link = "\x1b]8;;https://evil.example\x1b\\click here\x1b]8;;\x1b\\"
    assert clean(f"a {link} b") == "a click here b"
    assert clean("tab\tand\nnewline stay; \rCR \x08BS \x7fDEL \x85NEL \u202eRLO go") == \
        "tab\tand\nnewline stay; CR BS DEL NEL RLO go"
    assert clean("undecodable \udcff byte") == "undecodable \ufffd byte"
    assert clean("ünïcödé ✓ stays") == "ünïcödé ✓ stays"
    for limit in range(1, 40):
        assert "\x1b" not in cut(link * 3, limit) and len(cut(link * 3, limit)) <= limit
