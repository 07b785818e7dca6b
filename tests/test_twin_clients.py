"""Clients other than the bot see the GitLab twin as they would see GitLab: the same answers on reused
(keep-alive) connections, after refusals, through independent clients."""

from __future__ import annotations

import http.client
import json

import gitlab
import pytest

from .e2e import PROJECT

REFUSALS = [  # (method, path, token, body): each refused before the sandbox reads its body
    ("POST", "/api/v4/projects/1/labels", None, b"name=x&color=%23ff0000"),  # 401
    ("POST", "/api/v4/projects/1/labels", "mallory-token", b"name=" + b"x" * 5000 + b"&color=%23ff0000"),  # 403
    ("PUT", "/api/v4/projects/nobody%2Fnothing/issues/1", "alice-token", b'{"title": "t"}'),  # 404
    ("POST", "/api/v4/no/such/route", "alice-token", b'{"a": 1}'),  # 404, unknown route
    ("PATCH", "/api/v4/projects/1/issues/1", "alice-token", b'{"title": "t"}'),  # no PATCH route
]


def test_a_refused_request_with_a_body_leaves_the_keep_alive_connection_usable(sandbox):
    """Finding: the sandbox left refused requests' bodies unread, so the next request on the same keep-alive
    connection was parsed from that body and answered with an HTML 400/501."""
    conn = http.client.HTTPConnection("127.0.0.1", sandbox.port, timeout=10)
    seen = []
    for method, path, token, body in REFUSALS:
        headers = {"Content-Type": "application/json" if body.startswith(b"{") else
                   "application/x-www-form-urlencoded", **({"PRIVATE-TOKEN": token} if token else {})}
        conn.request(method, path, body=body, headers=headers)
        refused = conn.getresponse()
        seen.append((refused.status, refused.getheader("Content-Type")))
        json.loads(refused.read())  # GitLab's JSON error, never an HTML page
        sock = conn.sock
        conn.request("GET", "/api/v4/version", headers={"PRIVATE-TOKEN": "alice-token"})
        answer = conn.getresponse()
        assert answer.status == 200 and json.loads(answer.read())["version"], (method, path)
        assert conn.sock is sock  # the same connection carried both requests
    assert seen == [(401, "application/json"), (403, "application/json"), (404, "application/json"),
                    (404, "application/json"), (404, "application/json")]


def test_a_chunked_body_is_read_whole_and_the_connection_stays_usable(sandbox):
    """A client may send its body chunked (requests does for a generator); the sandbox must frame it too."""
    conn = http.client.HTTPConnection("127.0.0.1", sandbox.port, timeout=10)
    conn.request("POST", "/api/v4/projects/1/labels", body=iter([b"name=x", b"&color=%23ff0000"]),
                 encode_chunked=True, headers={"PRIVATE-TOKEN": "mallory-token",
                                               "Content-Type": "application/x-www-form-urlencoded"})
    refused = conn.getresponse()
    assert (refused.status, json.loads(refused.read())) == (403, {"message": "403 Forbidden"})
    sock = conn.sock
    conn.request("GET", "/api/v4/version", headers={"PRIVATE-TOKEN": "alice-token"})
    assert conn.getresponse().status == 200 and conn.sock is sock


def test_python_gitlab_version_after_a_refused_note_edit(sandbox):
    """Finding: python-gitlab's `version()` returned ('unknown', 'unknown') after a refused note edit, because
    its session reuses the connection the refusal left dirty."""
    alice = gitlab.Gitlab(sandbox.url, private_token="alice-token")
    note = alice.projects.get(PROJECT).issues.create({"title": "t"}).notes.create({"body": "mine"})
    carol = gitlab.Gitlab(sandbox.url, private_token="carol-token")
    theirs = carol.projects.get(PROJECT, lazy=True).issues.get(1, lazy=True).notes.get(note.id, lazy=True)
    theirs.body = "x" * 4000
    with pytest.raises(gitlab.exceptions.GitlabUpdateError) as info:
        theirs.save()
    assert info.value.response_code == 403
    assert carol.version()[0] != "unknown"
