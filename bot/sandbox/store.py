"""The sandbox's state: seed data, lookups, GitLab's JSON shapes, and persistence across restarts.

Seeded as a deployed tracker would be, after `license-bot setup`: the private project
support/internal-requests in the group support, its labels, and users whose token is `<username>-token`
(the bot's is `bot-token`). Everything can be kept in a state file (`--state`), written atomically.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import threading
from datetime import datetime, timezone
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path
from typing import Any

GUEST, PLANNER, REPORTER, DEVELOPER, MAINTAINER, OWNER = 10, 15, 20, 30, 40, 50
TOKENS = {"alice-token": "alice", "mallory-token": "mallory", "bot-token": "license-bot", "emil-token": "emil",
          "carol-token": "carol", "dave-token": "dave", "mike-token": "mike", "maya-token": "maya",
          "pete-token": "pete", "tracker-bot-token": "tracker-bot", "support-bot-token": "support-bot"}
# Token kinds, as GitLab makes them: `license-bot` is a dedicated user with a personal access token (a
# service account is the same: it has the memberships it is given); `tracker-bot` is the bot user of a
# project access token of the tracker, a member of that one project and never of a group
# (gitlab-org/gitlab#408091); `support-bot` is the bot user of a group access token of `support`, a member
# of that group (and so of its subgroups and projects).
KINDS = {"tracker-bot": "project_bot", "support-bot": "group_bot"}
PROJECT_PATH = "support/internal-requests"


_clock_lock = threading.Lock()
_last_ms = 0


def _now() -> str:
    """GitLab's millisecond timestamps, strictly increasing in this process: two writes in the same
    millisecond would otherwise tie, and which came first (an edit or an approval) would depend on the
    machine's speed."""
    global _last_ms
    with _clock_lock:
        _last_ms = max(_last_ms + 1, int(datetime.now(timezone.utc).timestamp() * 1000))
        stamp = datetime.fromtimestamp(_last_ms / 1000, timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def seed_state() -> dict[str, Any]:
    names = [("alice", "Alice Support"), ("mallory", "Mallory Outsider"), ("license-bot", "License Bot"),
             ("emil", "Emil EMEA"), ("carol", "Carol Contractor"), ("dave", "Dave Guest"),
             ("mike", "Mike Manager"), ("maya", "Maya Maintainer"), ("pete", "Pete Planner"),
             ("tracker-bot", "project_1_bot"), ("support-bot", "group_1_bot")]
    users = [{"id": n, "username": u, "name": name, "token": f"{u}-token", "state": "active"}
             for n, (u, name) in enumerate(names, start=1)]
    users[2]["token"] = "bot-token"
    for user in users:
        user["kind"] = KINDS.get(user["username"], "human")

    def group(gid, path, parent, visibility, members, shared=()):
        full = path if parent is None else f"support/{path}"
        return {"id": gid, "path": path, "full_path": full, "name": path, "parent_id": parent,
                "visibility": visibility, "members": {str(k): v for k, v in members.items()},
                "shared_with_groups": [{"group_id": g, "group_access_level": lvl} for g, lvl in shared]}
    return {
        "users": users,
        "groups": [
            # alice: Developer of support (so an inherited member of support/emea); dave: a Guest of support;
            # mike: Developer of support; carol reaches support only through contractors, shared with it.
            # The bot's user is a Reporter of support, as a deployment's would be, so it can read support/emea.
            # support-bot (11) is its group access token's user, a Reporter.
            group(1, "support", None, "private", {1: DEVELOPER, 3: REPORTER, 6: GUEST, 7: DEVELOPER, 11: REPORTER},
                  shared=[(3, DEVELOPER)]),
            group(2, "emea", 1, "private", {4: DEVELOPER}),
            group(3, "contractors", None, "internal", {5: DEVELOPER}),
            group(4, "support-managers", None, "internal", {7: MAINTAINER}),
            group(5, "hidden", None, "private", {1: DEVELOPER}),  # the bot cannot read it
        ],
        "projects": [{
            "id": 1, "path": "internal-requests", "path_with_namespace": PROJECT_PATH, "group_id": 1,
            "name": "internal-requests", "visibility": "private", "default_branch": "main",
            # alice is in through the group; mallory, emil and the bot are direct members; maya is a Maintainer,
            # pete a Planner; tracker-bot is the user of the project's own access token (Maintainer).
            "members": {"2": GUEST, "3": MAINTAINER, "4": GUEST, "8": MAINTAINER, "9": PLANNER, "10": MAINTAINER},
            # The labels `license-bot setup` creates: GitLab's /label applies only labels that exist.
            "labels": [{"id": n, "name": name, "color": "#6699cc", "description": None} for n, name in enumerate(
                ["license-request", "license-request::processing", "license-request::success",
                 "license-request::failed", "license-request-override"], start=1)],
            "issues": [], "uploads": {}, "files": {},
        }, {
            # The bot's own project (its CI and schedule), apart from the tracker: the bot's user is a Reporter.
            "id": 2, "path": "license-bot", "path_with_namespace": "support/license-bot", "group_id": 1,
            "name": "license-bot", "visibility": "private", "default_branch": "main", "members": {"3": REPORTER},
            "labels": [], "issues": [], "uploads": {}, "files": {},
        }],
        "next_id": {"issue": 1, "note": 1, "label": 6, "upload": 1},
        "mail": [],
    }


def _load_state(path: Path) -> dict[str, Any]:
    """A state file this sandbox wrote; anything else is a ValueError saying what is wrong (never its text)."""
    from .. import files

    try:
        state = json.loads(files.read_bytes(path, 256 * files.MB, "--state"))
    except files.FileError as exc:
        raise ValueError(str(exc)) from None
    seed = seed_state()
    if not isinstance(state, dict):
        raise ValueError("it holds no JSON object")
    for key, value in seed.items():
        if not isinstance(state.get(key), type(value)):
            raise ValueError(f"its {key!r} is missing or not a {type(value).__name__}")
    if not all(isinstance(x, dict) for key in ("users", "groups", "projects") for x in state[key]):
        raise ValueError("its users, groups and projects are not all objects")
    return state


class ApiError(Exception):
    """An answer other than success: GitLab's body is {"message": ...}; others (Zendesk) pass their own."""

    def __init__(self, status: int, message: Any, body: dict | None = None):
        super().__init__(message)
        self.status, self.message = status, message
        self.body = body if body is not None else {"message": message}


class Store:
    """The state and how GitLab shows it; the permission and issue rules are mixed in by `Sandbox`."""

    def __init__(self, state_file: str | None = None, base_url: str = "http://127.0.0.1", *,
                 search_rules: str = "v3", edition: str = "premium", search_rate_limit: int = 30,
                 enterprise: bool | None = None):
        from .ratelimit import RateLimit

        self.search_rules, self.edition = search_rules, edition
        # The codebase: EE (`-ee`, `enterprise: true`) runs every tier; unlicensed EE is Free. CE is Free.
        self.enterprise = edition == "premium" if enterprise is None else enterprise
        if edition == "premium" and not self.enterprise:
            raise ValueError("a paid tier needs the EE codebase")
        self.search_limit = RateLimit(search_rate_limit)
        self.started = datetime.now(timezone.utc)
        self.lock = threading.RLock()
        self.state_file = Path(state_file) if state_file else None
        self.base_url = base_url
        if self.state_file and self.state_file.exists():
            self.state = _load_state(self.state_file)
        else:
            self.state = seed_state()
            self.save()
        self.requests: list[tuple[str, str, int]] = []  # GitLab API calls: (method, path, status)
        # Tests act at an exact step of a client's run, not after a guessed time: `on_step(method, path)` is
        # called for each API call (GitLab's and Zendesk's) and each email, before the client gets its answer;
        # `hold_at` makes the n-th API call from when it is set wait for ever (`held` is set then).
        self.on_step = None
        self.hold_at: int | None = None
        self.held = threading.Event()
        self.zendesk_requests: list[tuple[str, str]] = []

    def save(self) -> None:
        """Write the state atomically, so a restart finds it whole."""
        if not self.state_file:
            return
        fd, tmp = tempfile.mkstemp(dir=self.state_file.parent, prefix=".sandbox-")
        with os.fdopen(fd, "w") as fh:
            json.dump(self.state, fh)
        os.replace(tmp, self.state_file)

    # --- lookups ------------------------------------------------------------------------------------

    def user_by_token(self, token: str | None) -> dict | None:
        return next((u for u in self.state["users"] if token and u["token"] == token), None)

    def user(self, user_id: int) -> dict:
        return next(u for u in self.state["users"] if u["id"] == user_id)

    # --- representations ------------------------------------------------------------------------------

    def user_json(self, user: dict) -> dict:
        return {"id": user["id"], "username": user["username"], "name": user["name"],
                "state": user.get("state", "active"),
                "web_url": f"{self.base_url}/{user['username']}"}

    def issue_json(self, project: dict, issue: dict) -> dict:
        assignees = [self.user_json(self.user(a)) for a in issue["assignee_ids"]]
        return {
            "id": issue["id"], "iid": issue["iid"], "project_id": project["id"], "title": issue["title"],
            "description": issue["description"], "state": issue["state"], "created_at": issue["created_at"],
            "updated_at": issue["updated_at"], "closed_at": issue["closed_at"], "labels": issue["labels"],
            "author": self.user_json(self.user(issue["author_id"])), "assignees": assignees,
            "assignee": assignees[0] if assignees else None, "confidential": issue["confidential"],
            "user_notes_count": sum(1 for n in issue["notes"] if not n["system"]),
            "web_url": f"{self.base_url}/{project['path_with_namespace']}/-/issues/{issue['iid']}",
            "references": {"short": f"#{issue['iid']}", "full": f"{project['path_with_namespace']}#{issue['iid']}"},
            "type": "ISSUE", "issue_type": "issue",
        }

    def note_json(self, issue: dict, note: dict) -> dict:
        return {"id": note["id"], "body": note["body"], "author": self.user_json(self.user(note["author_id"])),
                "system": note["system"], "created_at": note["created_at"], "updated_at": note["updated_at"],
                "noteable_type": "Issue", "noteable_iid": issue["iid"], "confidential": False, "internal": False}

    def project_json(self, project: dict, user: dict | None = None) -> dict:
        # GitLab answers a single project with the caller's own roles (Projects API, "permissions").
        direct = project["members"].get(str(user["id"])) if user else None
        group = next((g for g in self.state["groups"] if g["id"] == project.get("group_id")), None)
        inherited = group["members"].get(str(user["id"])) if user and group else None
        permissions = {"project_access": {"access_level": direct} if direct else None,
                       "group_access": {"access_level": inherited} if inherited else None}
        return {"id": project["id"], "name": project["name"], "path": project["path"], "permissions": permissions,
                "path_with_namespace": project["path_with_namespace"], "visibility": project["visibility"],
                "default_branch": project["default_branch"],
                "web_url": f"{self.base_url}/{project['path_with_namespace']}",
                "namespace": {"id": project["group_id"], "path": "support", "kind": "group"}}

    def next_id(self, kind: str) -> int:
        value = self.state["next_id"][kind]
        self.state["next_id"][kind] = value + 1
        return value

    def add_mail(self, envelope) -> None:
        with self.lock:
            self.state["mail"].append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                                       "received_at": _now(),
                                       "raw": base64.b64encode(envelope.original_content or envelope.content)
                                       .decode("ascii")})
            self.save()
        if self.on_step:
            self.on_step("SMTP", "DATA")


