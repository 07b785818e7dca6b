"""Every request checked against its Zendesk ticket, and the license left on the ticket (issue 11), end to end
over the sandbox's GitLab and Zendesk, the bot as a real process."""

from __future__ import annotations

import base64
import json
import random
import urllib.request

import pytest

from .e2e import KillAt, client, mail, post, request_text, status_notes

AUTH = "Basic " + base64.b64encode(b"bot@example.com/token:zendesk-token").decode()


def zd(url: str, method: str, path: str, body: dict | bytes | None = None) -> dict:
    data = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{url}{path}", method=method, data=data, headers={
        "Authorization": AUTH, "Content-Type": "application/octet-stream" if isinstance(body, bytes)
        else "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read() or b"{}")


def ticket(url: str, requester: str, ccs=(), attachments: int = 2, status: str = "open") -> int:
    """A customer's ticket, as Zendesk would hold it: the screenshots attached to its first comment."""
    tokens = [zd(url, "POST", f"/api/v2/uploads?filename=screenshot{i}.png", b"\x89PNG fake")["upload"]["token"]
              for i in range(attachments)]
    created = zd(url, "POST", "/api/v2/tickets", {"ticket": {
        "subject": "Our instance is read-only", "status": status, "organization_id": 1,
        "requester": {"name": "Jane", "email": requester}, "email_ccs": [{"user_email": c} for c in ccs],
        "comment": {"body": "Screenshots attached", "uploads": tokens}}})
    return created["ticket"]["id"]


def internal_notes(url: str, ticket_id: int) -> list[dict]:
    return [c for c in zd(url, "GET", f"/api/v2/tickets/{ticket_id}/comments")["comments"] if not c["public"]]


def file(url: str, n: int, ticket_id: int, email: str):
    return client(url).issues.create({"title": f"Emergency {n}", "description": request_text(
        n, ticket=str(ticket_id), email=email)})


def reread(url, issue):
    return client(url, "bot-token").issues.get(issue.iid)


@pytest.fixture
def zbot(bot):
    bot.write_config(zendesk=True)
    return bot


def test_each_request_is_checked_against_its_ticket_and_the_good_one_is_left_on_it(zbot, sandbox):
    url = sandbox.url
    stranger = file(url, 1, ticket(url, "jane@acme.example"), "typo@acme.example")
    cc = file(url, 2, ticket(url, "boss@acme.example", ccs=["ops@acme.example"]), "ops@acme.example")
    solved = file(url, 3, ticket(url, "solved@acme.example", status="solved"), "solved@acme.example")
    one_shot = file(url, 4, ticket(url, "one@acme.example", attachments=1), "one@acme.example")
    good_ticket = ticket(url, "good@acme.example")
    good = file(url, 5, good_ticket, "good@acme.example")
    result = zbot.run()
    assert result.returncode == 0, result.stderr
    stranger_note = status_notes(reread(url, stranger))[0].body
    assert "neither the ticket's requester (jane@acme.example) nor on its CCs" in stranger_note
    assert f"ticket {good_ticket - 2} is solved" in status_notes(reread(url, solved))[0].body
    assert "the ticket has 1 attachment; ask the customer for both screenshots" in \
        status_notes(reread(url, one_shot))[0].body
    cc_note = status_notes(reread(url, cc))[0].body
    assert reread(url, cc).state == "closed" and "is on the ticket's CCs, not its requester" in cc_note
    good = reread(url, good)
    body = status_notes(good)[0].body
    assert good.state == "closed" and "(open; requester good@acme.example, ACME Corp)" in body
    (note,) = internal_notes(url, good_ticket)
    assert good.web_url in note["body"] and note["attachments"][0]["file_name"].endswith(".gitlab-license")
    assert "emergency_license_issued" in zd(url, "GET", f"/api/v2/tickets/{good_ticket}/tags")["tags"]
    assert sorted(m["to"][0] for m in mail(url)) == ["good@acme.example", "ops@acme.example"]


def test_zendesk_down_while_judging_makes_the_request_wait_then_it_succeeds_with_one_note(zbot, sandbox):
    url = sandbox.url
    t = ticket(url, "jane@acme.example")
    issue = file(url, 1, t, "jane@acme.example")
    post(url, "/sandbox/zendesk/down")
    waiting = zbot.run()
    assert waiting.returncode == 2 and "waits for Zendesk" in waiting.stdout
    assert mail(url) == [] and sandbox.sandbox.state["projects"][0]["uploads"] == {}  # nothing made
    post(url, "/sandbox/zendesk/up")
    assert zbot.run().returncode == 0
    assert reread(url, issue).state == "closed" and len(internal_notes(url, t)) == 1 and len(mail(url)) == 1


def test_zendesk_down_after_the_email_never_sends_a_second_email(zbot, sandbox):
    url = sandbox.url
    t = ticket(url, "jane@acme.example")
    issue = file(url, 1, t, "jane@acme.example")
    post(url, "/sandbox/zendesk/down?writes=1")  # reads work (the judging), writes fail (the note)
    first = zbot.run()
    assert first.returncode == 2 and len(mail(url)) == 1
    assert "the note on the ticket waits" in status_notes(reread(url, issue))[0].body
    assert zbot.run().returncode == 2 and len(mail(url)) == 1  # still down: still no second email
    post(url, "/sandbox/zendesk/up")
    assert zbot.run().returncode == 0
    issue = reread(url, issue)
    assert issue.state == "closed" and issue.title.startswith("[Success]")
    assert len(internal_notes(url, t)) == 1 and len(mail(url)) == 1


