"""What people read, as they read it: the customer's email (in a real browser, on a phone and a desktop),
the status note at each step, and the terminal. Golden files make every wording change a reviewed diff."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest

from bot import license as lic_mod
from bot import messages, policy, request, runner
from bot.mailer import Delivery, build_message
from bot.processor import Result
from bot.status import Status

from . import golden
from .conftest import TODAY

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=timezone.utc)


@pytest.fixture
def delivery(config, vector):
    lic = lic_mod.build_trial("jane.doe@example.com", 250, TODAY, config.license.terms)
    key = lic_mod.sign(lic, vector["private"], TODAY, boundary=lic_mod.DEFAULT_BOUNDARY, aes_key=vector["aes_key"],
                       iv=vector["iv"])
    return Delivery(license=lic, key_text=key, license_id=lic_mod.license_id(key), file_name=lic_mod.file_name(lic),
                    ticket_url="https://gitlab.zendesk.com/agent/tickets/512345", ticket_id=512345)


def _parts(message):
    return (message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content())


def test_the_email_reads_in_order_and_matches_its_golden_files(config, delivery):
    text, html = _parts(build_message(delivery, config.smtp, NOW, 10))
    golden.check("email.txt", text)
    golden.check("email.html", html)
    # What happened first, the steps in GitLab's current words, the key right after them, the signature last.
    order = ["read-only", "In the left sidebar, at the bottom, select Admin", "Terms of Service", "BEGIN GITLAB",
             "END GITLAB", "writable again at once", "Maximum users", "Dates:", "GitLab Support"]
    positions = [text.index(marker) for marker in order]
    assert positions == sorted(positions)
    assert delivery.key_text in text and "Admin Area > License" in text  # the older path as a fallback


def test_reply_to_this_email_only_where_a_reply_reaches_support(config, delivery):
    plain = build_message(delivery, config.smtp, NOW, 10)
    assert plain["Reply-To"] is None and "reply to this email" not in _parts(plain)[0].lower()
    assert "update your support ticket (https://gitlab.zendesk.com/agent/tickets/512345)" in _parts(plain)[0]
    with_reply = build_message(delivery, replace(config.smtp, reply_to="support@example.com"), NOW, 10)
    assert with_reply["Reply-To"] == "support@example.com" and "reply to this email" in _parts(with_reply)[0]
    assert plain["Auto-Submitted"] == "auto-generated"


def test_the_html_is_a_whole_document(config, delivery):
    html = _parts(build_message(delivery, config.smtp, NOW, 10))[1]
    assert '<html lang="en">' in html and "<title>" in html and 'name="viewport"' in html
    assert 'name="color-scheme" content="light dark"' in html


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
MEASURE = """<script>
const root = document.documentElement, key = document.getElementById('license-key');
const result = {scrollWidth: root.scrollWidth, clientWidth: root.clientWidth, key: key.textContent,
                keyRight: key.getBoundingClientRect().right,
                background: getComputedStyle(document.body).backgroundColor};
const out = document.createElement('pre'); out.id = 'measured'; out.textContent = JSON.stringify(result);
document.body.appendChild(out);
</script></body>"""


def render(html: str, width: int, dark: bool = False) -> dict:
    """The email in Debian's Chromium, headless, at this window width: what it measured on the page."""
    assert CHROMIUM, "Chromium is not installed: apt-get install chromium (bash .ci/test does it)"
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "email.html"
        page.write_text(html.replace("</body>", MEASURE, 1), encoding="utf-8")
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp}/profile", f"--window-size={width},900", "--virtual-time-budget=3000",
                 "--hide-scrollbars"]
        if dark:
            flags.append("--blink-settings=preferredColorScheme=0")  # Blink: 0 dark, 1 light
        dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                             timeout=90).stdout
    match = re.search(r'<pre id="measured">(.*?)</pre>', dom, re.S)
    assert match, dom[-2000:]
    return json.loads(match.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))


@pytest.mark.parametrize("width", [360, 1024])
def test_the_email_reads_on_a_phone_and_a_desktop_without_sideways_scrolling(config, delivery, width):
    html = _parts(build_message(delivery, config.smtp, NOW, 10))[1]
    measured = render(html, width)
    assert measured["scrollWidth"] <= measured["clientWidth"], measured
    assert measured["keyRight"] <= measured["clientWidth"]
    assert measured["key"] == delivery.key_text  # the key block copies back as the original key


def test_the_email_has_a_dark_mode(config, delivery):
    html = _parts(build_message(delivery, config.smtp, NOW, 10))[1]
    light, dark = render(html, 360), render(html, 360, dark=True)
    assert light["background"] == "rgb(255, 255, 255)" and dark["background"] != light["background"]


# --- the status note at each step ----------------------------------------------------------------------

def _status(delivery, **changes) -> Status:
    base = Status(step="persisted", description_sha256="0" * 64, judged_at=NOW.isoformat(), author="alice",
                  license_id=delivery.license_id, license_sha256=lic_mod.fingerprint(delivery.key_text),
                  email="jane.doe@example.com", user_count=250, ticket_url=delivery.ticket_url, ticket_id=512345,
                  issued_at="2026-11-26", expires_at="2026-12-07", file_name=delivery.file_name,
                  upload_markdown=f"[{delivery.file_name}](/uploads/0123456789abcdef0123456789abcdef/"
                                  f"{delivery.file_name})")
    return replace(base, **changes)


