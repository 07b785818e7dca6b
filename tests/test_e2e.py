"""End to end over real HTTP and SMTP: the sandbox GitLab, python-gitlab as the engineer's client, the
bot as a real process — including SIGKILLs, a sandbox restart and two runs at once."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
import urllib.request

from bot import keys
from bot.license import decode
from bot.mailsink import free_port

from .e2e import ROOT, Bot, KillAt, api_calls, client, license_keys, mail, post, request_text, status_notes


def file_request(url, n=1, token="alice-token", title=None, **fields):
    return client(url, token).issues.create({"title": title or f"Emergency license {n}",
                                             "description": request_text(n, **fields)})


def reread(url, issue):
    return client(url, "bot-token").issues.get(issue.iid)


def test_happy_path(bot, sandbox, key_pair):
    issue = file_request(sandbox.url)
    result = bot.run("--report", str(bot.workdir / "report.json"))
    assert result.returncode == 0, result.stderr
    assert "found 1, succeeded 1, failed 0, retrying 0, skipped 0" in result.stdout
    issue = reread(sandbox.url, issue)
    assert issue.title == "[Success] - Created a license under admin1@customer1.example.com for 101 users"
    assert issue.state == "closed" and issue.confidential
    assert set(issue.labels) == {"license-request", "license-request::success"}
    (key,) = license_keys(issue)
    (msg,) = mail(sandbox.url)
    assert msg["to"] == ["admin1@customer1.example.com"] and msg["key"] == key
    lic = decode(key, keys.load_public_key(key_pair[1]))
    assert (lic.email, lic.user_count, lic.plan, lic.trial) == ("admin1@customer1.example.com", 101, "ultimate", True)
    report = json.loads((bot.workdir / "report.json").read_text())
    assert report["succeeded"] == 1 and report["exit_code"] == 0


def test_every_kind_of_invalid_request_is_explained_and_sends_nothing(bot, sandbox):
    cases = {
        "user_count": dict(users="lots"),
        "expired_on": dict(expired="11/12/2026"),
        "email": dict(email="someone@gitlab.com"),
        "ticket": dict(ticket="https://evil.example.com/agent/tickets/5"),
        "checklist": dict(tick=False),
    }
    filed = {field: file_request(sandbox.url, n, **kw) for n, (field, kw) in enumerate(cases.items(), start=1)}
    untouched = client(sandbox.url).issues.create({"title": "untouched", "description": (
        ROOT / "templates" / "Emergency License Request.md").read_text()})
    result = bot.run()
    assert result.returncode == 0 and "failed 6" in result.stdout
    names = {"user_count": "User count", "expired_on": "License expiration date", "email": "Customer email",
             "ticket": "Zendesk ticket", "checklist": "Checklist"}
    for field, issue in filed.items():
        issue = reread(sandbox.url, issue)
        (note,) = status_notes(issue)
        assert issue.state == "opened" and "license-request::failed" in issue.labels
        assert f"**{names[field]}**" in note.body and "@alice" in note.body
        assert [a["username"] for a in issue.assignees] == ["alice"]
    (note,) = status_notes(reread(sandbox.url, untouched))
    for name in ("Zendesk ticket", "Customer email", "User count", "License expiration date", "Checklist"):
        assert f"**{name}**" in note.body
    assert mail(sandbox.url) == []


def test_the_same_request_filed_twice_gets_one_license(bot, sandbox):
    first, second = file_request(sandbox.url), file_request(sandbox.url)
    assert bot.run().returncode == 0
    first, second = reread(sandbox.url, first), reread(sandbox.url, second)
    assert first.state == "closed" and second.state == "opened"
    assert f"already got a license in #{first.iid}" in status_notes(second)[0].body
    assert len(mail(sandbox.url)) == 1


def test_an_unauthorised_author(bot, sandbox):
    issue = file_request(sandbox.url, token="mallory-token")
    assert bot.run().returncode == 0
    issue = reread(sandbox.url, issue)
    assert issue.state == "opened" and "license-request::failed" in issue.labels  # found by its form marker
    assert "@mallory may not request" in status_notes(issue)[0].body
    assert mail(sandbox.url) == []


def test_a_description_fixed_after_a_failure(bot, sandbox):
    issue = file_request(sandbox.url, expired="11/12/2026")
    bot.run()
    assert bot.run().stdout.count("skipped 1") == 1  # unchanged: not judged again
    fixed = client(sandbox.url).issues.get(issue.iid)
    fixed.description = request_text(1)
    fixed.save()
    assert bot.run().returncode == 0
    issue = reread(sandbox.url, issue)
    assert issue.state == "closed" and len(status_notes(issue)) == 1
    assert len(mail(sandbox.url)) == 1


def test_smtp_down_then_back(bot, sandbox):
    issue = file_request(sandbox.url)
    post(sandbox.url, "/sandbox/smtp/down")
    down = bot.run()
    assert down.returncode == 2 and "retrying 1" in down.stdout
    assert "delivery attempt 1 of 5 failed" in status_notes(reread(sandbox.url, issue))[0].body
    post(sandbox.url, "/sandbox/smtp/up")
    assert bot.run().returncode == 0
    issue = reread(sandbox.url, issue)
    assert issue.state == "closed" and len(license_keys(issue)) == 1
    assert [m["key"] for m in mail(sandbox.url)] == list(license_keys(issue))


def test_gitlab_unreachable_exits_1(bot):
    bot.url = f"http://127.0.0.1:{free_port()}"
    bot.write_config()
    result = bot.run()
    assert result.returncode == 1 and "unreachable" in result.stderr and "bot-token" not in result.stderr


def test_an_idle_run_costs_two_api_calls(bot, sandbox):
    file_request(sandbox.url)
    bot.run()
    before = api_calls(sandbox.url)
    result = bot.run()
    assert result.returncode == 0 and "found 0" in result.stdout
    assert api_calls(sandbox.url) - before == 2


# --- crashes and races ------------------------------------------------------------------------------------

def assert_one_license_each(url, issues, public_key):
    mails = mail(url)
    for issue in issues:
        issue = reread(url, issue)
        assert issue.state == "closed", (f"#{issue.iid} was lost: {issue.state} {issue.labels} "
                                         f"{[n.body[:300] for n in status_notes(issue)]}")
        notes = status_notes(issue)
        assert len(notes) == 1, f"#{issue.iid} has {len(notes)} status notes"
        (key,) = license_keys(issue)
        lic = decode(key, public_key)
        sent = [m for m in mails if m["to"] == [lic.email]]
        assert sent and all(m["key"] == key for m in sent), f"#{issue.iid} was sent another license"
        assert len({m["message"]["Message-ID"] for m in sent}) == 1
    return mails


def test_sigkill_at_random_points_never_two_licenses_never_a_lost_request(bot, sandbox, key_pair):
    """Each run is killed at a random step — an API call or an email, while the sandbox serves it — not
    after a random time (a polled step count overshot on a loaded machine, so fewer runs were cut than the
    test needs); the next run picks up, and a final run finishes the work."""
    issues = [file_request(sandbox.url, n) for n in range(1, 17)]
    rng = random.Random(20261127)
    kill_points = []
    for _ in range(60):
        if len(kill_points) >= 12 or all(reread(sandbox.url, i).state == "closed" for i in issues):
            break
        killer = KillAt(sandbox, rng.randint(1, 30))
        killer.start(bot.start)
        killer.finish()
        if killer.killed:
            kill_points.append(killer.point)
    final = bot.run()
    assert final.returncode == 0, final.stdout + final.stderr
    assert len(kill_points) >= 10, f"only {len(kill_points)} runs were interrupted: the test proved too little"
    assert_one_license_each(sandbox.url, issues, keys.load_public_key(key_pair[1]))


def test_two_runs_at_once_make_at_most_one_license_per_request(bot, sandbox, key_pair):
    issues = [file_request(sandbox.url, n) for n in range(1, 9)]
    first, second = bot.start(), bot.start()
    codes = sorted([first.wait(timeout=120), second.wait(timeout=120)])
    assert codes in ([0, 0], [0, 2]), codes  # 2: the other run held the lock
    assert bot.run().returncode == 0
    mails = assert_one_license_each(sandbox.url, issues, keys.load_public_key(key_pair[1]))
    assert len(mails) == len(issues)  # the lock keeps the second run from mailing anyone again


def test_the_sandbox_restarted_mid_run(tmp_path, key_pair):
    port, smtp_port, state = free_port(), free_port(), tmp_path / "sandbox.json"

    def start_sandbox():
        proc = subprocess.Popen([sys.executable, "-m", "bot", "sandbox", "--port", str(port), "--smtp-port",
                                 str(smtp_port), "--state", str(state)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env={"PYTHONPATH": str(ROOT)})
        proc.stdout.readline()  # the first line is printed once it listens
        return proc

    server = start_sandbox()
    url = f"http://127.0.0.1:{port}"
    bot = Bot(url, smtp_port, tmp_path, *key_pair)
    bot.write_config()
    try:
        issues = [file_request(url, n) for n in range(1, 13)]
        post(url, "/sandbox/hold/40")  # the run's 40th call gets no answer: the run is under way there
        run = bot.start()
        while not json.load(urllib.request.urlopen(f"{url}/sandbox/requests?since=999999", timeout=60))["held"]:
            if run.poll() is not None:
                raise AssertionError("the run ended before its 40th call: " + run.communicate()[1])
            time.sleep(0.05)  # polls a state that stays put once reached: no race with the run
        server.send_signal(signal.SIGKILL)
        server.wait()
        interrupted = run.wait(timeout=120)
        server = start_sandbox()
        assert interrupted in (1, 2), "the run did not notice the sandbox going away"
        final = bot.run()
        assert final.returncode == 0, final.stdout + final.stderr
        assert_one_license_each(url, issues, keys.load_public_key(key_pair[1]))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)


def test_the_demo_shows_the_whole_workflow_and_checks_it(tmp_path):
    (tmp_path / "tmp").mkdir()
    result = subprocess.run([sys.executable, "-m", "bot", "demo"], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                                               "TMPDIR": str(tmp_path / "tmp")})
    assert result.returncode == 0, result.stdout + result.stderr
    # Finding 20.7: the demo's folder (a SoftHSM token and its PIN's config, or a PEM private key) is removed.
    assert "license-bot-demo-" in result.stdout and list((tmp_path / "tmp").iterdir()) == []
    out = result.stdout
    assert "Issue #1: '[Success] - Created a license under jane.doe@example.com for 250 users', closed" in out
    assert "Issue #3: 'license pls', opened" in out and "@mallory may not request" in out
    assert "Issue #2: 'Emergency license for Globex', opened" in out and "neither the ticket's requester" in out
    assert "Email to jane.doe@example.com" in out and "decoded with the public key" in out
    assert "Internal note on Zendesk ticket" in out and "Tags on ticket 512000: emergency_license_issued" in out
    assert "✗" not in out and out.count("✓") == 9
    # Issue 21: the demo ends with the report, from the record and the requests.
    assert out.rstrip().rsplit("$ license-bot report\n", 1)[1].startswith("License Bot report, ")
    assert "Licenses made: 1" in out and "Record: 1 entry, every entry signed and chained" in out
