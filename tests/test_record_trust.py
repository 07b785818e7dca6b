"""Issue 16, findings 6 and 8, as the people below the bot would do them, each with their own token over real
HTTP against the sandbox, on GitLab Free and Premium: the record of issued licenses cannot be rewritten,
re-ordered or thinned without the bot noticing, stays confidential, and the token the README prescribes can
check membership where a project access token cannot.

GitLab facts these tests rely on (each checked in gitlabhq/gitlabhq):
- Reporters and above edit any issue's description and confidentiality: ProjectPolicy
  (`app/policies/project_policy.rb`) enables `update_issue` and `admin_issue` for `reporter_access` (and
  `planner_access`).
- Deleting an issue takes `destroy_issue`: ProjectPolicy enables it for `planner_access` and `owner_access`
  only, so a Maintainer is refused (403) and a Planner or Owner may.
- Notes can be listed only by `order_by` (created_at, updated_at), `sort` and `activity_filter`
  (`lib/api/notes.rb`): no author filter, so comments on one issue cost a call per 100 whoever wrote them;
  issues filter by `author_id` (`lib/api/issues.rb`, IssuesFinder).
- A private group's members are readable only by those with access to the group (GroupPolicy
  `can_read_group_member?`: `!(private? && access_level == NO_ACCESS)`), while `read_group` is also granted to
  members of a project inside it (`has_projects`): a project access token's user (a member of its project
  only, and never of a group: gitlab-org/gitlab#408091) reads the group and is answered 403 for its members;
  a group it cannot read at all answers 404.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import pytest

from bot import config as config_mod
from bot import doctor

from .e2e import client, file, mail, status_notes
from .test_find_doctor import _secrets, cli


def entries(url, token="bot-token") -> list:
    """The record's entry issues, oldest first, as that user sees them."""
    issues = client(url, token).issues.list(author_username="license-bot", state="all", order_by="created_at",
                                            sort="asc", get_all=True)
    return [i for i in issues if "license-bot:record-entry" in (i.description or "")]


def checks(bot, token="bot-token", environ=None) -> dict:
    config = config_mod.load(bot.config_path, environ={})
    return {c.name: c for c in doctor.check(config, _secrets(bot, gitlab_token=token), environ=environ or {})}


def http(url: str, path: str, token: str, method: str = "GET") -> int:
    request = urllib.request.Request(f"{url}/api/v4{path}", method=method, headers={"PRIVATE-TOKEN": token})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def licenses(twin, count: int):
    """(server, bot, the requests, their record entry issues) after `count` runs made one license each."""
    server, bot = twin
    filed = []
    for n in range(1, count + 1):
        filed.append(file(server.url, n))
        assert bot.run().returncode == 0
    return server, bot, filed, entries(server.url)


def one_license(twin):
    """(server, bot, the request, its record entry issue) after one run made one license."""
    server, bot, (first,), (entry,) = licenses(twin, 1)
    return server, bot, first, entry


def held_note(url, iid) -> str:
    return status_notes(client(url, "bot-token").issues.get(iid))[0].body


# --- finding 6: record entries can be edited and deleted ----------------------------------------------------

def test_6_a_maintainer_who_re_points_and_back_dates_an_entry_is_undone_and_the_same_ticket_is_refused(twin):
    server, bot, first, entry = one_license(twin)
    original = entry.description
    # maya (Maintainer) re-points the entry to another ticket and back-dates it, with her own token: GitLab
    # lets any Reporter edit a description, and the issue's author stays the bot.
    as_maya = client(server.url, "maya-token").issues.get(entry.iid)
    as_maya.description = original.replace('"ticket_id":512001', '"ticket_id":999999').replace(
        '"made_on":"20', '"made_on":"19')
    as_maya.save()
    assert client(server.url, "bot-token").issues.get(entry.iid).author["username"] == "license-bot"
    record = checks(bot)["record of issued licenses"]
    assert record.ok is False and f"record entry issue #{entry.iid}" in record.detail
    assert "edited after the bot wrote it" in record.detail

    second = file(server.url, 2, ticket="512001", email="admin1@customer1.example.com")  # the same ticket and email
    result = bot.run()
    # The request's status note (the bot's own) kept the entry's digest: the rebuilt, re-signed entry is
    # proven to be the text the bot wrote, and is written back.
    assert result.returncode == 0 and f"#{entry.iid} is a record entry someone edited: restored" in result.stdout
    assert client(server.url, "bot-token").issues.get(entry.iid).description.strip() == original.strip()
    assert f"ticket 512001 already got a license in #{first.iid}" in held_note(server.url, second.iid)
    assert len(mail(server.url)) == 1 and checks(bot)["record of issued licenses"].ok


