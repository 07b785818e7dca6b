"""Issue 16, end to end: each attack on the bot's trust decisions, made by the seeded user with that user's own
token over real HTTP against the sandbox twin, on Free and Premium, and the bot's answer.

Seeded users (bot/sandbox/store.py): alice, a requester (direct Developer of `support`); carol, Developer of
the tracker only through the group `contractors` shared with `support`, so not a requester; mike, an approver
(Maintainer of `support-managers`). GitLab facts each test relies on are cited where it relies on them.
"""

from __future__ import annotations

import json
import signal
import time

import gitlab
import pytest

from .e2e import client, mail, request_text, status_notes

EDITIONS = ("free", "premium")



def as_user(url, token, iid):
    return client(url, token).issues.get(iid)


def bot_view(url, iid):
    return client(url, "bot-token").issues.get(iid)


def record_entries(server) -> list[dict]:
    """The record's entries, read in-process: (license id, issue iid) of each, from the entry issues the bot
    opened (one per license)."""
    out = []
    for issue in server.sandbox.state["projects"][0]["issues"]:
        body = issue.get("description") or ""
        if issue["author_id"] == 3 and "license-bot:record-entry" in body:
            data = json.loads(body.split("license-bot:record-entry ", 1)[1].split(" -->", 1)[0])
            out.append((data["license_id"], data["issue_iid"]))
    return out


def bot_issues(url) -> list:
    """The issues the bot's user opened, oldest first: its home issue, then the record's entries."""
    return sorted(client(url, "bot-token").issues.list(author_username="license-bot", state="all", get_all=True),
                  key=lambda i: i.iid)


# Finding 1: the requester is not only the author.

def test_1_an_edit_by_someone_who_may_not_request_fails_the_request_and_says_who(twin):
    """GitLab notes every description edit as a system note "changed the description" authored by the editor,
    on every tier (`SystemNoteService.change_description` -> app/services/system_notes/issuables_service.rb
    `change_description`, `create_note(NoteSummary.new(noteable, project, author, 'changed the description',
    action: 'description'))`). Description versions are saved on every tier (app/models/concerns/
    versioned_description.rb) but only Premium shows their diffs and REST exposes neither; the notes API
    lists the system notes, `system: true`, with that author."""
    server, bot = twin
    issue = client(server.url).issues.create({"title": "Emergency", "description": request_text(
        1, expired="2026-01-01")})  # out of scope: it fails
    assert bot.run().returncode == 0
    as_carol = as_user(server.url, "carol-token", issue.iid)
    as_carol.description = request_text(1, email="admin@carols-customer.example.com", users="100000")
    as_carol.save()  # carol may edit (Developer through the shared group), but may not request
    result = bot.run()
    assert result.returncode == 0, result.stdout + result.stderr
    issue = bot_view(server.url, issue.iid)
    body = status_notes(issue)[0].body
    assert issue.state == "opened" and "license-request::failed" in issue.labels
    assert "@carol changed this request's description" in body and "may not request licenses" in body
    assert "@alice can file it again as a new issue" in body
    assert mail(server.url) == []
    # alice, who may request, checks every field and saves it again: now it is hers, and it is served.
    as_alice = as_user(server.url, "alice-token", issue.iid)
    as_alice.description = request_text(1, email="admin@carols-customer.example.com", users="150")
    as_alice.save()
    assert bot.run().returncode == 0
    assert bot_view(server.url, issue.iid).state == "closed"
    assert [m["to"] for m in mail(server.url)] == [["admin@carols-customer.example.com"]]


# Finding 2: the bot's own issues are requests.

def test_2_the_bots_own_issues_made_into_requests_are_never_requests(twin):
    """Its home issue (where the run lock lives) and a record entry issue, reopened: anyone who may edit an
    issue can rewrite them into a request and label it, but nobody else can open an issue as the bot."""
    server, bot = twin
    client(server.url).issues.create({"title": "Emergency", "description": request_text(1)})
    assert bot.run().returncode == 0  # the bot opens its home issue, then the license's record entry
    home, entry = bot_issues(server.url)
    assert "license-bot:record-entry" not in (home.description or "") and entry.state == "closed"
    for n, iid in enumerate((home.iid, entry.iid), start=2):
        as_carol = as_user(server.url, "carol-token", iid)
        as_carol.description = request_text(n, email="ceo@carols-customer.example.com", users="5000")
        as_carol.labels = ["license-request"]
        as_carol.state_event = "reopen"
        as_carol.save()
    result = bot.run()
    for iid in (home.iid, entry.iid):
        assert result.returncode == 0 and f"#{iid} skipped: the bot opened this issue itself" in result.stdout
        assert not bot_view(server.url, iid).title.startswith("[Success]")
    assert bot_view(server.url, home.iid).state == "opened"
    assert [m["to"] for m in mail(server.url)] == [["admin1@customer1.example.com"]]


