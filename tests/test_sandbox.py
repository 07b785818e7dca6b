"""The sandbox keeps GitLab's shapes, status codes and semantics, with python-gitlab as the client."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import quote

import gitlab
import pytest

from bot.sandbox import SandboxServer

from .e2e import PROJECT, client


def raw(url: str, path: str, token: str | None = "alice-token", method: str = "GET", data: bytes | None = None,
        headers: dict | None = None, json_body: bool = False):
    headers = {**({"PRIVATE-TOKEN": token} if token else {}), **(headers or {})}
    if json_body:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(f"{url}{path}", method=method, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_error_bodies_are_gitlabs(sandbox):
    assert raw(sandbox.url, "/api/v4/user", token=None)[::2] == (401, b'{"message": "401 Unauthorized"}')
    assert raw(sandbox.url, "/api/v4/projects/nobody%2Fnothing")[::2] == (404, b'{"message": "404 Project Not Found"}')
    status, _, body = raw(sandbox.url, f"/api/v4/projects/{PROJECT.replace('/', '%2F')}/labels", token="mallory-token",
                          method="POST", data=b"name=x&color=%23ff0000")
    assert (status, json.loads(body)) == (403, {"message": "403 Forbidden"})


def test_private_projects_do_not_exist_for_outsiders(sandbox):
    sandbox.sandbox.state["projects"][0]["members"].pop("2")  # mallory leaves the project
    with pytest.raises(gitlab.exceptions.GitlabGetError) as info:
        client(sandbox.url, "mallory-token")
    assert info.value.response_code == 404


def test_quick_actions_on_a_new_issue_apply_for_members_of_any_role_guests_included(sandbox):
    """GitLab's IssuePolicy: `set_issue_metadata` for any project member on a new issue; `/label` applies only
    existing labels, and a quick action that applies nothing stays in the text (quick actions docs)."""
    text = 'Hello\n/label ~"license-request" ~urgent\n/confidential\n/assign me\nBye'
    for token, user in (("alice-token", "alice"), ("mallory-token", "mallory")):  # Developer, Guest
        issue = client(sandbox.url, token).issues.create({"title": "a", "description": text})
        assert issue.labels == ["license-request"] and issue.confidential  # ~urgent does not exist
        assert issue.description == "Hello\nBye" and [a["username"] for a in issue.assignees] == [user]
    nothing = client(sandbox.url, "mallory-token").issues.create({"title": "n", "description": "/label ~nope"})
    assert nothing.labels == [] and nothing.description == "/label ~nope"
    labelled = client(sandbox.url, "mallory-token").issues.create({"title": "l", "labels": "license-request-override"})
    assert labelled.labels == ["license-request-override"]  # labels= on create: a Guest may set any label


def test_scoped_labels_and_several_assignees_only_on_premium():
    """Scoped labels replace each other and issues take several assignees on paid tiers only (GitLab docs:
    "Scoped labels", "Multiple assignees": Premium and Ultimate)."""
    from bot.sandbox import SandboxServer

    for edition, labels, assignees in (("premium", ["s::b"], 2), ("free", ["s::a", "s::b"], 1)):
        with SandboxServer(edition=edition) as server:
            issue = client(server.url).issues.create({"title": "x", "labels": "s::a", "assignee_ids": [1, 4]})
            issue.labels = [*issue.labels, "s::b"]
            issue.save()
            issue = client(server.url).issues.get(issue.iid)
            assert sorted(issue.labels) == labels and len(issue.assignees) == assignees, edition


def test_search_is_rate_limited_per_user_with_a_429_and_no_retry_after():
    """search_rate_limit: 30 per minute per user by default; over it 429 without Retry-After."""
    from bot.sandbox import SandboxServer

    with SandboxServer(search_rate_limit=3) as server:
        now = [1000]  # the limiter's clock, moved by hand: a slow machine cannot stretch the minute
        server.sandbox.search_limit.clock = lambda: now[0]
        answers = [raw(server.url, "/api/v4/projects/1/issues?search=x", "alice-token") for _ in range(4)]
        assert [a[0] for a in answers] == [200, 200, 200, 429] and "Retry-After" not in answers[3][1]
        assert raw(server.url, "/api/v4/projects/1/issues?search=x", "bot-token")[0] == 200  # per user
        assert raw(server.url, "/api/v4/projects/1/issues", "alice-token")[0] == 200  # listing is not search
        now[0] += 59
        assert raw(server.url, "/api/v4/projects/1/issues?search=x", "alice-token")[0] == 429
        now[0] += 1
        assert raw(server.url, "/api/v4/projects/1/issues?search=x", "alice-token")[0] == 200  # a minute on


def test_groups_direct_inherited_shared_and_private(sandbox):
    """members/all answers for inherited and shared-group members, members/:id for direct ones only, and a
    private group is 404 to anyone who is not in it (Group members API; GroupPolicy)."""
    def member(path, uid, all_=False):
        return raw(sandbox.url, f"/api/v4/groups/{quote(path, safe='')}/members/{'all/' if all_ else ''}{uid}",
                   "bot-token")[0]
    assert member("support/emea", 1, all_=True) == 200 and member("support/emea", 1) == 404  # alice: inherited
    assert member("support/emea", 4) == 200  # emil: direct
    assert member("support", 5, all_=True) == 200 and member("support", 5) == 404  # carol: through contractors
    status, _, body = raw(sandbox.url, "/api/v4/groups/support/members/6", "bot-token")
    assert status == 200 and json.loads(body)["access_level"] == 10  # dave: a Guest
    assert raw(sandbox.url, "/api/v4/groups/hidden", "bot-token")[0] == 404
    assert raw(sandbox.url, "/api/v4/groups/hidden", "alice-token")[0] == 200


def test_version_token_schedules_label_events_and_single_notes(sandbox):
    status, _, body = raw(sandbox.url, "/api/v4/version", "bot-token")
    assert json.loads(body)["version"].startswith("18.") and json.loads(body)["version"].endswith("-ee")
    token = json.loads(raw(sandbox.url, "/api/v4/personal_access_tokens/self", "bot-token")[2])
    assert token["scopes"] == ["api"] and token["expires_at"]
    schedules = json.loads(raw(sandbox.url, "/api/v4/projects/1/pipeline_schedules", "bot-token")[2])
    assert schedules[0]["active"] and schedules[0]["owner"]["username"] == "mike"
    issue = client(sandbox.url).issues.create({"title": "x"})
    before = client(sandbox.url).issues.get(issue.iid).updated_at
    note = issue.notes.create({"body": "hello"})
    issue.labels = ["a"]
    issue.save()
    (event,) = json.loads(raw(sandbox.url, f"/api/v4/projects/1/issues/{issue.iid}/resource_label_events",
                              "bot-token")[2])
    assert (event["user"]["username"], event["action"], event["label"]["name"]) == ("alice", "add", "a")
    note.body = "edited"
    note.save()
    assert client(sandbox.url).issues.get(issue.iid).updated_at > before  # a note edit touches the issue
    assert issue.notes.get(note.id).body == "edited"
    assert raw(sandbox.url, f"/api/v4/projects/1/issues/{issue.iid}/notes/{note.id}", "mallory-token",
               method="DELETE")[0] in (403, 404)
    issue.notes.delete(note.id)
    assert issue.notes.list(get_all=True) == [] or all(n.system for n in issue.notes.list(get_all=True))


def test_confidential_issues_are_hidden_from_guests_but_not_their_authors(sandbox):
    client(sandbox.url).issues.create({"title": "secret", "description": "/confidential"})
    own = client(sandbox.url, "mallory-token").issues.create({"title": "mine", "confidential": True})
    visible = [i.iid for i in client(sandbox.url, "mallory-token").issues.list(get_all=True)]
    assert visible == [own.iid]


def test_pagination_headers_and_filters(sandbox):
    project = client(sandbox.url)
    for n in range(5):
        project.issues.create({"title": f"issue {n}", "labels": "a" if n % 2 else "a,b"})
    status, headers, body = raw(sandbox.url, "/api/v4/projects/1/issues?per_page=2&page=2&labels=a&sort=asc")
    assert status == 200 and [i["title"] for i in json.loads(body)] == ["issue 2", "issue 3"]
    assert (headers["X-Page"], headers["X-Total"], headers["X-Total-Pages"], headers["X-Next-Page"]) == \
        ("2", "5", "3", "3")
    assert 'rel="next"' in headers["Link"] and "page=3" in headers["Link"]
    assert len(project.issues.list(labels=["a", "b"], get_all=True)) == 3
    assert len(project.issues.list(**{"not[labels]": "b"}, get_all=True)) == 2
    assert [i.title for i in project.issues.list(search="ISSUE 4", get_all=True)] == ["issue 4"]  # fuzzy


def test_scoped_labels_are_exclusive_within_a_scope(sandbox):
    issue = client(sandbox.url).issues.create({"title": "x", "labels": "state::a,other"})
    issue = client(sandbox.url, "bot-token").issues.update(issue.iid, {"add_labels": "state::b"})
    assert sorted(issue["labels"]) == ["other", "state::b"]


def test_creating_an_existing_label_is_409(sandbox):
    project = client(sandbox.url, "bot-token")
    project.labels.create({"name": "once", "color": "#ff0000"})
    with pytest.raises(gitlab.exceptions.GitlabCreateError) as info:
        project.labels.create({"name": "once", "color": "#ff0000"})
    assert info.value.response_code == 409


def test_uploads_download_with_auth_only(sandbox):
    upload = client(sandbox.url, "bot-token").upload("a.gitlab-license", filedata=b"KEY")
    assert upload["markdown"] == f"[a.gitlab-license]({upload['url']})"
    assert upload["full_path"] == f"/-/project/1{upload['url']}"
    path = f"/api/v4/projects/1{upload['url']}"
    assert raw(sandbox.url, path, token="bot-token")[::2] == (200, b"KEY")
    assert raw(sandbox.url, path, token=None)[0] == 401


def test_state_survives_a_restart(tmp_path):
    state = tmp_path / "state.json"
    with SandboxServer(state_file=str(state)) as server:
        client(server.url).issues.create({"title": "kept"})
    with SandboxServer(state_file=str(state)) as server:
        assert [i.title for i in client(server.url).issues.list(get_all=True)] == ["kept"]


def test_the_request_log_counts_api_calls(sandbox):
    client(sandbox.url).issues.list(get_all=True)
    log = json.loads(raw(sandbox.url, "/sandbox/requests")[2])
    assert log["total"] == 2 and log["by_method"] == {"GET": 2}  # the project, then its issues


# --- issue 16: reactions, description edits and quick actions in notes, as GitLab has them ---------------

def test_a_reaction_is_once_per_user_and_only_its_user_removes_it(sandbox):
    """lib/api/award_emoji.rb (gitlabhq): POST answers `not_found!("Award Emoji #{message}")` when the award
    is not saved, and `AwardEmoji` validates `name` unique per user, awardable type and id (app/models/
    award_emoji.rb), so a user's second identical reaction is 404 "... Name has already been taken ...";
    DELETE answers `unauthorized!` (401) `unless award.user == current_user || current_user.admin?`,
    whatever the caller's role. The same routes exist under a note (`.../notes/:note_id/award_emoji`)."""
    issue = client(sandbox.url).issues.create({"title": "x"})
    path = f"/api/v4/projects/1/issues/{issue.iid}/award_emoji"
    status, _, body = raw(sandbox.url, path, "mike-token", "POST", b"name=key")
    award = json.loads(body)
    assert status == 201 and award["name"] == "key" and award["user"]["username"] == "mike"
    status, _, body = raw(sandbox.url, path, "mike-token", "POST", b"name=key")
    assert status == 404 and "has already been taken" in json.loads(body)["message"]
    assert raw(sandbox.url, path, "alice-token", "POST", b"name=key")[0] == 201  # another user's own reaction
    assert raw(sandbox.url, f"{path}/{award['id']}", "bot-token", "DELETE")[0] == 401  # a Maintainer, not its user
    assert raw(sandbox.url, f"{path}/{award['id']}", "mike-token", "DELETE")[0] == 204
    note = issue.notes.create({"body": "hello"})
    note_path = f"/api/v4/projects/1/issues/{issue.iid}/notes/{note.id}/award_emoji"
    assert raw(sandbox.url, note_path, "mike-token", "POST", b"name=thumbsup")[0] == 201
    assert [a["name"] for a in json.loads(raw(sandbox.url, note_path)[2])] == ["thumbsup"]


