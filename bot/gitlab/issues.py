"""Issues: the requests (listed, read, searched, edited), and the issues the bot opened itself (its home
issue and the record's entries)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import gitlab.exceptions
import requests

from ..markers import FORM_MARKER
from ..tracker import Issue, IssueEdit
from .awards import Awards
from .connection import Connection
from .members import Members


class Issues:
    def __init__(self, connection: Connection, members: Members, awards: Awards):
        self.connection = connection
        self.members = members
        self.awards = awards
        self._home_iid: int | None = None

    def _list(self, **filters: Any) -> list[Issue]:
        conn = self.connection

        def fetch() -> list[Issue]:
            pages = conn.project.issues.list(iterator=True, per_page=100, max_retries=conn.max_retries, **filters)
            return [Issue.from_api(i.attributes) for i in pages]
        return conn.call(fetch, "list issues")

    def _is_request(self, issue: Issue) -> bool:
        return self.connection.config.requests.label in issue.labels or FORM_MARKER in issue.description

    def open_requests(self) -> list[Issue]:
        """Open requests, oldest first: labelled ones, and form-marked ones whose label did not apply.

        One listing of every open issue, filtered here: GitLab's full-text search did not index HTML
        comments before about 16.6, so searching for the form marker would lose unlabelled requests.
        """
        issues = self._list(state="opened", order_by="created_at", sort="asc")
        return sorted((i for i in issues if self._is_request(i)), key=lambda i: (i.created_at, i.iid))

    def requests_since(self, since: datetime) -> list[Issue]:
        """Every request filed since then, open or closed, oldest first (for `report`): one call per 100 issues."""
        issues = self._list(state="all", created_after=since.isoformat(), order_by="created_at", sort="asc")
        return sorted((i for i in issues if i.created_at >= since and self._is_request(i)),
                      key=lambda i: (i.created_at, i.iid))

    def get_issue(self, iid: int) -> Issue:
        conn = self.connection
        data = conn.call(lambda: conn.project.issues.get(iid, max_retries=conn.max_retries).attributes,
                         f"read issue #{iid}")
        return Issue.from_api(data)

    def search_issues(self, text: str, in_: str = "title,description", state: str = "all") -> list[Issue]:
        """GitLab's full-text search: a hint for people-facing lists only, never proof of absence."""
        return self._list(state=state, search=text, order_by="created_at", sort="desc", **{"in": in_})

    def labelled(self, label: str) -> bool:
        """Whether any issue, open or closed, carries the label: one call."""
        conn = self.connection
        return conn.call(lambda: bool(conn.project.issues.list(labels=[label], state="all", per_page=1,
                                                               get_all=False, max_retries=conn.max_retries)),
                         "list issues")

    def not_confidential(self, iids: list[int]) -> list[Issue]:
        """Those of these issues anyone may read (not confidential): one call per 100 issues."""
        found: list[Issue] = []
        for start in range(0, len(iids), 100):
            chunk = set(iids[start:start + 100])
            found += [i for i in self._list(iids=sorted(chunk), confidential="false", state="all")
                      if i.iid in chunk and not i.confidential]
        return found

    def edit_issue(self, issue: Issue, edit: IssueEdit) -> Issue:
        payload = edit.payload()
        if not payload:
            return issue
        conn = self.connection
        data = conn.call(lambda: conn.project.issues.update(issue.iid, payload, max_retries=conn.max_retries),
                         f"edit issue #{issue.iid}")
        return Issue.from_api(data) if isinstance(data, dict) and "iid" in data else edit.applied_to(issue)

    # --- the issues the bot opened --------------------------------------------------------------------

    def bot_issues(self) -> list[Issue]:
        """Every issue the bot's own user opened (and `requests.record_authors`, the bot's users before a
        token change), oldest first: the record's entries (and the old record issue). Issues filter by author
        (notes cannot), so this costs one call per 100 licenses."""
        found = {i.iid: i for i in self._list(author_id=self.members.me()["id"], state="all", order_by="created_at",
                                                sort="asc")}
        for name in self.connection.config.requests.record_authors:
            found.update((i.iid, i) for i in self._list(author_username=name, state="all", order_by="created_at",
                                                         sort="asc"))
        return sorted(found.values(), key=lambda i: (i.created_at, i.iid))

    def recent_bot_issues(self, since: datetime, reacted: str | None = None) -> list[Issue]:
        """The issues the bot's own user opened on or after SINCE (and `requests.record_authors`'), with REACTED
        only those the bot reacted to with that emoji: one call per 100. `scope=created_by_me` is the author filter
        on the token's own user, so no GET /user first; `my_reaction_emoji` the token user's own reactions."""
        extra = {"my_reaction_emoji": reacted} if reacted else {}
        found = self._list(scope="created_by_me", created_after=since.isoformat(), state="all", **extra)
        for name in self.connection.config.requests.record_authors:
            found += self._list(author_username=name, created_after=since.isoformat(), state="all", **extra)
        return found

    def open_entry(self, title: str, description: str, landed) -> Issue:
        """Open a confidential issue once, then close it (a record entry is done, not work): after a failed
        POST that may have landed, `landed(issues)` looks for it among the bot's issues before posting again."""
        conn = self.connection
        data = {"title": title, "description": description, "confidential": True}
        for attempt in range(conn.max_retries + 1):
            try:
                created = conn.project.issues.create(data, retry_transient_errors=False)
                issue = Issue.from_api(created.attributes)
                break
            except (gitlab.exceptions.GitlabError, requests.RequestException) as exc:
                error = conn.translate(exc, "write the record entry")
                if not error.transient or attempt == conn.max_retries:
                    raise error from None
            existing = landed(self.bot_issues())
            if existing is not None:
                issue = existing
                break
        return self.edit_issue(issue, IssueEdit(state_event="close")) if issue.state == "opened" else issue

    def home_issue(self, *, create: tuple[str, str, str] | None = None) -> int | None:
        """The iid of the bot's home issue, where its run lock lives: the oldest issue the bot's own user (or a
        `requests.record_authors` user) opened (nobody else can open one as the bot, and nobody can open an
        older one): the old record issue, or the first record entry. With none, `create`'s (title, description,
        emoji) opens a confidential one, marked with the bot's own reaction (so that the record's audit tells it
        from an erased entry)."""
        if self._home_iid is None:
            mine = self.bot_issues()  # with `requests.record_authors`: after a token change, the same home
            if mine:
                self._home_iid = mine[0].iid
            elif create:
                conn = self.connection
                data = {"title": create[0], "description": create[1], "confidential": True}
                created = conn.call(lambda: conn.project.issues.create(data, retry_transient_errors=False),
                                    "open the bot's home issue")
                self.awards.award(int(created.iid), create[2])  # marked first: never taken for an erased entry
                # Two first runs may each open one: both then take the oldest, so they share one lock.
                self._home_iid = self.bot_issues()[0].iid
        return self._home_iid