# Finding 3: an approval covers whatever comes later.

def test_3_an_approval_holds_only_for_the_description_the_approver_saw(twin):
    """The approval is the approver's own :key: reaction, not the label: only its user or an admin can delete
    a reaction (lib/api/award_emoji.rb: `unauthorized! unless award.user == current_user ||
    current_user.admin?`) and GitLab dates it (`created_at`), so "after the last description edit" is
    decidable; label history is not evidence (any Reporter renames labels)."""
    server, bot = twin
    issue = client(server.url).issues.create({"title": "Emergency", "labels": "license-request",
                                              "description": request_text(1, expired="2026-01-01")})
    as_mike = as_user(server.url, "mike-token", issue.iid)
    as_mike.labels = [*as_mike.labels, "license-request-override"]
    as_mike.save()
    as_mike.awardemojis.create({"name": "key"})
    time.sleep(0.01)  # GitLab's timestamps are milliseconds apart at least
    as_alice = as_user(server.url, "alice-token", issue.iid)
    as_alice.description = request_text(1, email="admin@another-customer.example.com", users="99999",
                                        expired="2026-02-01")
    as_alice.save()
    assert bot.run().returncode == 0
    issue = bot_view(server.url, issue.iid)
    body = status_notes(issue)[0].body
    assert issue.state == "opened" and mail(server.url) == []
    assert "@mike approved at" in body and "@alice changed the description at" in body
    assert "an approval holds only for the description the approver saw, so it is void" in body
    # mike reads the new description and approves it again: now it holds.
    reaction = next(a for a in as_mike.awardemojis.list() if a.name == "key")
    as_mike.awardemojis.delete(reaction.id)
    as_mike.awardemojis.create({"name": "key"})
    assert bot.run().returncode == 0
    assert bot_view(server.url, issue.iid).state == "closed"
    assert [m["to"] for m in mail(server.url)] == [["admin@another-customer.example.com"]]


def test_3_nobody_but_the_approver_can_remove_an_approval_or_the_bots_claim(twin):
    """GitLab answers 401 to a DELETE of someone else's reaction, whatever the caller's role
    (lib/api/award_emoji.rb), and 404 "... has already been taken" to a user's second identical reaction
    (`AwardEmoji` validates `name` unique per user and awardable; the API's `not_found!("Award Emoji
    #{message}")`)."""
    server, bot = twin
    issue = client(server.url).issues.create({"title": "Emergency", "description": request_text(1)})
    assert bot.run().returncode == 0
    claims = as_user(server.url, "carol-token", issue.iid).awardemojis.list()
    (claim,) = [a for a in claims if a.user["username"] == "license-bot"]
    with pytest.raises(gitlab.exceptions.GitlabError) as refused:
        as_user(server.url, "carol-token", issue.iid).awardemojis.delete(claim.id)
    assert refused.value.response_code == 401
    with pytest.raises(gitlab.exceptions.GitlabCreateError) as again:
        as_user(server.url, "bot-token", issue.iid).awardemojis.create({"name": claim.name})
    assert again.value.response_code == 404 and "has already been taken" in str(again.value)


# Finding 5: the run lock is a label anyone can break.

def bot_lock(server) -> dict | None:
    """The bot's :lock: reaction on its home issue (the oldest it opened; read in-process), if a run holds it."""
    issues = server.sandbox.state["projects"][0]["issues"]
    record = min((i for i in issues if i["author_id"] == 3), key=lambda i: i["iid"], default=None)
    return next((a for a in (record or {}).get("awards", ()) if a["user_id"] == 3 and a["name"] == "lock"), None)


