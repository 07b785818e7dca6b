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


# --- tokens in headers only; no cross-origin writes (issue 20) -----------------------------------------------

def _call(sandbox, method, path, body=b"", headers=None, host=None):
    conn = http.client.HTTPConnection("127.0.0.1", sandbox.port, timeout=10)
    conn.putrequest(method, path, skip_host=True)
    conn.putheader("Host", host or f"127.0.0.1:{sandbox.port}")
    for k, v in {"Content-Length": str(len(body)), **(headers or {})}.items():
        conn.putheader(k, v)
    conn.endheaders(body)
    answer = conn.getresponse()
    return answer.status, json.loads(answer.read() or b"null")


def _issue_titles(sandbox):
    return [i["title"] for i in sandbox.sandbox.state["projects"][0]["issues"]]


def test_a_token_counts_only_in_the_private_token_or_bearer_header(sandbox):
    """Finding (issue 20): the sandbox took `private_token` from the query string and form bodies, so a URL or
    a form on any page could act as the token's owner."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert _call(sandbox, "GET", "/api/v4/user?private_token=alice-token")[0] == 401
    assert _call(sandbox, "POST", "/api/v4/projects/1/issues", b"private_token=alice-token&title=t", form)[0] == 401
    assert _call(sandbox, "GET", "/api/v4/user", headers={"PRIVATE-TOKEN": "alice-token"})[1]["username"] == "alice"
    assert _call(sandbox, "GET", "/api/v4/user", headers={"Authorization": "Bearer alice-token"})[1][
        "username"] == "alice"
    assert _call(sandbox, "GET", "/api/v4/user", headers={"Authorization": "Basic alice-token"})[0] == 401
    assert _issue_titles(sandbox) == []


def test_writes_from_another_origin_or_host_are_refused(sandbox):
    """Finding (issue 20): the sandbox checked neither Host nor Origin. A write with a foreign Origin or a
    cross-site fetch mark is refused, and any request naming another Host (DNS rebinding) is too."""
    token = {"PRIVATE-TOKEN": "alice-token", "Content-Type": "application/x-www-form-urlencoded"}
    for extra in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"},
                  {"Origin": f"http://127.0.0.1:{sandbox.port + 1}"}):
        assert _call(sandbox, "POST", "/api/v4/projects/1/issues", b"title=csrf", {**token, **extra})[0] == 403
    assert _call(sandbox, "GET", "/api/v4/user", headers=token, host="evil.example")[0] == 421
    assert _call(sandbox, "POST", "/sandbox/smtp/down", host=f"rebind.example:{sandbox.port}")[0] == 421
    assert _issue_titles(sandbox) == []
    same = {**token, "Origin": f"http://127.0.0.1:{sandbox.port}", "Sec-Fetch-Site": "same-origin"}
    assert _call(sandbox, "POST", "/api/v4/projects/1/issues", b"title=mine", same)[0] == 201
    assert _call(sandbox, "POST", "/api/v4/projects/1/issues", b"title=localhost", token,
                 host=f"localhost:{sandbox.port}")[0] == 201


def test_a_cross_site_form_in_a_real_browser_creates_no_issue(sandbox, tmp_path):
    """Finding (issue 20): a page on another site auto-submitted a form to the sandbox in a browser and
    created an issue as alice. Debian's Chromium loads such a page from a second loopback server; the POST
    reaches the sandbox (its log shows it) and is refused."""
    import shutil
    import subprocess
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Chromium is not installed: apt-get install chromium (bash .ci/run does it)"
    (tmp_path / "attack.html").write_text(
        f'<form id="f" method="POST" action="{sandbox.url}/api/v4/projects/1/issues?private_token=alice-token">'
        '<input name="private_token" value="alice-token"><input name="title" value="csrf"></form>'
        '<script>document.getElementById("f").submit()</script>')
    handler = type("Quiet", (SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    site = ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=str(tmp_path)))
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={tmp_path}/profile", "--virtual-time-budget=5000", "--dump-dom",
                        f"http://127.0.0.1:{site.server_address[1]}/attack.html"],
                       capture_output=True, timeout=90, check=False)
    finally:
        site.shutdown()
        site.server_close()
    posts = [r for r in sandbox.sandbox.requests if r[0] == "POST" and r[1].startswith("/api/v4/projects/1/issues")]
    assert posts and all(status in (401, 403) for _, _, status in posts), posts  # it arrived, and was refused
    assert _issue_titles(sandbox) == []