def _bool(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1", "yes")


def _label_list(value: Any) -> list[str]:
    if not value:
        return []
    items = value if isinstance(value, list) else str(value).split(",")
    return [str(i).strip() for i in items if str(i).strip()]


def _id_list(name: str, value: Any) -> list[int]:
    """An Array[Integer] parameter: a JSON list, a form array (`name[]=1&name[]=4`) or "1,4"
    (`CommaSeparatedToIntegerArray`); anything else is Grape's 400 `<name> is invalid`."""
    items = value if isinstance(value, list) else str(value).split(",")
    items = [str(i).strip() for i in items if str(i).strip() != ""]
    if not all(i.lstrip("-").isdigit() for i in items):
        raise ApiError(400, f"{name} is invalid", body={"error": f"{name} is invalid"})
    return [int(i) for i in items]


def mail_json(entry: dict) -> dict:
    raw = base64.b64decode(entry["raw"])
    msg = message_from_bytes(raw, policy=email_policy.default)
    attachments = [{"filename": part.get_filename(), "size": len(part.get_content())}
                   for part in msg.iter_attachments()]
    return {"from": entry["from"], "to": entry["to"], "subject": msg["Subject"], "message_id": msg["Message-ID"],
            "received_at": entry["received_at"], "attachments": attachments, "raw": entry["raw"]}
