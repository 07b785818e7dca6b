"""Clients other than the bot see the GitLab twin as they would see GitLab: the same answers on reused
(keep-alive) connections, after refusals, through independent clients."""

from __future__ import annotations

import http.client
import json

import gitlab
import pytest

from .e2e import PROJECT, client

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
    conn = http.client.HTTPConnection("127.0.0.1", sandbox.port, timeout=60)
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
    conn = http.client.HTTPConnection("127.0.0.1", sandbox.port, timeout=60)
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
    conn = http.client.HTTPConnection("127.0.0.1", sandbox.port, timeout=60)
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
                       capture_output=True, timeout=300, check=False)
    finally:
        site.shutdown()
        site.server_close()
    posts = [r for r in sandbox.sandbox.requests if r[0] == "POST" and r[1].startswith("/api/v4/projects/1/issues")]
    assert posts and all(status in (401, 403) for _, _, status in posts), posts  # it arrived, and was refused
    assert _issue_titles(sandbox) == []


# --- independent clients: curl as GitLab's API docs use it, and python-gitlab's CLI ------------------------------

def _curl_chain(sandbox, steps, tmp_path):
    """Every step in ONE curl process (`--next`), so all ride one keep-alive connection: refusals with bodies
    sit between the calls. Returns [(status, body)] and how many connections curl opened."""
    import shutil
    import subprocess

    curl = shutil.which("curl")
    assert curl, "curl is not installed"
    args = [curl, "--silent", "--show-error"]
    for n, (method, path, token, data) in enumerate(steps):
        if n:
            args.append("--next")
        args += ["--request", method, "--output", str(tmp_path / f"{n}.out"),
                 "--write-out", "%{http_code} %{num_connects}\\n"]
        if token:
            args += ["--header", f"PRIVATE-TOKEN: {token}"]
        for kind, value in data:  # as the docs write them: --data "a=b", --form "file=@path", or JSON
            if kind == "json":
                args += ["--header", "Content-Type: application/json", "--data", value]
            else:
                args += [f"--{kind}", value]
        args.append(f"{sandbox.url}/api/v4{path}")
    out = subprocess.run(args, capture_output=True, text=True, timeout=120, check=True).stdout.split()
    statuses, connects = [int(s) for s in out[::2]], sum(int(c) for c in out[1::2])
    bodies = [(tmp_path / f"{n}.out").read_text() if (tmp_path / f"{n}.out").exists() else ""
              for n in range(len(steps))]
    return [(s, _json_or_text(b)) for s, b in zip(statuses, bodies, strict=True)], connects


def _json_or_text(body: str):
    try:
        return json.loads(body) if body.strip() else None
    except ValueError:
        return body  # a raw file


