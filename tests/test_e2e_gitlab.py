"""The guarantees against GitLab as it really is (issue 9), end to end over the sandbox twin: full-text
search of every generation, Free and paid tiers, direct membership, approvals and the search rate limit."""

from __future__ import annotations

import itertools

import pytest

from bot import keys
from bot.license import decode
from bot.sandbox import SandboxServer

from .e2e import Bot, client, file, license_keys, mail, post, request_text, status_notes

TIERS = list(itertools.product(("free", "premium"), ("v1", "v3")))


@pytest.fixture(params=TIERS, ids=[f"{e}-{r}" for e, r in TIERS])
def twin(request, tmp_path, key_pair):
    edition, rules = request.param
    with SandboxServer(edition=edition, search_rules=rules) as server:
        bot = Bot(server.url, server.smtp_port, tmp_path, *key_pair)
        bot.write_config()
        yield server, bot



TICKET_FORMS = ["https://gitlab.zendesk.com/agent/tickets/512345", "512345", "#512345",
                "gitlab.zendesk.com/agent/tickets/512345/",
                "[ticket](https://gitlab.zendesk.com/agent/tickets/512345?x=1)",
                "<HTTPS://GITLAB.ZENDESK.COM/AGENT/TICKETS/512345>"]


@pytest.mark.parametrize("first,second", [(0, 1), (1, 0), (0, 2), (3, 4), (5, 1)])
def test_one_license_per_ticket_however_it_is_written_even_while_the_first_waits(twin, first, second, key_pair):
    server, bot = twin
    one = file(server.url, 1, ticket=TICKET_FORMS[first])
    post(server.url, "/sandbox/smtp/down")
    assert bot.run().returncode == 2  # the first license is made and recorded, its email waits
    two = file(server.url, 2, ticket=TICKET_FORMS[second])
    assert bot.run().returncode == 2
    note = status_notes(client(server.url, "bot-token").issues.get(two.iid))[0].body
    assert f"ticket 512345 already got a license in #{one.iid}" in note
    post(server.url, "/sandbox/smtp/up")
    assert bot.run().returncode == 0
    one = client(server.url, "bot-token").issues.get(one.iid)
    (key,) = license_keys(one)
    assert [m["key"] for m in mail(server.url)] == [key]  # exactly one email, the first request's
    assert decode(key, keys.load_public_key(key_pair[1])).email == "admin1@customer1.example.com"
    assert client(server.url, "bot-token").issues.get(two.iid).state == "opened"


def test_requesters_are_direct_members_and_an_unreadable_group_stops_the_run(twin):
    sandbox, bot = twin
    bot.write_config(requests={"requester_groups": ["support/emea"]})
    issues = {who: file(sandbox.url, n, token=f"{who}-token")
              for n, who in enumerate(["alice", "emil", "carol", "dave"], start=1)}
    assert bot.run().returncode == 0
    states = {who: client(sandbox.url, "bot-token").issues.get(i.iid) for who, i in issues.items()}
    assert states["emil"].state == "closed"  # a direct Developer of support/emea
    for who in ("alice", "carol", "dave"):  # inherited from support; through a shared group; not even a member
        assert states[who].state == "opened", who
        assert f"@{who} may not request" in status_notes(states[who])[0].body
    bot.write_config(requests={"requester_groups": ["hidden"]})
    file(sandbox.url, 9)
    result = bot.run()
    assert result.returncode == 1 and "group hidden does not exist or the bot's token cannot read it" in result.stderr
    assert "found" not in result.stdout


def test_an_override_counts_only_when_an_approver_approves_it(twin):
    sandbox, bot = twin
    issue = client(sandbox.url).issues.create({
        "title": "out of scope", "labels": "license-request,license-request-override",
        "description": request_text(1, expired="2026-01-01")})
    assert bot.run().returncode == 0
    issue = client(sandbox.url, "bot-token").issues.get(issue.iid)
    body = status_notes(issue)[0].body
    assert issue.state == "opened" and "the ~\"license-request-override\" label was ignored" in body
    # The approval is mike's own reaction, which only he (or an admin) can remove (issue 16): adding the label
    # again proves nothing, since any Reporter can rename labels and so rewrite label history.
    client(sandbox.url, "mike-token").issues.get(issue.iid).awardemojis.create({"name": "key"})
    assert bot.run().returncode == 0
    issue = client(sandbox.url, "bot-token").issues.get(issue.iid)
    assert issue.state == "closed" and "Override approved by @mike" in status_notes(issue)[0].body


@pytest.mark.parametrize("edition,rules", TIERS, ids=[f"{e}-{r}" for e, r in TIERS])
def test_a_backlog_of_100_is_served_in_one_run_under_the_search_rate_limit(tmp_path, key_pair, edition, rules):
    with SandboxServer(search_rate_limit=30, edition=edition, search_rules=rules) as server:
        project = client(server.url)
        for n in range(1, 101):
            project.issues.create({"title": f"Emergency {n}", "description": request_text(n)})
        bot = Bot(server.url, server.smtp_port, tmp_path, *key_pair)
        bot.write_config()
        before = len(server.sandbox.requests)
        result = bot.run(timeout=300)
        assert result.returncode == 0, result.stderr
        assert "found 100, succeeded 100, failed 0, retrying 0" in result.stdout
        log = server.sandbox.requests[before:]
        assert all(status != 429 for _, _, status in log)
        per_request = [(m, p) for m, p, _ in log if m != "GET"]
        reads = [p for m, p, _ in log if m == "GET"]
        # 9 writes per success (the claim announced and taken, upload, the record entry opened and closed, its
        # anchor, label, status note, close) plus the lock and the home issue (opened, marked) and the empty
        # record's first anchor; reads are the listing and the per-run cached lookups (the anchor's among them),
        # not a read per request: an issue never changed since it was filed has no evidence to read (issue 16).
        assert len(per_request) <= 9 * 100 + 5, len(per_request)
        assert len(reads) <= 20, reads
        assert len(mail(server.url)) == 100


@pytest.mark.parametrize("rules", ["v1", "v2", "v3"])
def test_find_lists_the_same_licenses_on_every_search_generation(rules, tmp_path, key_pair):
    """v1 turned '_' into a space, so jane_doe@ was not found by search; find asks the record, not search."""
    import json
    import subprocess
    import sys

    with SandboxServer(search_rules=rules) as server:
        bot = Bot(server.url, server.smtp_port, tmp_path, *key_pair)
        bot.write_config()
        iids = []
        for n, email in enumerate(["jane_doe@example.com", "jane_doe@example.com"], start=1):
            iids.append(file(server.url, n, email=email, ticket=str(600000 + n)).iid)
            if n == 2:  # the second through an approved override (the cooldown)
                as_mike = client(server.url, "mike-token").issues.get(iids[-1])
                as_mike.labels = [*as_mike.labels, "license-request-override"]
                as_mike.save()
                as_mike.awardemojis.create({"name": "key"})  # the approval itself (issue 16)
            assert bot.run().returncode == 0
        env = {**bot.env(), "LICENSE_PUBLIC_KEY_FILE": str(bot.public_key)}
        found = subprocess.run([sys.executable, "-m", "bot", "--config", str(bot.config_path), "find",
                                "jane_doe@example.com", "--json"], capture_output=True, text=True, env=env, timeout=60)
        licenses = [f for f in json.loads(found.stdout)["found"] if f["kind"] == "license"]
        assert [f["iid"] for f in licenses] == iids[::-1], rules