STEPS = {
    "made": {},
    "retrying": {"attempts": 2, "last_error": "could not reach the mail server smtp.example.com:587: timed out"},
    "delivered": {"step": "delivered", "emailed_at": "2026-11-27T03:00:05+00:00", "attempts": 1,
                  "message_id": "<license-abc@example.com>"},
    "undelivered": {"step": "undelivered", "attempts": 1,
                    "last_error": "the mail server refused the recipient (550 no such user)"},
    "held": {"step": "held", "last_error": "its license was emailed and the issue closed [Success] before, then the "
                                           "bot's status note was deleted"},
}


@pytest.mark.parametrize("step", STEPS)
def test_the_status_note_says_what_is_true_at_each_step(delivery, step):
    status = _status(delivery, **STEPS[step])
    body = messages.status_note(status, key_text=delivery.key_text, duration_days=10, max_attempts=5,
                                labels={"failed": "license-request::failed",
                                        "processing": "license-request::processing"})
    golden.check(f"status-note-{step}.md", body)
    assert "| |" not in body  # no empty table header
    if step != "delivered":
        assert "was emailed to" not in body and "closed as `[Success]`" not in body
    if step in ("undelivered", "held", "retrying"):
        assert ":white_check_mark:" not in body


def test_a_rejected_request_lists_each_problem_and_each_checklist_box_apart():
    parsed = request.parse("### Zendesk ticket\n512345\n### Customer email\njane@example.com\n### User count\n"
                           "about 300 <maybe>\n### License expiration date\n2026-11-13\n### Checklist\n"
                           "- [ ] The customer has a paid plan and is not a prospect\n- [ ] Both screenshots\n")
    verdict = policy.evaluate(parsed, TODAY, _policy(), _tickets())
    checklist = [e for e in verdict.errors if e.field == "checklist"]
    assert len(checklist) == 2  # one message per box, never two boxes in one sentence
    status = Status(step="rejected", description_sha256="0", judged_at=NOW.isoformat(), author="alice",
                    errors=tuple((e.field, e.message) for e in verdict.errors))
    body = messages.status_note(status, duration_days=10, max_attempts=5, labels={"failed": "f", "processing": "p"})
    golden.check("status-note-rejected.md", body)


def _policy():
    from bot import config as config_mod

    return config_mod.parse({}, {}).policy


def _tickets():
    from bot import config as config_mod

    return config_mod.parse({}, {}).tickets


def test_a_failed_request_in_the_terminal_is_one_line_and_one_indented_line_per_problem(config, private_key):
    from .fakes import FakeMailer, FakeTracker

    ctx = runner.Context(config=config, tracker=FakeTracker(), mailer=FakeMailer(crash=None), signer=private_key,
                         now=NOW)
    ctx.tracker.file("### Zendesk ticket\n512345\n### Customer email\nsomeone@gitlab.com\n### User count\nlots\n"
                     "### License expiration date\n11/12/2026\n### Checklist\n- [x] paid plan\n- [x] screenshots\n")
    lines: list[str] = []
    summary = runner.run(ctx, say=lines.append)
    golden.check("terminal-failed-request.txt", "\n".join(lines) + "\n")
    assert lines[0] == "#1 failed: 3 problems" and all(line.startswith("    ") for line in lines[1:])
    assert not any("`" in line or "**" in line or "expired_on" in line for line in lines)
    assert summary.failed == 1


def test_results_are_plain_values():
    assert Result(1, "failed", "x").problems == ()


def test_doctor_reads_as_plain_sentences_with_each_fix_once():
    from bot import doctor

    checks = [doctor.Check("GitLab reachable, token valid", False, "GitLab refused the token (401)",
                           "make a new project access token"),
              *[doctor.Check(n, None, "needs GitLab, which could not be reached") for n in ("labels", "token")],
              doctor.Check("mail server", True, "mail.example.net:25 accepts a connection without encryption; no mail "
                           "was sent. License keys would cross the network in plain text",
                           "set smtp.security to starttls or ssl", warn=True),
              doctor.Check("Slack", True, "disabled"), doctor.Check("CI", None, "this is not a GitLab CI job")]
    golden.check("doctor.txt", "\n".join(doctor.lines(checks)) + "\n")


def test_plaintext_mail_is_a_warning_only_off_this_machine():
    from bot.doctor import crosses_network

    assert not crosses_network("localhost") and not crosses_network("127.0.0.1")
    assert crosses_network("192.0.2.10")  # TEST-NET-1: never on this machine


def test_find_labels_its_dates_and_shows_the_license_id():
    from bot.find import LICENSE, NOT_THE_BOTS, OPEN, Found

    url = "https://gitlab.example.com/support/internal-requests/-/issues/"
    hits = [Found(LICENSE, 12, url + "12", "t", "2026-11-27", "jane@example.com", 250,
                  "https://gitlab.zendesk.com/agent/tickets/512345", "2026-12-07", "3f437e97f4c64a48",
                  "emailed to jane@example.com on 2026-11-27 03:00 UTC"),
            Found(NOT_THE_BOTS, 13, url + "13", "[Success] - Created a license under jane@example.com for 99999 users",
                  "2026-11-28", "jane@example.com", 99999, None, None, None, "no license in the bot's record"),
            Found(OPEN, 14, url + "14", "t", "2026-11-28", "jane@example.com", 250, None, None, None,
                  "failed: User count: `about 300` is not exact")]
    text = "\n".join(line for hit in hits for line in hit.lines()) + "\n"
    golden.check("find.txt", text)
    assert "made 2026-11-27, expires 2026-12-07" in text and "license 3f437e97f4c64a48" in text and "`" not in text