def test_6_an_entry_whose_fields_are_retyped_is_an_edited_entry_not_an_internal_error(twin):
    # The bug: `"seq": "1"` passed the entry's reading (int("1") is fine), then every comparison of `seq` raised
    # TypeError, so one edit by anyone who may edit the entry made every run that reads the record exit 1.
    server, bot, first, entry = one_license(twin)
    original = entry.description
    as_carol = client(server.url, "carol-token").issues.get(entry.iid)  # a Developer, through the shared group
    as_carol.description = original.replace('"seq":1,', '"seq":"1",').replace('"user_count":', '"user_count":true,'
                                                                                 '"x":')
    as_carol.save()
    record = checks(bot)["record of issued licenses"]
    assert record.ok is False and f"record entry issue #{entry.iid}: holds no readable record entry" in record.detail

    second = file(server.url, 2, ticket="512001", email="admin1@customer1.example.com")  # the same ticket and email
    result = bot.run()
    # Not an internal error (exit 1) but an entry nobody can read: held for a person, as an erased one is.
    assert result.returncode == 0 and f"#{second.iid} failed: held for a person" in result.stdout, result.stderr
    note = held_note(server.url, second.iid)
    assert "the record of issued licenses is damaged" in note and f"record entry issue #{entry.iid}" in note
    assert len(mail(server.url)) == 1  # the first request's email only

    as_carol.description = original  # restored from the issue's history: the ticket's license counts again
    as_carol.save()
    assert bot.run().returncode == 0
    assert f"ticket 512001 already got a license in #{first.iid}" in held_note(server.url, second.iid)


def test_6_an_erased_entry_holds_the_same_ticket_and_email_for_a_person_until_it_is_restored(twin):
    server, bot, first, entry = one_license(twin)
    original = entry.description
    as_maya = client(server.url, "maya-token").issues.get(entry.iid)
    as_maya.description = "nothing to see here"  # no request named: the bot cannot rebuild it
    as_maya.save()

    second = file(server.url, 2, ticket="512001", email="admin1@customer1.example.com")
    result = bot.run()
    assert result.returncode == 0 and f"#{second.iid} failed: held for a person" in result.stdout
    note = held_note(server.url, second.iid)
    assert "the record of issued licenses is damaged" in note and f"record entry issue #{entry.iid}" in note
    assert len(mail(server.url)) == 1  # the first request's email only

    record = checks(bot)["record of issued licenses"]
    assert record.ok is False and f"record entry issue #{entry.iid}" in record.detail and "Restore" in record.fix
    found = cli(bot, "find", "admin1@customer1.example.com")  # lists the held request, and says what may be missing
    assert f"record entry issue #{entry.iid}" in found.stderr and "may be missing from this list" in found.stderr
    assert f"#{first.iid}  NOT IN THE RECORD" in found.stdout and "NOT MADE BY THE BOT" not in found.stdout
    nothing = cli(bot, "find", "someone.else@example.com")  # "nothing found" would be a claim it cannot make
    assert nothing.returncode == 1 and "a lost entry may be this address's license" in nothing.stderr

    as_maya.description = original  # a person restores it from the issue's history: the hold lifts
    as_maya.save()
    assert bot.run().returncode == 0
    assert f"ticket 512001 already got a license in #{first.iid}" in held_note(server.url, second.iid)
    assert len(mail(server.url)) == 1 and checks(bot)["record of issued licenses"].ok


def test_6_a_maintainer_cannot_delete_an_entry_and_a_planners_deletion_holds_the_same_ticket_and_email(twin):
    server, bot, _, (one, two) = licenses(twin, 2)
    path = f"/projects/support%2Finternal-requests/issues/{one.iid}"
    assert http(server.url, path, "maya-token", "DELETE") == 403  # Maintainer: no destroy_issue
    assert http(server.url, path, "pete-token", "DELETE") == 204  # Planner: destroy_issue

    again = file(server.url, 3, ticket="512001", email="admin1@customer1.example.com")  # the same day
    result = bot.run()
    assert result.returncode == 0 and f"#{again.iid} failed: held for a person" in result.stdout
    note = held_note(server.url, again.iid)
    assert f"record entry 2 (issue #{two.iid})" in note and "entry 1, the one it follows, is missing" in note
    assert len(mail(server.url)) == 2  # requests 1 and 2; never a second license for ticket 512001
    detail = checks(bot)["record of issued licenses"].detail
    assert f"record entry 2 (issue #{two.iid})" in detail and "entry 1" in detail