def test_5_nobody_below_the_bot_can_make_break_or_shadow_the_run_lock(twin):
    """The lock is the bot's own reaction on its home issue: carol's :lock: reaction is hers, a label named
    like the old lock (even a group's) means nothing, and the bot's reaction is hers to look at, not to
    delete (401, lib/api/award_emoji.rb), so a second run waits while the first holds it."""
    server, bot = twin
    client(server.url).issues.create({"title": "Emergency", "description": request_text(1)})
    assert bot.run().returncode == 0  # opens its home issue
    home_iid = bot_issues(server.url)[0].iid  # the home, where the lock lives
    as_carol = client(server.url, "carol-token")
    as_carol.issues.get(home_iid).awardemojis.create({"name": "lock"})
    as_carol.labels.create({"name": "license-bot-run-lock", "color": "#808080",
                            "description": json.dumps({"host": "x", "pid": 1, "since": "2099-01-01T00:00:00"})})
    client(server.url).issues.create({"title": "Emergency", "description": request_text(2)})
    first = bot.start()
    deadline = time.time() + 60
    while bot_lock(server) is None and time.time() < deadline:
        time.sleep(0.001)
    first.send_signal(signal.SIGSTOP)
    try:
        held = bot_lock(server)
        with pytest.raises(gitlab.exceptions.GitlabError) as refused:
            as_carol.issues.get(home_iid).awardemojis.delete(held["id"])
        assert refused.value.response_code == 401
        second = bot.run()
        assert second.returncode == 2 and "another run holds the run lock" in second.stdout
    finally:
        first.send_signal(signal.SIGCONT)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, out + err
    assert bot_lock(server) is None  # released
    assert sorted(m["to"][0] for m in mail(server.url)) == ["admin1@customer1.example.com",
                                                             "admin2@customer2.example.com"]


def test_5_overlapping_runs_with_the_lock_deleted_mid_run_send_one_email_per_request(twin):
    """Run A claims the first request and is paused (SIGSTOP, so the overlap does not depend on timing); the
    run lock A holds is removed (only an admin can: before issue 16 any Reporter could delete the label); run
    B takes the lock and runs; then A goes on with its stale view of everything. Each request still gets
    exactly one record entry, one email and one status note: each is claimed with the bot's own reaction
    before it is recorded, and GitLab refuses the second."""
    server, bot = twin
    issues = [client(server.url).issues.create({"title": f"Emergency {n}", "description": request_text(n)})
              for n in range(1, 9)]
    first = server.sandbox.state["projects"][0]["issues"][0]
    a = bot.start()
    deadline = time.time() + 60
    while not any(w["user_id"] == 3 for w in first.get("awards", ())) and time.time() < deadline:
        time.sleep(0.001)
    a.send_signal(signal.SIGSTOP)
    with server.sandbox.lock:  # an admin removes the bot's lock reaction (nobody else can): A's lock is gone
        for issue in server.sandbox.state["projects"][0]["issues"]:
            issue["awards"] = [w for w in issue.get("awards", ()) if w["name"] != "lock"]
    b = bot.run()
    a.send_signal(signal.SIGCONT)
    a_out, a_err = a.communicate(timeout=120)
    assert b.returncode in (0, 2) and a.returncode in (0, 2), b.stdout + b.stderr + a_out + a_err
    assert "another run claimed this request" in a_out + b.stdout  # they did overlap, and a claim decided
    final = bot.run()
    assert final.returncode == 0, final.stdout + final.stderr
    mails = mail(server.url)
    entries = record_entries(server)
    for issue in issues:
        issue = bot_view(server.url, issue.iid)
        assert issue.state == "closed" and len(status_notes(issue)) == 1
        assert [iid for _, iid in entries].count(issue.iid) == 1, entries
        email = f"admin{issue.iid}@customer{issue.iid}.example.com"
        assert [m["to"] for m in mails].count([email]) == 1, f"#{issue.iid} was emailed more than once"
    assert len(mails) == len(issues)


# Finding 7: quick-action injection.

def test_7_outside_text_in_a_note_never_runs_a_quick_action_as_the_bot(twin):
    """GitLab runs quick actions in notes and note edits posted through the API, as the poster
    (app/services/notes/create_service.rb, update_service.rb), wherever a line starts with `/command`
    (lib/gitlab/quick_actions/extractor.rb: `^\\/(?<cmd>...)`, after deleting every `\\r`). A Zendesk
    organisation named with a line break and `/close` reached the bot's note at a line start."""
    server, bot = twin
    bot.write_config(zendesk=True)
    from .test_zendesk import ticket

    ticket_id = ticket(server.url, "admin1@customer1.example.com")
    with server.sandbox.lock:
        server.sandbox.state["zendesk"]["organizations"][0]["name"] = (
            'ACME\r\n/label ~"license-request-override"\n/confidential\n/close')
    issue = client(server.url).issues.create({"title": "Emergency", "description": request_text(
        1, ticket=str(ticket_id))})
    result = bot.run()
    assert result.returncode == 0, result.stdout + result.stderr
    issue = bot_view(server.url, issue.iid)
    body = status_notes(issue)[0].body
    # Shown to people, never run: the sandbox runs a note's quick actions as its poster and removes them.
    assert '\n /label ~"license-request-override"\n /confidential\n /close' in body
    assert "license-request-override" not in issue.labels
    assert len(mail(server.url)) == 1