def test_a_description_edit_leaves_a_system_note_by_the_editor(sandbox):
    """app/services/system_notes/issuables_service.rb `change_description`: body "changed the description",
    action "description", author the user performing the change; on every tier."""
    issue = client(sandbox.url).issues.create({"title": "x", "description": "one"})
    as_carol = client(sandbox.url, "carol-token").issues.get(issue.iid)
    as_carol.description = "two"
    as_carol.save()
    notes = [n for n in issue.notes.list(get_all=True) if n.system]
    assert [(n.body, n.author["username"]) for n in notes] == [("changed the description", "carol")]


def test_quick_actions_run_in_notes_and_edits_as_the_poster_outside_code(sandbox):
    """GitLab runs quick actions in notes and note edits as the poster (app/services/notes/create_service.rb,
    update_service.rb, through app/services/notes/quick_actions_service.rb with the note's current_user and
    `Issues::UpdateService`) and in description edits (Issues::UpdateService), where a line starts with `/cmd`,
    not inside a fenced code block, an HTML block or a `>>>` quote (lib/gitlab/quick_actions/extractor.rb);
    labels need Reporter on an existing issue; a note of commands only is not saved (202)."""
    project = client(sandbox.url, "bot-token")
    issue = project.issues.create({"title": "x"})
    note = issue.notes.create({"body": "hello\n/label ~license-request-override"})
    assert client(sandbox.url, "bot-token").issues.get(issue.iid).labels == ["license-request-override"]
    assert note.body == "hello"
    issue.notes.create({"body": "```\n/close\n```\n<p>\n/close\n</p>\n /close"})  # code, HTML, not a line start
    assert client(sandbox.url, "bot-token").issues.get(issue.iid).state == "opened"
    note = issue.notes.create({"body": "fine"})
    note.body = "fine\n/close"
    note.save()  # a note edit runs them too
    assert client(sandbox.url, "bot-token").issues.get(issue.iid).state == "closed"
    # A Guest's note on someone else's issue: the label is not applied (Reporter needed), the text stays.
    issue = project.issues.create({"title": "y"})
    as_mallory = client(sandbox.url, "mallory-token").issues.get(issue.iid)
    as_mallory.notes.create({"body": "hi\n/label ~license-request-override\n/close"})
    issue = client(sandbox.url, "bot-token").issues.get(issue.iid)
    assert issue.labels == [] and issue.state == "opened"
    # A description edit runs its quick actions as the editor.
    issue = client(sandbox.url, "bot-token").issues.get(issue.iid)  # fresh: python-gitlab resends read lists
    issue.description = "text\n/label ~license-request::failed"
    issue.save()
    issue = client(sandbox.url, "bot-token").issues.get(issue.iid)
    assert issue.labels == ["license-request::failed"] and issue.description == "text"


def test_a_mail_sink_that_is_down_refuses_connections_and_keeps_its_port_from_other_processes():
    """Two test sessions at once (a busy CI machine): while one sandbox's sink is down, the other's free-port pick
    (a bind to port 0, mailsink.free_port) must not land on its port, or the bot's mail would reach the wrong sink."""
    import smtplib
    import socket

    with SandboxServer() as server:
        server.smtp_switch(False)
        with socket.socket() as other, pytest.raises(OSError):
            other.bind(("127.0.0.1", server.smtp_port))
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", server.smtp_port), timeout=5)
        server.smtp_switch(True)
        smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=5).quit()