def test_curl_with_gitlabs_documented_calls_gets_gitlabs_answers_on_one_reused_connection(sandbox, tmp_path):
    """Finding: independent clients got GitLab's documented answer for only part of the calls the bot makes,
    and a refused call left the connection unusable. Each step is a call from GitLab's API docs
    (`doc/api/{version,metadata,users,personal_access_tokens,projects,members,groups,issues,notes,labels,
    group_labels,resource_label_events,project_markdown_uploads,pipeline_schedules}.md`), written as the docs
    write it with curl, on one connection, with refusals (401, 403, 404, 400) in between."""
    bot = client(sandbox.url, "bot-token")
    issue = bot.issues.create({"title": "Emergency", "labels": "license-request"})
    note = issue.notes.create({"body": "status"})
    key = tmp_path / "a.gitlab-license"
    key.write_text("KEY")
    B, A = "bot-token", "alice-token"
    P, ISSUE = "/projects/support%2Finternal-requests", f"/projects/1/issues/{issue.iid}"
    lock = [("data", "name=license-bot-run-lock"), ("data", "color=#dd2b0e")]
    steps = [  # (method, path, token, data), expected status, what the answer must hold
        (("POST", "/projects/1/issues", None, [("data", "title=x")]), 401, {"message": "401 Unauthorized"}),
        (("GET", "/version", B, []), 200, lambda b: b["version"].startswith("18.") and b["enterprise"] is True),
        (("GET", "/metadata", B, []), 200, lambda b: set(b) >= {"version", "revision", "kas", "enterprise"}),
        (("GET", "/user", B, []), 200, lambda b: b["username"] == "license-bot"),
        (("GET", "/personal_access_tokens/self", B, []), 200, lambda b: b["scopes"] == ["api"]),
        (("POST", "/projects/1/labels", "mallory-token", lock), 403, {"message": "403 Forbidden"}),
        (("GET", P, B, []), 200, lambda b: b["path_with_namespace"] == PROJECT),
        (("GET", "/projects/1/members/all/1", B, []), 200, lambda b: b["access_level"] == 30),
        (("GET", "/projects/1/members/3", B, []), 200, lambda b: b["access_level"] == 40),
        (("GET", "/groups/support%2Femea", B, []), 200, lambda b: b["full_path"] == "support/emea"),
        (("GET", "/groups/support/members/6", B, []), 200, lambda b: b["access_level"] == 10),
        (("GET", "/groups/support/members/all/5", B, []), 200, lambda b: b["username"] == "carol"),
        (("PUT", "/projects/1/issues/999", B, [("data", "title=x")]), 404, {"message": "404 Issue Not Found"}),
        (("POST", "/projects/1/issues", A, [("data", "title=Second"), ("data", "labels=license-request"),
                                            ("data", "assignee_ids[]=1"), ("data", "assignee_ids[]=4")]),
         201, lambda b: b["labels"] == ["license-request"] and [a["id"] for a in b["assignees"]] == [1, 4]),
        (("GET", "/projects/1/issues?labels=license-request&state=opened&iids[]=2&assignee_id=4", B, []), 200,
         lambda b: [i["title"] for i in b] == ["Second"]),
        (("GET", "/projects/1/issues?confidential=false&per_page=1", B, []), 200, lambda b: len(b) == 1),
        (("GET", "/projects/1/issues?per_page=abc", B, []), 400, {"error": "per_page is invalid"}),
        (("GET", ISSUE, B, []), 200, lambda b: b["iid"] == issue.iid and b["labels"] == ["license-request"]),
        (("POST", f"{ISSUE}/notes", B, [("data", "body=Recorded")]), 201,
         lambda b: b["author"]["username"] == "license-bot" and b["body"] == "Recorded"),
        (("PUT", f"{ISSUE}/notes/{note.id}", "carol-token", [("data", "body=forged")]), 403,
         {"message": "403 Forbidden"}),
        (("PUT", f"{ISSUE}/notes/{note.id}", B, [("json", '{"body": "status, edited"}')]), 200,
         lambda b: b["body"] == "status, edited"),
        (("GET", f"{ISSUE}/notes?sort=asc&order_by=created_at", B, []), 200,
         lambda b: [n["body"] for n in b if not n["system"]] == ["status, edited", "Recorded"]),
        (("GET", f"{ISSUE}/resource_label_events", B, []), 200,
         lambda b: [(e["action"], e["label"]["name"]) for e in b] == [("add", "license-request")]),
        (("POST", "/projects/1/labels", B, lock), 201, lambda b: b["name"] == "license-bot-run-lock"),
        (("POST", "/projects/1/labels", B, lock), 409, {"message": "Label already exists"}),
        (("GET", "/projects/1/labels/license-bot-run-lock", B, []), 200, lambda b: b["is_project_label"]),
        (("DELETE", "/projects/1/labels/license-bot-run-lock", B, []), 204, None),
        (("POST", "/groups/support/labels", "carol-token", lock), 201, lambda b: b["name"] == "license-bot-run-lock"),
        (("DELETE", "/projects/1/labels/license-bot-run-lock", B, []), 404, {"message": "404 Label Not Found"}),
        (("PUT", "/projects/1/labels/license-request", B, [("data", "new_name=renamed")]), 200,
         lambda b: b["name"] == "renamed"),
        (("GET", f"{ISSUE}/resource_label_events", B, []), 200, lambda b: b[0]["label"]["name"] == "renamed"),
        (("POST", "/projects/1/uploads", B, [("form", f"file=@{key}")]), 201,
         lambda b: b["markdown"] == f"[a.gitlab-license]({b['url']})"),
        (("GET", "/projects/1/pipeline_schedules", B, []), 200, lambda b: b[0]["owner"]["username"] == "mike"),
        (("GET", "/projects/1/repository/files/absent.yml?ref=main", B, []), 404,
         {"message": "404 File Not Found"}),
        (("POST", "/projects/1/repository/files/ci%2Fbot.yml", B, [("json", json.dumps(
            {"branch": "main", "content": "a: 1", "commit_message": "create a new file"}))]), 201,
         lambda b: b == {"file_path": "ci/bot.yml", "branch": "main"}),
        (("PUT", "/projects/1/repository/files/ci%2Fbot.yml", "mallory-token", [("json", json.dumps(
            {"branch": "main", "content": "a: 2", "commit_message": "x"}))]), 403, {"message": "403 Forbidden"}),
        (("GET", "/projects/1/repository/files/ci%2Fbot.yml/raw?ref=main", B, []), 200, lambda b: b == "a: 1"),
        (("GET", "/projects/1/issues?search=Emergency&in=title", B, []), 200,
         lambda b: [i["title"] for i in b] == ["Emergency"]),
        (("PUT", ISSUE, B, [("data", "state_event=close"), ("data", "title=[Success] - done")]), 200,
         lambda b: b["state"] == "closed" and b["title"] == "[Success] - done"),
        (("GET", "/user?private_token=bot-token", None, []), 401, {"message": "401 Unauthorized"}),
        (("GET", "/version", B, []), 200, lambda b: "version" in b),
    ]
    answers, connects = _curl_chain(sandbox, [s[0] for s in steps], tmp_path)
    for (call, status, expect), (got, body) in zip(steps, answers, strict=True):
        assert got == status, (call, got, body)
        assert expect is None or (expect(body) if callable(expect) else body == expect), (call, body)
    assert connects == 1, f"{connects} connections: the sandbox dropped a keep-alive connection"


