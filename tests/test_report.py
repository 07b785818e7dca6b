"""Issue 21, "Nobody can see what the bot has done": `license-bot report`, computed from the record and the
requests (never GitLab's search), as text, CSV, JSON and one self-contained HTML page.

The seeded history below is small enough to work out by hand; each figure is asserted against it, then the
text and CSV forms are kept as golden files. The HTML is laid out by Debian's Chromium at a true 360 and 1024 px
(device-metrics emulation through the DevTools protocol, `tests/cdp.py`).

GitLab fact relied on: the issues API filters by `created_after` (`lib/api/issues.rb`, `issues_params`:
`optional :created_after, type: DateTime`), so the report lists requests of the period, not the whole project.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import date, datetime

import pytest

from bot import report
from bot.report import Integrity, LicenseRow, RequestRow

from . import golden
from .cdp import Browser
from .e2e import client, request_text

URL = "https://gitlab.example.com/support/internal-requests/-/issues/"
TODAY, SINCE, UNTIL = date(2026, 11, 30), date(2026, 11, 2), date(2026, 11, 29)


def _at(day: str, hm: str) -> datetime:
    return datetime.fromisoformat(f"2026-{day}T{hm}:00+00:00")


def _license(iid, email, made, expires, ticket=None):
    return LicenseRow(f"lic{iid:04d}", iid, URL + str(iid), email, 100 + iid, ticket or 512000 + iid,
                      date.fromisoformat(f"2026-{made}"), date.fromisoformat(f"2026-{expires}"), "key A")


def _request(iid, author, filed, emailed=None, step="delivered", reasons=()):
    return RequestRow(iid, URL + str(iid), author, _at(*filed), step, tuple(reasons),
                      _at(*emailed) if emailed else None)


LICENSES = [
    _license(1, "jane@acme.com", "11-02", "11-12"),
    _license(3, "bob@ACME.com", "11-10", "11-20"),
    _license(4, "ops@globex.io", "11-11", "11-21"),
    _license(6, "it@initech.example", "11-25", "12-05"),
    _license(7, "root@globex.io", "11-27", "12-07"),
    _license(9, "old@acme.com", "10-01", "10-11"),   # before the period: in no figure of it
    _license(11, "late@umbrella.example", "11-29", "12-08"),  # expires the day after the window of 7 days
]
REQUESTS = [
    _request(1, "alice", ("11-02", "10:00"), ("11-02", "10:05")),          # 5 min
    _request(2, "alice", ("11-05", "09:00"), step="rejected", reasons=("Zendesk ticket", "Customer email")),
    _request(3, "alice", ("11-10", "09:00"), ("11-10", "09:12")),          # 12 min
    _request(4, "bruno", ("11-11", "08:00"), ("11-11", "08:30")),          # 30 min
    _request(5, "dave", ("11-20", "12:00"), step="rejected", reasons=("Zendesk ticket",)),
    _request(6, "alice", ("11-24", "23:00"), ("11-25", "02:00")),          # 180 min, over midnight
    _request(7, "carol", ("11-27", "12:00"), ("11-27", "12:01")),          # 1 min
    _request(8, "carol", ("11-28", "08:00"), step="held", reasons=("held for a person",)),
    _request(10, "dave", ("10-15", "08:00"), step="rejected", reasons=("User count",)),  # before the period
    _request(11, "erin", ("11-29", "07:00"), ("11-29", "07:45")),          # 45 min
]
INTEGRITY = Integrity(7, (), 0, (("the current signing key SHA256:0123456789abcdef", 5),
                                 ("license.trusted_public_keys[0] (old.pub) SHA256:fedcba9876543210", 2)))


def _seeded() -> report.Report:
    return report.build(LICENSES, REQUESTS, INTEGRITY, since=SINCE, until=UNTIL, today=TODAY,
                        repeat_window_days=10, expiring_days=7)


def test_21_the_figures_are_those_of_the_seeded_history():
    rep = _seeded()
    assert rep.licenses == 6  # #9 was made before the period
    assert rep.per_week == ((date(2026, 11, 2), 1), (date(2026, 11, 9), 2), (date(2026, 11, 16), 0),
                            (date(2026, 11, 23), 3))
    assert rep.by_requester == (("alice", 3), ("bruno", 1), ("carol", 1), ("erin", 1))
    assert rep.by_domain == (("acme.com", 2), ("globex.io", 2), ("initech.example", 1), ("umbrella.example", 1))
    # acme.com twice 8 days apart (case of the address ignored); globex.io 16 days apart: outside a 10-day window
    assert [(r.domain, r.first, r.second, r.days) for r in rep.repeats] == [("acme.com", 1, 3, 8)]
    # minutes: 1 (#7), 5 (#1), 12 (#3), 30 (#4), 45 (#11), 180 (#6): the nearest-rank median is the 3rd
    assert (rep.median.minutes, rep.median.iid) == (12, 3)
    assert (rep.p95.minutes, rep.p95.iid) == (180, 6) and (rep.worst.minutes, rep.worst.iid) == (180, 6)
    assert rep.failed == (("Zendesk ticket", 2), ("Customer email", 1), ("held for a person", 1))
    assert [r.issue_iid for r in rep.expiring] == [6, 7]  # 2026-12-05 and 12-07; #11's 12-08 is day 8


def test_21_a_wider_repeat_window_counts_the_second_repeat_customer():
    rep = report.build(LICENSES, REQUESTS, INTEGRITY, since=SINCE, until=UNTIL, today=TODAY, repeat_window_days=90)
    assert [(r.domain, r.days) for r in rep.repeats] == [("acme.com", 8), ("globex.io", 16)]


def test_21_golden_text_and_csv_of_the_seeded_history():
    rep = _seeded()
    golden.check("report.txt", report.text(rep))
    golden.check("report.csv", report.csv_text(rep))
    rows = list(csv.DictReader(io.StringIO(report.csv_text(rep))))
    assert {"section": "filing_to_email_minutes", "item": "median", "value": "12.0", "issue": "#3"} in rows
    assert json.loads(report.json_text(rep))["licenses"] == 6


def test_21_a_damaged_record_is_said_first_in_its_section_and_each_problem_named():
    damaged = Integrity(3, ("record entry issue #12: its entry ... carries no signature by a trusted key",), 0,
                        (("the current signing key SHA256:0123456789abcdef", 3),))
    rep = report.build(LICENSES, REQUESTS, damaged, since=SINCE, until=UNTIL, today=TODAY)
    assert "Record: 3 entries, DAMAGED, 1 problem\n" in report.text(rep)
    assert "  ! record entry issue #12: its entry" in report.text(rep)
    assert "DAMAGED: 1 problem" in report.html_text(rep)
    assert "record,problems,1," in report.csv_text(rep)


def test_21_an_empty_period_says_none_rather_than_an_empty_chart_or_a_zero_time():
    rep = report.build([], [], Integrity(0, (), 0, ()), since=SINCE, until=date(2026, 11, 8), today=TODAY)
    assert "  median:          -\n" in report.text(rep) and rep.median is None
    page = report.html_text(rep)
    assert page.count("<svg") == 1 and "the highest bar is 0 licenses" in page  # the week's chart, honest


def test_21_a_csv_cell_never_starts_a_spreadsheet_formula():
    rep = report.build([], [_request(1, "=HYPERLINK(\"http://x\")", ("11-03", "09:00"), step="rejected",
                                     reasons=("=cmd|' /C calc'!A0",))], INTEGRITY, since=SINCE, until=UNTIL,
                       today=TODAY)
    failed = [r for r in csv.reader(io.StringIO(report.csv_text(rep))) if r[0] == "failed"]
    assert failed == [["failed", "'=cmd|' /C calc'!A0", "1", ""]]


def test_21_the_html_escapes_what_people_typed():
    rep = report.build([], [_request(1, "<script>alert(1)</script>", ("11-03", "09:00"), step="rejected",
                                     reasons=("<img src=x onerror=alert(1)>",))], INTEGRITY, since=SINCE,
                       until=UNTIL, today=TODAY)
    page = report.html_text(rep)
    assert "<img" not in page and "<script" not in page and "&lt;img src=x" in page


@pytest.fixture(scope="module")
def browser():
    b = Browser()
    yield b
    b.close()


@pytest.mark.parametrize("width", [360, 1024])
def test_21_the_html_report_reads_at_a_true_width_with_no_sideways_scrolling_and_its_charts(browser, tmp_path,
                                                                                           width):
    page = report.html_text(_seeded())
    # Self-contained: nothing is fetched (no script, stylesheet link, image or font from anywhere).
    assert "<script" not in page and "<link" not in page and "src=" not in page and "@import" not in page
    path = tmp_path / "report.html"
    path.write_text(page, encoding="utf-8")
    browser.open(path.as_uri(), width, dark=False)
    assert browser.evaluate("window.innerWidth") == width  # the emulated device, not a ~500 px headless window
    assert browser.evaluate("document.documentElement.scrollWidth") <= width
    assert browser.evaluate("document.querySelectorAll('svg').length") == 2
    assert browser.evaluate("document.querySelectorAll('svg rect').length") == 4 + 6  # 4 weeks, 6 emailed
    chart = browser.evaluate("document.querySelector('svg').getBoundingClientRect().width")
    assert 0 < chart <= width


# --- through the CLI, over the sandbox ---------------------------------------------------------------------------

def _cli(bot, *args):
    env = {**bot.env(), "LICENSE_PUBLIC_KEY_FILE": str(bot.public_key)}
    return subprocess.run([sys.executable, "-m", "bot", "--config", str(bot.config_path), *args],
                          capture_output=True, text=True, env=env, timeout=120)


def test_21_report_over_the_sandbox_counts_the_licenses_and_failures_the_record_and_requests_hold(bot, sandbox,
                                                                                                 tmp_path):
    as_alice = client(sandbox.url)
    for n in (1, 2):
        as_alice.issues.create({"title": f"Emergency {n}", "description": request_text(n)})
    as_alice.issues.create({"title": "Emergency 3", "description": request_text(3, users="about 300")})
    assert bot.run().returncode == 0
    shown = _cli(bot, "report", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    rep = json.loads(shown.stdout)
    assert rep["licenses"] == 2 and rep["by_requester"] == [["alice", 2]]
    assert rep["failed"] == [["User count", 1]] and rep["integrity"]["entries"] == 2
    assert rep["median"]["iid"] in (1, 2) and rep["worst"]["minutes"] >= 0

    out = tmp_path / "report.html"
    assert _cli(bot, "report", "--format", "html", "--output", str(out)).returncode == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    again = _cli(bot, "report", "--format", "html", "--output", str(out))
    assert again.returncode == 1 and "exists already" in again.stderr and "--force" in again.stderr
    assert _cli(bot, "report", "--format", "csv", "--output", str(out), "--force").returncode == 0
    assert out.read_text().startswith("section,item,value,issue")


def test_21_report_dates_in_the_wrong_order_are_one_line():
    result = subprocess.run([sys.executable, "-m", "bot", "report", "--since", "2026-11-30", "--until", "2026-11-01"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "--since 2026-11-30 is after --until 2026-11-01" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
