"""The sandbox's personal snippets: the `/snippets` routes the bot keeps its record's anchor in, with GitLab's
permissions and answers (gitlabhq/gitlabhq; tests/test_sandbox_snippets.py pins each):

- `GET /snippets` lists the caller's own snippets only (`SnippetsFinder.new(current_user, author:
  current_user)`, lib/api/snippets.rb), each as `Entities::BasicSnippet` (lib/api/entities/basic_snippet.rb:
  id, title, description, visibility, author, ...; no content).
- `GET /snippets/:id` and `/raw` find the snippet among those the caller may read: a private personal
  snippet only its author and admins (`PersonalSnippetPolicy`, app/policies/personal_snippet_policy.rb,
  `is_author | admin`, and `read_all_resources`); anyone else gets `404 Snippet Not Found`.
- `PUT` and `DELETE /snippets/:id` look only among the caller's own (`snippets_for_current_user`): another
  user's snippet is a 404, whatever its visibility.
- `POST /snippets` needs a title (not blank), `content` with a `file_name` (lib/api/helpers/snippets_helpers.rb
  `create_file_params`), and makes an `internal` snippet unless told otherwise; `PUT` needs at least one of
  content, description, file_name, title, visibility (`minimum_update_params`).
"""

from __future__ import annotations

from typing import Any

from .routing import route
from .store import ApiError, _now

_VISIBILITIES = ("private", "internal", "public")


def _not_found() -> ApiError:
    return ApiError(404, "404 Snippet Not Found")


class SnippetRoutes:
    """Mixed into the sandbox's HTTP handler (which provides `me`, `body`, `paginate` and `sandbox`)."""

    sandbox: Any

    def _snippets(self) -> list[dict]:
        self.sandbox.state["next_id"].setdefault("snippet", 1)  # a state file from before snippets
        return self.sandbox.state.setdefault("snippets", [])

    def _snippet_json(self, snippet: dict, *, full: bool = False) -> dict:
        base = self.sandbox.base_url
        data = {"id": snippet["id"], "title": snippet["title"], "description": snippet["description"],
                "visibility": snippet["visibility"], "author": self.sandbox.user_json(self.sandbox.user(
                    snippet["author_id"])), "created_at": snippet["created_at"], "updated_at": snippet["updated_at"],
                "project_id": None, "web_url": f"{base}/-/snippets/{snippet['id']}",
                "raw_url": f"{base}/-/snippets/{snippet['id']}/raw"}
        if full:  # Entities::PersonalSnippet adds the file
            data["file_name"] = snippet["file_name"]
        return data

    def _readable(self, user: dict, snippet: dict) -> bool:
        return (snippet["author_id"] == user["id"] or bool(user.get("admin")) or snippet["visibility"] == "public"
                or (snippet["visibility"] == "internal" and not user.get("external")))

    def _find(self, snippet_id: str, user: dict, *, own: bool) -> dict:
        snippet = next((s for s in self._snippets() if s["id"] == int(snippet_id)), None)
        if snippet is None or (own and snippet["author_id"] != user["id"]) or not self._readable(user, snippet):
            raise _not_found()
        return snippet

    @route("GET", r"/api/v4/snippets")
    def list_snippets(self):
        user = self.me()
        return self.paginate([self._snippet_json(s) for s in self._snippets() if s["author_id"] == user["id"]])

    @route("POST", r"/api/v4/snippets")
    def create_snippet(self):
        user = self.me()
        body = self.body()
        if not str(body.get("title") or "").strip():
            raise ApiError(400, "title is missing", body={"error": "title is missing, title is empty"})
        if not body.get("content"):
            raise ApiError(400, "files, content are missing", body={"error": "files, content are missing, exactly "
                                                                              "one parameter must be provided"})
        if not body.get("file_name"):
            raise ApiError(400, "file_name is missing", body={"error": "file_name is missing"})
        visibility = body.get("visibility") or "internal"
        if visibility not in _VISIBILITIES:
            raise ApiError(400, "visibility does not have a valid value",
                           body={"error": "visibility does not have a valid value"})
        snippets = self._snippets()
        now = _now()
        snippet = {"id": self.sandbox.next_id("snippet"), "title": body["title"], "description":
                   body.get("description") or "", "visibility": visibility, "file_name": body["file_name"],
                   "content": body["content"], "author_id": user["id"], "created_at": now, "updated_at": now}
        snippets.append(snippet)
        return 201, self._snippet_json(snippet, full=True), {}

    @route("GET", r"/api/v4/snippets/(\d+)")
    def get_snippet(self, snippet_id):
        user = self.me()
        return 200, self._snippet_json(self._find(snippet_id, user, own=False), full=True), {}

    @route("GET", r"/api/v4/snippets/(\d+)/raw")
    def get_snippet_raw(self, snippet_id):
        user = self.me()
        snippet = self._find(snippet_id, user, own=False)
        return 200, snippet["content"].encode(), {"Content-Type": "text/plain"}

    @route("PUT", r"/api/v4/snippets/(\d+)")
    def update_snippet(self, snippet_id):
        user = self.me()
        snippet = self._find(snippet_id, user, own=True)
        body = self.body()
        fields = ("content", "description", "file_name", "title", "visibility")
        if not any(k in body for k in fields):
            raise ApiError(400, "at least one parameter must be provided", body={
                "error": "content, description, files, file_name, title, visibility are missing, at least one "
                         "parameter must be provided"})
        if "title" in body and not str(body["title"]).strip():
            raise ApiError(400, "title is empty", body={"error": "title is empty"})
        if "visibility" in body and body["visibility"] not in _VISIBILITIES:
            raise ApiError(400, "visibility does not have a valid value",
                           body={"error": "visibility does not have a valid value"})
        snippet.update({k: body[k] for k in fields if k in body}, updated_at=_now())
        return 200, self._snippet_json(snippet, full=True), {}

    @route("DELETE", r"/api/v4/snippets/(\d+)")
    def delete_snippet(self, snippet_id):
        user = self.me()
        snippet = self._find(snippet_id, user, own=True)
        self._snippets().remove(snippet)
        return 204, b"", {}
