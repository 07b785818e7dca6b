"""The sandbox's personal snippets answer as GitLab's do (issue 16: the record's anchor is the bot's private
snippet, so the twin must refuse everyone else exactly where GitLab does). Each fact, from gitlabhq/gitlabhq:

- app/policies/personal_snippet_policy.rb: `rule { is_author | admin }` alone enables read, update and admin
  (delete) of a personal snippet; others read it only if it is public, or internal and they are not external.
- lib/api/snippets.rb: `GET /snippets` presents `SnippetsFinder.new(current_user, author: current_user)`, the
  caller's own snippets only; `GET /snippets/:id` and `/:id/raw` look among the snippets the caller may read
  (`not_found!('Snippet')` otherwise); `PUT` and `DELETE /snippets/:id` look only among the caller's own
  (`snippets_for_current_user.find_by_id`, then `not_found!('Snippet')`); `POST` defaults to `internal`
  and requires a non-blank title.
- lib/api/helpers/snippets_helpers.rb: `create_file_params` (content needs a file_name) and
  `minimum_update_params` (at least one of content, description, files, file_name, title, visibility).
- lib/api/entities/basic_snippet.rb: a listed snippet shows id, title, description, visibility and author (no
  content), so a description can be read back with the list alone.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from bot.sandbox import SandboxServer


@pytest.fixture(scope="module")
def server():
    with SandboxServer() as s:
        yield s


def call(url: str, method: str, path: str, token: str, data: dict | None = None) -> tuple[int, object]:
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(f"{url}/api/v4{path}", data=body, method=method,
                                     headers={"PRIVATE-TOKEN": token, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            kind = response.headers.get("Content-Type", "")
            return response.status, json.loads(raw) if "json" in kind else raw.decode()
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def make(url, token="bot-token", **fields) -> dict:
    data = {"title": "head", "description": "seq 1", "visibility": "private", "file_name": "h.txt",
            "content": "x", **fields}
    data = {k: v for k, v in data.items() if v is not None}  # None: the field left out
    status, body = call(url, "POST", "/snippets", token, data)
    assert status == 201, body
    return body


def test_a_private_snippet_is_invisible_and_unchangeable_to_every_other_user_as_on_gitlab(server):
    """Finding: a Planner or Maintainer who could read or rewrite the bot's anchor could hide a deleted entry."""
    mine = make(server.url)
    sid = mine["id"]
    for token in ("pete-token", "maya-token", "alice-token", "dave-token"):
        assert call(server.url, "GET", f"/snippets/{sid}", token) == (404, {"message": "404 Snippet Not Found"})
        assert call(server.url, "GET", f"/snippets/{sid}/raw", token)[0] == 404
        assert call(server.url, "PUT", f"/snippets/{sid}", token, {"description": "seq 0"})[0] == 404
        assert call(server.url, "DELETE", f"/snippets/{sid}", token)[0] == 404
        status, listed = call(server.url, "GET", "/snippets", token)
        assert status == 200 and sid not in [s["id"] for s in listed]
    status, listed = call(server.url, "GET", "/snippets", "bot-token")
    (found,) = [s for s in listed if s["id"] == sid]
    assert found["description"] == "seq 1" and found["visibility"] == "private" and "content" not in found
    assert found["author"]["username"] == "license-bot"
    assert call(server.url, "GET", f"/snippets/{sid}/raw", "bot-token") == (200, "x")


def test_only_the_author_updates_and_deletes_even_a_public_snippet(server):
    """Finding: update and delete look among the caller's own snippets only, whatever the visibility."""
    public = make(server.url, "alice-token", visibility="public")
    sid = public["id"]
    assert call(server.url, "GET", f"/snippets/{sid}", "pete-token")[0] == 200  # anyone reads a public one
    assert call(server.url, "PUT", f"/snippets/{sid}", "pete-token", {"title": "mine now"})[0] == 404
    assert call(server.url, "DELETE", f"/snippets/{sid}", "bot-token")[0] == 404
    status, changed = call(server.url, "PUT", f"/snippets/{sid}", "alice-token", {"description": "new"})
    assert status == 200 and changed["description"] == "new" and changed["title"] == "head"
    assert call(server.url, "DELETE", f"/snippets/{sid}", "alice-token")[0] == 204
    assert call(server.url, "GET", f"/snippets/{sid}", "alice-token")[0] == 404


def test_create_and_update_validate_as_gitlab_does(server):
    """Finding: a snippet made without a visibility is internal (every logged-in user reads it), so the bot
    must ask for private; a blank title, content without a file name, or an empty update are 400."""
    internal = make(server.url, visibility=None)
    assert internal["visibility"] == "internal"
    assert call(server.url, "GET", f"/snippets/{internal['id']}", "dave-token")[0] == 200
    blank = {"title": " ", "content": "x", "file_name": "a"}
    assert call(server.url, "POST", "/snippets", "bot-token", blank)[0] == 400
    assert call(server.url, "POST", "/snippets", "bot-token", {"title": "t", "content": "x"})[0] == 400
    assert call(server.url, "POST", "/snippets", "bot-token",
                {"title": "t", "content": "x", "file_name": "a", "visibility": "secret"})[0] == 400
    assert call(server.url, "PUT", f"/snippets/{internal['id']}", "bot-token", {})[0] == 400
    assert call(server.url, "POST", "/snippets", "nobody-token", {"title": "t"})[0] == 401
