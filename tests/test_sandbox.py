"""The sandbox keeps GitLab's shapes, status codes and semantics, with python-gitlab as the client."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import gitlab
import pytest

from bot.sandbox import SandboxServer

from .e2e import PROJECT, client


def raw(url: str, path: str, token: str | None = "alice-token", method: str = "GET", data: bytes | None = None):
    request = urllib.request.Request(f"{url}{path}", method=method, data=data,
                                     headers={"PRIVATE-TOKEN": token} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
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


def test_quick_actions_apply_for_reporters_and_drop_label_and_assign_below(sandbox):
    text = 'Hello\n/label ~"license-request" ~urgent\n/confidential\n/assign me\nBye'
    alice = client(sandbox.url).issues.create({"title": "a", "description": text})
    assert alice.labels == ["license-request", "urgent"] and alice.confidential
    assert alice.description == "Hello\nBye" and [a["username"] for a in alice.assignees] == ["alice"]
    mallory = client(sandbox.url, "mallory-token").issues.create({"title": "m", "description": text})
    assert mallory.labels == [] and mallory.confidential and mallory.assignees == []
    assert mallory.description == "Hello\nBye"


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