def test_6_an_entry_copied_over_another_is_detected(twin):
    server, bot = twin
    for n in (1, 2):
        file(server.url, n)
        assert bot.run().returncode == 0
    one, two = entries(server.url)
    as_maya = client(server.url, "maya-token").issues.get(one.iid)
    as_maya.description = two.description  # entry 2's text copied over entry 1
    as_maya.save()
    detail = checks(bot)["record of issued licenses"].detail
    assert f"record entry 2 (issue #{two.iid})" in detail and "entry 1, the one it follows, is missing" in detail


def test_6_a_developer_who_makes_the_record_non_confidential_is_undone_by_the_next_run_and_doctor_says_so(twin):
    server, bot = twin
    request = file(server.url, 1)
    assert bot.run().returncode == 0
    (entry,) = entries(server.url)
    path = f"/projects/support%2Finternal-requests/issues/{entry.iid}"
    assert http(server.url, path, "dave-token") == 404  # a Guest cannot see a confidential issue
    for iid in (entry.iid, request.iid):  # alice (Developer) makes the entry and the served request public
        as_alice = client(server.url, "alice-token").issues.get(iid)
        as_alice.confidential = False
        as_alice.save()
    assert http(server.url, path, "dave-token") == 200  # ... and now every Guest reads the key
    exposed = checks(bot)["license keys confidential"]
    assert exposed.ok is False and f"#{entry.iid}" in exposed.detail and f"#{request.iid}" in exposed.detail

    file(server.url, 2)
    result = bot.run()
    assert result.returncode == 0
    assert f"#{entry.iid} holds a license key but someone made it non-confidential" in result.stdout
    assert http(server.url, path, "dave-token") == 404
    assert client(server.url, "bot-token").issues.get(request.iid).confidential
    assert checks(bot)["license keys confidential"].ok


def test_6_reading_the_record_costs_calls_per_license_not_per_foreign_comment(twin):
    server, bot = twin
    file(server.url, 1)
    assert bot.run().returncode == 0
    (entry,) = entries(server.url)
    issue = server.sandbox.state["projects"][0]["issues"][entry.iid - 1]
    issue["notes"] += [{"id": 100000 + n, "body": f"spam {n}", "author_id": 2, "system": False,
                        "created_at": issue["created_at"], "updated_at": issue["created_at"]} for n in range(1000)]
    before = len(server.sandbox.requests)
    file(server.url, 2)
    assert bot.run().returncode == 0
    reads = [p for m, p, _ in server.sandbox.requests[before:] if m == "GET" and "/notes" in p
             and f"/issues/{entry.iid}/" in p]
    assert reads == []  # 1,000 comments on the entry are never read


# --- finding 8: the token the README prescribes can check membership ----------------------------------------

def test_8_a_project_access_token_reads_the_group_but_not_its_members(twin):
    server, _ = twin
    assert http(server.url, "/groups/support", "tracker-bot-token") == 200  # a project inside it: read_group
    assert http(server.url, "/groups/support/members/1", "tracker-bot-token") == 403  # read_group_member denied
    assert http(server.url, "/groups/hidden/members/1", "tracker-bot-token") == 404  # cannot read the group
    assert http(server.url, "/groups/support-managers/members/7", "tracker-bot-token") == 200  # internal group
    assert http(server.url, "/groups/support/members/1", "support-bot-token") == 200  # group access token's user
    assert http(server.url, "/groups/support%2Femea/members/4", "support-bot-token") == 200  # and its subgroups


def test_8_doctor_refuses_a_project_access_token_with_the_fix_and_the_run_stops_before_any_request(twin):
    server, bot = twin
    groups = checks(bot, "tracker-bot-token")["requester and approver groups"]
    assert groups.ok is False
    assert "may read group support but not its members (403)" in groups.detail
    assert "project access token's user can never join a group" in groups.detail
    request = file(server.url, 1)
    result = _run_as(bot, "tracker-bot-token")
    assert result.returncode == 1 and "not its members (403)" in result.stderr
    assert status_notes(client(server.url, "bot-token").issues.get(request.iid)) == []  # untouched
    assert mail(server.url) == []


