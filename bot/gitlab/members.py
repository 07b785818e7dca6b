"""Members and roles: the bot's own user, the groups it reads, and who holds which role where."""

from __future__ import annotations

from typing import Any

import gitlab.exceptions
import requests

from ..tracker import TrackerError
from .connection import Connection


class Members:
    def __init__(self, connection: Connection):
        self.connection = connection
        self._me: dict[str, Any] | None = None
        self._levels: dict[tuple[str, int], int] = {}
        self._groups: dict[str, dict[str, Any]] = {}

    def me(self) -> dict[str, Any]:
        """The token's own user, read once per run."""
        if self._me is None:
            conn = self.connection
            self._me = conn.call(lambda: conn.gl.http_get("/user", max_retries=conn.max_retries), "read the bot user")
        return self._me

    def my_level(self) -> int:
        """The token's own role in the tracker, from the project's `permissions` (direct or through its group)."""
        permissions = self.connection.project_info().get("permissions") or {}
        levels = [int((permissions.get(k) or {}).get("access_level") or 0) for k in ("project_access", "group_access")]
        if max(levels) > 0:
            return max(levels)
        return self.access_level(self.me()["id"])  # e.g. inherited from an ancestor group: ask directly

    def access_level(self, user_id: int) -> int:
        """The user's role in the tracker (10 Guest, 20 Reporter, 30 Developer, 40 Maintainer, 50 Owner); 0: none."""
        conn = self.connection
        return conn.call(lambda: int(conn.project.members_all.get(user_id, max_retries=conn.max_retries).access_level),
                         "read the bot's role in the tracker", absent={404: 0})

    def member_level(self, group: str, user_id: int) -> int:
        """The user's role as a *direct*, active member of the group (0: none).

        `members/:user_id`, not `members/all/:user_id`: the latter also answers for members inherited
        from ancestor groups and for members of groups the group is shared with. A group the token
        cannot read answers 404 for every user, so the group is read first: that is a TrackerError
        (a configuration problem), never "not a member".
        """
        key = (group, user_id)
        if key not in self._levels:
            self.group(group)
            conn = self.connection
            members = conn.gl.groups.get(group, lazy=True).members

            def lookup() -> int:
                member = members.get(user_id, max_retries=conn.max_retries).attributes
                return int(member.get("access_level") or 0) if member.get("state", "active") == "active" else 0
            try:
                self._levels[key] = conn.call(lookup, f"check membership of group {group}", absent={404: 0})
            except TrackerError as exc:
                if exc.status == 403:  # GroupPolicy: a private group's members are for those with access to it
                    raise TrackerError(
                        f"the bot's token may read group {group} but not its members (403): GitLab shows a private "
                        f"group's members only to members of that group. A project access token's user can never "
                        f"join a group; use a dedicated user's (or a service account's) personal access token, a "
                        f"member of {group} (README, \"The token\")", status=403) from None
                raise
        return self._levels[key]

    def group(self, group: str) -> dict[str, Any]:
        """A group the bot must read (requester and approver groups); cached for the run."""
        if group not in self._groups:
            conn = self.connection
            try:
                self._groups[group] = conn.gl.groups.get(group, max_retries=conn.max_retries).attributes
            except gitlab.exceptions.GitlabError as exc:
                if exc.response_code == 404:
                    raise TrackerError(f"group {group} does not exist or the bot's token cannot read it (404): "
                                       f"check the group's path in config.yaml, or make the bot's user a member "
                                       f"of {group}", status=None) from None
                raise conn.translate(exc, f"read group {group}") from None
            except requests.RequestException as exc:
                raise conn.translate(exc, f"read group {group}") from None
        return self._groups[group]