def test_a_token_zendesk_refuses_stops_the_run_before_any_request(zbot, sandbox):
    issue = file(sandbox.url, 1, ticket(sandbox.url, "jane@acme.example"), "jane@acme.example")
    import subprocess

    result = subprocess.run(zbot.command(), capture_output=True, text=True, timeout=60,
                            env={**zbot.env(), "ZENDESK_API_TOKEN": "wrong-zendesk-secret"})
    assert result.returncode == 1 and "Zendesk refused the API user bot@example.com (401)" in result.stderr
    assert "wrong-zendesk-secret" not in result.stderr + result.stdout
    assert status_notes(reread(sandbox.url, issue)) == []


def test_sigkill_at_random_steps_and_two_runs_at_once_leave_one_note_per_license(zbot, sandbox):
    url = sandbox.url
    tickets = [ticket(url, f"admin{n}@acme.example") for n in range(1, 9)]
    issues = [file(url, n, t, f"admin{n}@acme.example") for n, t in enumerate(tickets, start=1)]
    rng = random.Random(11)
    kills = 0
    for _ in range(40):
        if kills >= 8:
            break
        # killed at an exact step (a GitLab or Zendesk call, or an email) while the sandbox serves it
        killer = KillAt(sandbox, rng.randint(1, 40))
        killer.start(zbot.start)
        killer.finish()
        kills += killer.killed
    first, second = zbot.start(), zbot.start()  # and two at once to finish
    assert sorted([first.wait(timeout=120), second.wait(timeout=120)]) in ([0, 0], [0, 2])
    assert zbot.run().returncode == 0
    assert kills >= 5
    for t, issue in zip(tickets, issues, strict=True):
        assert reread(url, issue).state == "closed"
        assert len(internal_notes(url, t)) == 1, f"ticket {t}"
        assert "emergency_license_issued" in zd(url, "GET", f"/api/v2/tickets/{t}/tags")["tags"]


def test_with_zendesk_off_no_zendesk_call_is_made(bot, sandbox):
    issue = file(sandbox.url, 1, 512345, "jane@acme.example")
    assert bot.run().returncode == 0
    assert reread(sandbox.url, issue).state == "closed" and sandbox.sandbox.zendesk_requests == []


def test_find_says_whether_the_note_is_on_the_ticket(zbot, sandbox):
    import subprocess
    import sys

    t = ticket(sandbox.url, "jane@acme.example")
    file(sandbox.url, 1, t, "jane@acme.example")
    assert zbot.run().returncode == 0
    env = {**zbot.env(), "LICENSE_PUBLIC_KEY_FILE": str(zbot.public_key)}
    found = subprocess.run([sys.executable, "-m", "bot", "--config", str(zbot.config_path), "find",
                            "jane@acme.example"], capture_output=True, text=True, env=env, timeout=60)
    assert found.returncode == 0 and f"internal note on ticket {t}: yes" in found.stdout


def test_doctor_checks_zendesk(zbot, sandbox):
    from bot import config as config_mod
    from bot import doctor

    config = config_mod.load(zbot.config_path, environ={})
    secrets = config_mod.Secrets(gitlab_token="bot-token", zendesk_api_token="zendesk-token")
    (check,) = [c for c in doctor.check(config, secrets, environ={}) if c.name == "Zendesk"]
    assert check.ok and "bot@example.com is an agent" in check.detail
    wrong = config_mod.Secrets(gitlab_token="bot-token", zendesk_api_token="nope")
    (check,) = [c for c in doctor.check(config, wrong, environ={}) if c.name == "Zendesk"]
    assert check.ok is False and "refused the API user bot@example.com (401)" in check.detail


def test_after_max_attempts_the_issue_closes_anyway_saying_what_to_post_by_hand(bot, sandbox):
    import yaml

    bot.write_config(zendesk=True)
    config = yaml.safe_load(bot.config_path.read_text())
    config["run"]["max_attempts"] = 2
    bot.config_path.write_text(yaml.safe_dump(config))
    t = ticket(sandbox.url, "jane@acme.example")
    issue = file(sandbox.url, 1, t, "jane@acme.example")
    post(sandbox.url, "/sandbox/zendesk/down?writes=1")
    assert bot.run().returncode == 2
    assert bot.run().returncode == 0
    issue = reread(sandbox.url, issue)
    body = status_notes(issue)[0].body
    assert issue.state == "closed" and "Post it by hand: an internal note on ticket" in body
    assert len(mail(sandbox.url)) == 1 and internal_notes(sandbox.url, t) == []


def test_a_429_is_waited_out_as_retry_after_says(config, monkeypatch):
    import responses

    from bot import zendesk

    waited = []
    monkeypatch.setattr(zendesk.time, "sleep", waited.append)
    cfg = config.zendesk.__class__(enabled=True, url="https://acme.zendesk.com", email="bot@example.com")
    client_ = zendesk.ZendeskClient(cfg, "t")
    with responses.RequestsMock() as mocked:
        mocked.get("https://acme.zendesk.com/api/v2/users/me", status=429, headers={"Retry-After": "7"})
        mocked.get("https://acme.zendesk.com/api/v2/users/me", json={"user": {"role": "agent"}})
        assert client_.me()["role"] == "agent"
    assert waited == [7.0]