@pytest.mark.parametrize("token", ["bot-token", "support-bot-token"])
def test_8_a_dedicated_users_or_a_group_access_tokens_user_reads_members_and_serves_requests(twin, token):
    server, bot = twin
    groups = checks(bot, token)["requester and approver groups"]
    assert groups.ok and "members of support, support-managers" in groups.detail
    request = file(server.url, 1)
    result = _run_as(bot, token)
    assert result.returncode == 0, result.stdout + result.stderr
    assert client(server.url, "bot-token").issues.get(request.iid).state == "closed" and len(mail(server.url)) == 1


def _run_as(bot, token):
    import subprocess

    return subprocess.run(bot.command(), capture_output=True, text=True, env={**bot.env(), "GITLAB_TOKEN": token},
                          timeout=120)


def test_the_record_entry_is_json_that_names_every_field_it_signs(twin):
    server, bot = twin
    file(server.url, 1)
    assert bot.run().returncode == 0
    (entry,) = entries(server.url)
    data = json.loads(re.search(r"license-bot:record-entry (\{.*\}) -->", entry.description).group(1))
    assert {"license_id", "sha256", "email", "user_count", "ticket_id", "issue_iid", "made_on", "expires_on",
            "seq", "prev", "sig"} <= set(data) and data["seq"] == 1 and entry.confidential and entry.state == "closed"


def test_8_the_schedule_check_reads_the_bots_own_project_when_it_is_not_the_tracker(twin):
    # GET /projects/:id/pipeline_schedules needs read_pipeline_schedule (lib/api/ci/pipeline_schedules.rb),
    # which ProjectPolicy gives to reporter_access; a private project answers 404 to non-members.
    server, bot = twin
    in_ci = {"GITLAB_CI": "true", "CI_PROJECT_ID": "2"}  # support/license-bot runs the bot, the tracker is 1
    schedule = checks(bot, environ=in_ci)["schedule"]
    assert schedule.ok and "@mike (active)" in schedule.detail
    refused = checks(bot, "tracker-bot-token", environ=in_ci)["schedule"]
    assert refused.ok is False and "Reporter role in the bot's project 2" in refused.fix
    assert "project access token of the tracker cannot reach another project" in refused.fix


def test_6_old_unsigned_entries_count_until_the_first_run_moves_them_into_the_signed_chain(twin):
    """Decided for the entries the code before signing wrote (comments on one record issue): verified by
    their keys as before and reported as unchained, then migrated once by the first run that makes a license;
    from then on the old issue, and the comments anyone adds to it, are never read again."""
    from datetime import date

    from bot import keys
    from bot import license as lic_mod
    from bot.record import ISSUE_TITLE, Entry, entry_note

    server, bot = twin
    private = keys.load_private_key(bot.private_key.read_bytes())
    lic = lic_mod.build_trial("old@example.org", 40, date.today(), lic_mod.TrialTerms())
    key = lic_mod.sign(lic, private, date.today(), boundary=lic_mod.DEFAULT_BOUNDARY)
    old = Entry(lic_mod.license_id(key), lic_mod.fingerprint(key), 77, "u", "old@example.org", 40, 513000,
                "https://gitlab.zendesk.com/agent/tickets/513000", date.today().isoformat(), str(lic.expires_at),
                "f.gitlab-license")
    as_bot = client(server.url, "bot-token")
    legacy = as_bot.issues.create({"title": ISSUE_TITLE, "description": "the old record", "confidential": True})
    legacy.notes.create({"body": entry_note(old, key)})  # as the old code wrote it: unsigned
    legacy.notes.create({"body": "a comment by someone else"})
    before = checks(bot)["record of issued licenses"]
    assert before.ok and "1 older unsigned entries" in before.detail and f"#{legacy.iid}" in before.detail

    refused = file(server.url, 1, ticket="513000")  # the old entry's ticket still counts
    served = file(server.url, 2)
    assert bot.run().returncode == 0
    assert "ticket 513000 already got a license in #77" in held_note(server.url, refused.iid)
    assert client(server.url, "bot-token").issues.get(served.iid).state == "closed"
    chain = [json.loads(re.search(r"license-bot:record-entry (\{.*\}) -->", i.description).group(1))
             for i in entries(server.url)]
    assert [(e["seq"], e["email"], bool(e["legacy_note"])) for e in chain] == [
        (1, "old@example.org", True), (2, "admin2@customer2.example.com", False)]
    assert chain[0]["prev"] == f"legacy:#{legacy.iid}:1"
    after = checks(bot)["record of issued licenses"]
    assert after.ok and after.detail == "2 licenses, every entry signed and chained"
    mark = len(server.sandbox.requests)
    file(server.url, 3)
    assert bot.run().returncode == 0
    assert not [p for _, p, _ in server.sandbox.requests[mark:] if f"/issues/{legacy.iid}/notes" in p]