def _cli(sandbox, token, *args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "gitlab", "--server-url", sandbox.url, "--private-token", token,
                           "-o", "json", *args], capture_output=True, text=True, timeout=300)


def test_python_gitlabs_cli_gets_the_documented_answers(sandbox):
    """python-gitlab's own CLI (`gitlab`), a client the bot's code does not share, reads and writes what a
    trust decision rests on: issues by iid and label, notes and who may edit them, label events after a
    rename, members of projects and groups, group labels."""
    def ok(token, *args):
        result = _cli(sandbox, token, *args)
        assert result.returncode == 0, (args, result.stderr)
        return json.loads(result.stdout) if result.stdout.strip() else None

    made = ok("bot-token", "project-issue", "create", "--project-id", "1", "--title", "Emergency",
              "--labels", "license-request", "--assignee-ids", "1,4")
    assert made["labels"] == ["license-request"] and [a["id"] for a in made["assignees"]] == [1, 4]
    assert [i["iid"] for i in ok("bot-token", "project-issue", "list", "--project-id", "1", "--iids", "1",
                                  "--labels", "license-request")] == [1]
    note = ok("bot-token", "project-issue-note", "create", "--project-id", "1", "--issue-iid", "1",
              "--body", "entry")
    refused = _cli(sandbox, "carol-token", "project-issue-note", "update", "--project-id", "1", "--issue-iid", "1",
                   "--id", str(note["id"]), "--body", "forged")
    assert refused.returncode == 1 and "403" in refused.stderr and "Traceback" not in refused.stderr
    ok("bot-token", "project-label", "update", "--project-id", "1", "--name", "license-request",
       "--new-name", "renamed")
    events = ok("bot-token", "project-issue-resource-label-event", "list", "--project-id", "1", "--issue-iid", "1")
    assert [e["label"]["name"] for e in events] == ["renamed"]
    assert ok("bot-token", "project-member-all", "get", "--project-id", "1", "--id", "1")["access_level"] == 30
    assert ok("bot-token", "group-member", "get", "--group-id", "support", "--id", "6")["access_level"] == 10
    assert [m["username"] for m in ok("bot-token", "project-member", "list", "--project-id", "1")] == [
        "mallory", "license-bot", "emil", "maya", "pete", "tracker-bot"]
    ok("carol-token", "group-label", "create", "--group-id", "support", "--name", "shadow", "--color", "#ff0000")
    assert [lb["name"] for lb in ok("bot-token", "group-label", "list", "--group-id", "support")] == ["shadow"]
    gone = _cli(sandbox, "bot-token", "project-label", "delete", "--project-id", "1", "--name", "shadow")
    assert gone.returncode == 1 and "404" in gone.stderr  # a group label is not the project's to delete
