"""The bot's own personal snippet: the record's anchor, which holds the newest entry's signed head."""

from __future__ import annotations

from .connection import Connection


class Snippets:
    def __init__(self, connection: Connection):
        self.connection = connection
        self._anchor_id: int | None = None

    def record_head(self, title: str) -> str | None:
        """The text of the bot's own anchor snippet (the record's head), None if it has none. `GET /snippets`
        lists only the caller's own snippets (`SnippetsFinder.new(current_user, author: current_user)`,
        lib/api/snippets.rb), so it is found by title with no id kept anywhere a person could change: one
        call per 100 of the bot's snippets. The oldest wins if a retried POST ever made two."""
        mine = self.connection.pages("/snippets", "read the record's anchor (the bot's own snippets; the token "
                                     "needs the api scope)", per_page=100)
        found = sorted((s for s in mine if s.get("title") == title), key=lambda s: int(s.get("id") or 0))
        self._anchor_id = int(found[0]["id"]) if found else None
        return (found[0].get("description") or "") if found else None

    def save_record_head(self, title: str, text: str) -> None:
        """Write the anchor: a private personal snippet (readable, changeable and deletable only by its author
        and admins: app/policies/personal_snippet_policy.rb). The head is its description, which the list
        shows, so reading it back costs no second call."""
        conn = self.connection
        if self._anchor_id is None:
            data = {"title": title, "description": text, "visibility": "private", "file_name": "record-head.txt",
                    "content": "The newest entry of License Bot's record, signed by the bot. Do not edit or delete."}
            created = conn.call(lambda: conn.gl.http_post("/snippets", post_data=data),
                                "create the record's anchor snippet")
            self._anchor_id = int(created["id"])
        else:
            anchor_id = self._anchor_id
            conn.call(lambda: conn.gl.http_put(f"/snippets/{anchor_id}", post_data={"description": text}),
                      "update the record's anchor snippet")