def test_8_changing_the_token_to_another_user_keeps_the_record_once_the_old_user_is_listed(twin):
    """Moving from one token kind to another changes the bot's user: the record is the issues the bot's user
    opened, so doctor warns while it looks empty, and `requests.record_authors` keeps the old entries."""
    server, bot = twin
    first = file(server.url, 1)
    assert bot.run().returncode == 0  # recorded by license-bot
    warned = checks(bot, "support-bot-token")["record of issued licenses"]
    assert warned.ok and warned.warn and "requests.record_authors" in warned.fix
    bot.write_config(requests={"record_authors": ["license-bot"]})
    assert checks(bot, "support-bot-token")["record of issued licenses"].detail.startswith("1 license,")

    again = file(server.url, 2, ticket="512001")
    assert _run_as(bot, "support-bot-token").returncode == 0
    notes = client(server.url, "bot-token").issues.get(again.iid).notes.list(get_all=True)
    assert any(f"ticket 512001 already got a license in #{first.iid}" in n.body for n in notes)
    file(server.url, 3)
    assert _run_as(bot, "support-bot-token").returncode == 0  # support-bot's entry chains after license-bot's
    record = checks(bot, "support-bot-token")["record of issued licenses"]
    assert record.ok and record.detail == "2 licenses, every entry signed and chained"
    assert len(mail(server.url)) == 2


def test_6_an_edited_entry_the_bot_can_prove_is_restored_by_the_next_run_and_nothing_waits(twin):
    """A Reporter can edit any description. For an entry with a later one, the bot rebuilds it from the
    request's status note (its own note) and its place, and proves it by the next entry's digest: restored, so
    an edit by anyone below Maintainer holds nothing. The newest entry has no proof: it is held (above)."""
    server, bot = twin
    for n in (1, 2):
        file(server.url, n)
        assert bot.run().returncode == 0
    one, _ = entries(server.url)
    original = one.description
    as_maya = client(server.url, "maya-token").issues.get(one.iid)
    as_maya.description = original.replace('"ticket_id":512001', '"ticket_id":999999')
    as_maya.save()
    assert checks(bot)["record of issued licenses"].ok is False

    again = file(server.url, 3, ticket="512001")  # the edited entry's real ticket
    result = bot.run()
    assert result.returncode == 0 and f"#{one.iid} is a record entry someone edited: restored" in result.stdout
    assert client(server.url, "bot-token").issues.get(one.iid).description.strip() == original.strip()
    assert "ticket 512001 already got a license in #1" in held_note(server.url, again.iid)
    assert len(mail(server.url)) == 2 and checks(bot)["record of issued licenses"].ok


def test_6_the_webhook_a_confidentiality_change_fires_restores_it_at_once(twin):
    """GitLab sends an issue event when someone changes an issue (the bot ignores only its own events), so a
    webhook-triggered run for the changed entry restores it without waiting for a request."""
    import subprocess

    server, bot = twin
    file(server.url, 1)
    assert bot.run().returncode == 0
    (entry,) = entries(server.url)
    as_alice = client(server.url, "alice-token").issues.get(entry.iid)
    as_alice.confidential = False
    as_alice.save()
    event = {"object_kind": "issue", "event_type": "issue", "user": {"username": "alice"},
             "project": {"path_with_namespace": "support/internal-requests"},
             "object_attributes": {"iid": entry.iid, "action": "update"}}
    env = {**bot.env(), "CI_PIPELINE_SOURCE": "trigger", "TRIGGER_PAYLOAD": json.dumps(event)}
    result = subprocess.run(bot.command(), capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"#{entry.iid} holds a license key but someone made it non-confidential" in result.stdout
    assert client(server.url, "bot-token").issues.get(entry.iid).confidential
