"""A small GitLab on loopback: the subset of REST API v4 that python-gitlab and the bot use.

It keeps GitLab's shapes, status codes and semantics — not stronger ones: search is fuzzy, private
projects answer 404 to outsiders, quick actions are applied (or dropped for authors below Reporter)
when an issue is created, POSTs are not idempotent. A mail sink (a real SMTP server) keeps every
message. Everything can be kept in a state file across restarts.

    license-bot sandbox [--port 8080] [--smtp-port 2525] [--state FILE]
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import tempfile
import threading
from datetime import datetime, timedelta, timezone
from email import message_from_bytes
from email import policy as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from . import search

GUEST, REPORTER, DEVELOPER, MAINTAINER, OWNER = 10, 20, 30, 40, 50
TOKENS = {"alice-token": "alice", "mallory-token": "mallory", "bot-token": "license-bot", "emil-token": "emil",
          "carol-token": "carol", "dave-token": "dave", "mike-token": "mike"}
PROJECT_PATH = "support/internal-requests"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def seed_state() -> dict[str, Any]:
    names = [("alice", "Alice Support"), ("mallory", "Mallory Outsider"), ("license-bot", "License Bot"),
             ("emil", "Emil EMEA"), ("carol", "Carol Contractor"), ("dave", "Dave Guest"),
             ("mike", "Mike Manager")]
    users = [{"id": n, "username": u, "name": name, "token": f"{u}-token", "state": "active"}
             for n, (u, name) in enumerate(names, start=1)]
    users[2]["token"] = "bot-token"

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
            group(1, "support", None, "private", {1: DEVELOPER, 3: REPORTER, 6: GUEST, 7: DEVELOPER},
                  shared=[(3, DEVELOPER)]),
            group(2, "emea", 1, "private", {4: DEVELOPER}),
            group(3, "contractors", None, "internal", {5: DEVELOPER}),
            group(4, "support-managers", None, "internal", {7: MAINTAINER}),
            group(5, "hidden", None, "private", {1: DEVELOPER}),  # the bot cannot read it
        ],
        "projects": [{
            "id": 1, "path": "internal-requests", "path_with_namespace": PROJECT_PATH, "group_id": 1,
            "name": "internal-requests", "visibility": "private", "default_branch": "main",
            # alice is in through the group; mallory, emil and the bot are direct members.
            "members": {"2": GUEST, "3": MAINTAINER, "4": GUEST},
            # The labels `license-bot setup` creates: GitLab's /label applies only labels that exist.
            "labels": [{"id": n, "name": name, "color": "#6699cc", "description": None} for n, name in enumerate(
                ["license-request", "license-request::processing", "license-request::success",
                 "license-request::failed", "license-request-override"], start=1)],
            "issues": [], "uploads": {}, "files": {},
        }],
        "next_id": {"issue": 1, "note": 1, "label": 6, "upload": 1},
        "mail": [],
    }


class ApiError(Exception):
    def __init__(self, status: int, message: Any):
        super().__init__(message)
        self.status, self.message = status, message


class Sandbox:
    """The state and the API's semantics; the HTTP handler only routes to it."""

    def __init__(self, state_file: str | None = None, base_url: str = "http://127.0.0.1", *,
                 search_rules: str = "v3", edition: str = "premium", search_rate_limit: int = 30):
        from .ratelimit import RateLimit

        self.search_rules, self.edition = search_rules, edition
        self.search_limit = RateLimit(search_rate_limit)
        self.started = datetime.now(timezone.utc)
        self.lock = threading.RLock()
        self.state_file = Path(state_file) if state_file else None
        self.base_url = base_url
        if self.state_file and self.state_file.exists():
            self.state = json.loads(self.state_file.read_text())
        else:
            self.state = seed_state()
            self.save()
        self.requests: list[tuple[str, str, int]] = []

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

    def group_by_ref(self, ref: str) -> dict | None:
        return next((g for g in self.state["groups"] if ref in (str(g["id"]), g["full_path"])), None)

    def group_members_all(self, group: dict) -> dict[str, int]:
        """`members/all`: direct members, members inherited from ancestor groups, and members of groups
        this group is shared with (capped at the share's access level), each at their highest level."""
        levels: dict[str, int] = {}

        def merge(members: dict[str, int], cap: int = OWNER) -> None:
            for uid, lvl in members.items():
                levels[uid] = max(levels.get(uid, 0), min(lvl, cap))
        g: dict | None = group
        while g is not None:
            merge(g["members"])
            for share in g.get("shared_with_groups", ()):
                invited = next(x for x in self.state["groups"] if x["id"] == share["group_id"])
                merge(invited["members"], share["group_access_level"])
            g = next((x for x in self.state["groups"] if x["id"] == g.get("parent_id")), None)
        return levels

    def can_read_group(self, group: dict, user: dict) -> bool:
        """Public and internal groups are readable by any signed-in user; a private group by its members
        (any kind) and by members of projects inside it (GitLab's GroupPolicy `has_projects`)."""
        if group["visibility"] in ("public", "internal") or str(user["id"]) in self.group_members_all(group):
            return True
        return any(p["group_id"] == group["id"] and str(user["id"]) in p["members"] for p in self.state["projects"])

    def group(self, ref: str, user: dict) -> dict:
        g = self.group_by_ref(ref)
        if g is None or not self.can_read_group(g, user):
            raise ApiError(404, "404 Group Not Found")  # private groups do not exist for outsiders
        return g

    def access(self, project: dict, user: dict) -> int:
        direct = project["members"].get(str(user["id"]), 0)
        group = next((g for g in self.state["groups"] if g["id"] == project.get("group_id")), None)
        inherited = self.group_members_all(group).get(str(user["id"]), 0) if group else 0
        return max(direct, inherited)

    def project(self, ref: str, user: dict) -> dict:
        for p in self.state["projects"]:
            if ref in (str(p["id"]), p["path_with_namespace"]):
                if p["visibility"] == "public" or self.access(p, user) >= GUEST:
                    return p
                break  # private: outsiders are told it does not exist, as GitLab does
        raise ApiError(404, "404 Project Not Found")

    def issue(self, project: dict, iid: str, user: dict) -> dict:
        for i in project["issues"]:
            if str(i["iid"]) == iid and self.can_see(project, i, user):
                return i
        raise ApiError(404, "404 Issue Not Found")

    def can_see(self, project: dict, issue: dict, user: dict) -> bool:
        return not issue["confidential"] or issue["author_id"] == user["id"] or self.access(project, user) >= REPORTER

    def require(self, project: dict, user: dict, level: int) -> None:
        if self.access(project, user) < level:
            raise ApiError(403, "403 Forbidden")

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

    # --- writes -------------------------------------------------------------------------------------------

    def next_id(self, kind: str) -> int:
        value = self.state["next_id"][kind]
        self.state["next_id"][kind] = value + 1
        return value

    def ensure_labels(self, project: dict, names: list[str]) -> None:
        known = {lb["name"] for lb in project["labels"]}
        for name in names:
            if name not in known:  # GitLab creates unknown labels on the fly (typos become labels)
                project["labels"].append({"id": self.next_id("label"), "name": name, "color": "#6699cc",
                                          "description": None})
                known.add(name)

    def system_note(self, issue: dict, user: dict, body: str) -> None:
        now = _now()
        issue["notes"].append({"id": self.next_id("note"), "body": body, "author_id": user["id"], "system": True,
                               "created_at": now, "updated_at": now})

    def set_labels(self, project: dict, issue: dict, user: dict, labels: list[str]) -> None:
        added = [lb for lb in labels if lb not in issue["labels"]]
        removed = [lb for lb in issue["labels"] if lb not in labels]
        # Scoped labels: a new `a::b` replaces any other `a::*` on the issue, on paid tiers only
        # (docs: user/project/labels, "Scoped labels": Premium and Ultimate). On Free both stay.
        for new in added if self.edition == "premium" else ():
            if "::" in new:
                scope = new.rsplit("::", 1)[0]
                labels = [lb for lb in labels if lb == new or not (lb.startswith(scope + "::")
                                                                   and lb.count("::") == new.count("::"))]
        self.ensure_labels(project, added)
        now = _now()
        for name, action in [(a, "add") for a in added] + [(r, "remove") for r in removed]:
            label = next(lb for lb in project["labels"] if lb["name"] == name) if action == "add" else \
                next((lb for lb in project["labels"] if lb["name"] == name), {"id": 0, "name": name})
            issue.setdefault("label_events", []).append({
                "id": self.next_id("note"), "user_id": user["id"], "created_at": now, "action": action,
                "label": {"id": label["id"], "name": name}})
        if added or removed:
            parts = []
            if added:
                parts.append("added " + " ".join(f"~\"{a}\"" for a in added))
            if removed:
                parts.append("removed " + " ".join(f"~\"{r}\"" for r in removed))
            self.system_note(issue, user, " ".join(parts) + " label" + ("s" if len(added + removed) > 1 else ""))
        issue["labels"] = labels

    def apply_quick_actions(self, project: dict, user: dict, description: str, issue: dict) -> str:
        """Quick actions on a new issue, as GitLab applies them: project members of any role, Guests
        included, may set labels, assignees and confidentiality on an issue they create (IssuePolicy:
        `set_issue_metadata` for `is_project_member & guest_access` on new issues). `/label` applies only
        labels that exist; a quick action that applies nothing stays in the text (QuickActions docs)."""
        kept = []
        for line in description.split("\n"):
            stripped = line.strip()
            if stripped.startswith("/label "):
                names = [a or b for a, b in re.findall(r'~"([^"]+)"|~(\S+)', stripped)]
                known = {lb["name"] for lb in project["labels"]}
                existing = [name for name in names if name in known]
                if not existing:
                    kept.append(line)
                    continue
                added = [n for n in existing if n not in issue["labels"]]
                self.set_labels(project, issue, user, issue["labels"] + added)
                continue
            if stripped == "/confidential":
                issue["confidential"] = True
                continue
            if stripped.startswith("/assign"):
                who = stripped.split()[1:] or ["me"]
                targets = [user if name == "me" else next(
                    (u for u in self.state["users"] if u["username"] == name.lstrip("@")), None) for name in who]
                targets = [t for t in targets if t and self.access(project, t) >= GUEST]
                if not targets:
                    kept.append(line)
                    continue
                self.assign(issue, issue["assignee_ids"] + [t["id"] for t in targets if t["id"] not in
                                                             issue["assignee_ids"]])
                continue
            kept.append(line)
        return "\n".join(kept).strip("\n")

    def assign(self, issue: dict, ids: list[int]) -> None:
        """Several assignees on paid tiers; GitLab Free keeps only the first (docs: "Multiple assignees")."""
        issue["assignee_ids"] = ids if self.edition == "premium" else ids[:1]

    def create_issue(self, project: dict, user: dict, data: dict) -> dict:
        self.require(project, user, GUEST)
        title = (data.get("title") or "").strip()
        if not title:
            raise ApiError(400, {"title": ["can't be blank"]})
        now = _now()
        issue = {"id": 1000 + self.next_id("issue"), "iid": len(project["issues"]) + 1, "title": title,
                 "description": "", "state": "opened", "labels": [], "author_id": user["id"],
                 "confidential": bool(data.get("confidential")), "assignee_ids": [], "created_at": now,
                 "updated_at": now, "closed_at": None, "notes": []}
        if data.get("labels"):  # any member who may create the issue may label it (see apply_quick_actions)
            self.set_labels(project, issue, user, _label_list(data["labels"]))
        if data.get("assignee_ids"):
            ids = data["assignee_ids"] if isinstance(data["assignee_ids"], list) else [data["assignee_ids"]]
            self.assign(issue, [int(i) for i in ids if str(i).isdigit()])
        issue["description"] = self.apply_quick_actions(project, user, data.get("description") or "", issue)
        issue["notes"] = [n for n in issue["notes"] if not n["system"]]  # creation is one event in GitLab
        project["issues"].append(issue)
        return issue

    def edit_issue(self, project: dict, issue: dict, user: dict, data: dict) -> dict:
        if issue["author_id"] != user["id"]:
            self.require(project, user, REPORTER)
        if "title" in data:
            if not str(data["title"]).strip():
                raise ApiError(400, {"title": ["can't be blank"]})
            if data["title"] != issue["title"]:
                self.system_note(issue, user, f"changed title from **{issue['title']}** to **{data['title']}**")
                issue["title"] = data["title"]
        if "description" in data:
            issue["description"] = data["description"] or ""
        labels = list(issue["labels"])
        if "labels" in data:
            labels = _label_list(data["labels"])
        labels += [lb for lb in _label_list(data.get("add_labels")) if lb not in labels]
        labels = [lb for lb in labels if lb not in _label_list(data.get("remove_labels"))]
        if labels != issue["labels"]:
            self.require(project, user, REPORTER)
            self.set_labels(project, issue, user, labels)
        if "confidential" in data:
            issue["confidential"] = _bool(data["confidential"])
        if "assignee_ids" in data:
            ids = data["assignee_ids"] if isinstance(data["assignee_ids"], list) else [data["assignee_ids"]]
            self.assign(issue, [int(i) for i in ids if str(i).isdigit() and int(i) != 0])
        event = data.get("state_event")
        if event == "close" and issue["state"] == "opened":
            issue["state"], issue["closed_at"] = "closed", _now()
            self.system_note(issue, user, "closed")
        elif event == "reopen" and issue["state"] == "closed":
            issue["state"], issue["closed_at"] = "opened", None
            self.system_note(issue, user, "reopened")
        issue["updated_at"] = _now()
        return issue

    def add_mail(self, envelope) -> None:
        with self.lock:
            self.state["mail"].append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                                       "received_at": _now(),
                                       "raw": base64.b64encode(envelope.original_content or envelope.content)
                                       .decode("ascii")})
            self.save()


def _bool(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1", "yes")


def _label_list(value: Any) -> list[str]:
    if not value:
        return []
    items = value if isinstance(value, list) else str(value).split(",")
    return [str(i).strip() for i in items if str(i).strip()]


def mail_json(entry: dict) -> dict:
    raw = base64.b64decode(entry["raw"])
    msg = message_from_bytes(raw, policy=email_policy.default)
    attachments = [{"filename": part.get_filename(), "size": len(part.get_content())}
                   for part in msg.iter_attachments()]
    return {"from": entry["from"], "to": entry["to"], "subject": msg["Subject"], "message_id": msg["Message-ID"],
            "received_at": entry["received_at"], "attachments": attachments, "raw": entry["raw"]}


# --- HTTP --------------------------------------------------------------------------------------------------

ROUTES: list[tuple[str, re.Pattern, str]] = []


def route(method: str, pattern: str):
    def register(func):
        ROUTES.append((method, re.compile("^" + pattern + "$"), func.__name__))
        return func
    return register


class Handler(BaseHTTPRequestHandler):
    server_version = "license-bot-sandbox/1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: without this, 40 ms stalls
    protocol_version = "HTTP/1.1"
    sandbox: Sandbox  # set on the subclass made by serve()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: the request log is the API
        pass

    # dispatch
    def _handle(self, method: str) -> None:
        parts = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        path = parts.path
        status = 500
        try:
            for verb, pattern, name in ROUTES:
                match = pattern.match(path)
                if verb == method and match:
                    with self.sandbox.lock:
                        status, body, headers = getattr(self, name)(*[unquote(g) for g in match.groups()])
                        if method != "GET":
                            self.sandbox.save()
                    break
            else:
                status, body, headers = 404, {"error": "404 Not Found"}, {}
        except ApiError as exc:
            status, body, headers = exc.status, {"message": exc.message}, {}
        except Exception as exc:  # noqa: BLE001
            status, body, headers = 500, {"message": f"500 Internal Server Error: {type(exc).__name__}: {exc}"}, {}
        if path.startswith("/api/"):
            with self.sandbox.lock:
                self.sandbox.requests.append((method, self.path, status))
        self._send(status, body, headers)

    def _send(self, status: int, body: Any, headers: dict) -> None:
        if isinstance(body, bytes):
            data, ctype = body, headers.pop("Content-Type", "application/octet-stream")
        else:
            data, ctype = json.dumps(body).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._handle("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")

    # request helpers
    def body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        ctype = self.headers.get("Content-Type", "")
        if ctype.startswith("application/json"):
            return json.loads(raw or b"{}")
        if ctype.startswith("multipart/form-data"):
            msg = message_from_bytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + raw,
                                     policy=email_policy.HTTP)
            out = {}
            for part in msg.iter_parts():
                name = part.get_param("name", header="content-disposition")
                out[name] = {"filename": part.get_filename(), "data": part.get_payload(decode=True)} \
                    if part.get_filename() else part.get_payload(decode=True).decode()
            return out
        return {k: v[-1] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}

    def me(self) -> dict:
        token = self.headers.get("PRIVATE-TOKEN") or self.query.get("private_token")
        user = self.sandbox.user_by_token(token)
        if user is None:
            raise ApiError(401, "401 Unauthorized")
        return user

    def paginate(self, items: list) -> tuple[int, list, dict]:
        per_page = max(1, min(int(self.query.get("per_page") or 20), 100))
        page = max(1, int(self.query.get("page") or 1))
        total = len(items)
        pages = max(1, -(-total // per_page))
        chunk = items[(page - 1) * per_page: page * per_page]
        headers = {"X-Page": str(page), "X-Per-Page": str(per_page), "X-Total": str(total),
                   "X-Total-Pages": str(pages), "X-Next-Page": str(page + 1) if page < pages else "",
                   "X-Prev-Page": str(page - 1) if page > 1 else ""}
        base = f"{self.sandbox.base_url}{urlsplit(self.path).path}"
        query = {k: v for k, v in self.query.items() if k != "page"}

        def link(n: int, rel: str) -> str:
            q = "&".join(f"{quote(k)}={quote(str(v))}" for k, v in {**query, "page": n}.items())
            return f'<{base}?{q}>; rel="{rel}"'
        links = [link(page + 1, "next")] if page < pages else []
        links += [link(1, "first"), link(pages, "last")]
        headers["Link"] = ", ".join(links)
        return 200, chunk, headers

    # --- routes ---------------------------------------------------------------------------------------
    @route("GET", r"/api/v4/user")
    def get_user(self):
        return 200, self.sandbox.user_json(self.me()), {}

    @route("GET", r"/api/v4/projects/([^/]+)")
    def get_project(self, ref):
        user = self.me()
        return 200, self.sandbox.project_json(self.sandbox.project(ref, user), user), {}

    @route("GET", r"/api/v4/projects/([^/]+)/members/all/(\d+)")
    def get_project_member(self, ref, user_id):
        project = self.sandbox.project(ref, self.me())
        user = next((u for u in self.sandbox.state["users"] if str(u["id"]) == user_id), None)
        level = self.sandbox.access(project, user) if user else 0
        if not level:
            raise ApiError(404, "404 Not found")
        return 200, {**self.sandbox.user_json(user), "access_level": level}, {}

    @route("GET", r"/api/v4/groups/([^/]+)")
    def get_group(self, ref):
        g = self.sandbox.group(ref, self.me())
        return 200, {"id": g["id"], "path": g["path"], "name": g["name"], "full_path": g["full_path"],
                     "parent_id": g["parent_id"], "visibility": g["visibility"],
                     "shared_with_groups": g["shared_with_groups"]}, {}

    def _member_json(self, uid: str, level: int) -> dict:
        user = self.sandbox.user(int(uid))
        return {**self.sandbox.user_json(user), "access_level": level, "state": user.get("state", "active"),
                "expires_at": None}

    @route("GET", r"/api/v4/groups/([^/]+)/members/all")
    def list_group_members(self, ref):
        members = self.sandbox.group_members_all(self.sandbox.group(ref, self.me()))
        return self.paginate([self._member_json(uid, lvl) for uid, lvl in members.items()])

    @route("GET", r"/api/v4/groups/([^/]+)/members/all/(\d+)")
    def get_group_member(self, ref, user_id):
        members = self.sandbox.group_members_all(self.sandbox.group(ref, self.me()))
        if user_id not in members:
            raise ApiError(404, "404 Not found")
        return 200, self._member_json(user_id, members[user_id]), {}

    @route("GET", r"/api/v4/groups/([^/]+)/members/(\d+)")
    def get_direct_group_member(self, ref, user_id):
        g = self.sandbox.group(ref, self.me())
        if user_id not in g["members"]:
            raise ApiError(404, "404 Not found")  # inherited and shared members are not direct members
        return 200, self._member_json(user_id, g["members"][user_id]), {}

    @route("GET", r"/api/v4/projects/([^/]+)/labels")
    def list_labels(self, ref):
        project = self.sandbox.project(ref, self.me())
        return self.paginate(project["labels"])

    @route("POST", r"/api/v4/projects/([^/]+)/labels")
    def create_label(self, ref):
        user = self.me()
        project = self.sandbox.project(ref, user)
        self.sandbox.require(project, user, REPORTER)
        data = self.body()
        name = (data.get("name") or "").strip()
        if not name or not re.fullmatch(r"#[0-9a-fA-F]{6}", data.get("color") or ""):
            raise ApiError(400, {"name": ["can't be blank"]} if not name else {"color": ["must be a valid color"]})
        if any(lb["name"] == name for lb in project["labels"]):
            raise ApiError(409, "Label already exists")
        label = {"id": self.sandbox.next_id("label"), "name": name, "color": data["color"],
                 "description": data.get("description")}
        project["labels"].append(label)
        return 201, label, {}

    def _label(self, project: dict, ref: str) -> dict:
        for label in project["labels"]:
            if ref in (str(label["id"]), label["name"]):
                return label
        raise ApiError(404, "404 Label Not Found")

    @route("GET", r"/api/v4/projects/([^/]+)/labels/([^/]+)")
    def get_label(self, ref, name):
        return 200, self._label(self.sandbox.project(ref, self.me()), name), {}

    @route("DELETE", r"/api/v4/projects/([^/]+)/labels/([^/]+)")
    def delete_label(self, ref, name):
        user = self.me()
        project = self.sandbox.project(ref, user)
        self.sandbox.require(project, user, REPORTER)
        label = self._label(project, name)
        project["labels"].remove(label)
        for issue in project["issues"]:
            if label["name"] in issue["labels"]:
                issue["labels"].remove(label["name"])
        return 204, b"", {}

    @route("GET", r"/api/v4/projects/([^/]+)/issues")
    def list_issues(self, ref):
        user = self.me()
        project = self.sandbox.project(ref, user)
        q = self.query
        issues = [i for i in project["issues"] if self.sandbox.can_see(project, i, user)]
        state = q.get("state", "all")
        if state in ("opened", "closed"):
            issues = [i for i in issues if i["state"] == state]
        wanted = _label_list(q.get("labels"))
        if wanted == ["None"]:
            issues = [i for i in issues if not i["labels"]]
        elif wanted == ["Any"]:
            issues = [i for i in issues if i["labels"]]
        elif wanted:
            issues = [i for i in issues if all(lb in i["labels"] for lb in wanted)]
        unwanted = _label_list(q.get("not[labels]"))
        if unwanted:
            issues = [i for i in issues if not any(lb in i["labels"] for lb in unwanted)]
        if q.get("author_id"):
            issues = [i for i in issues if str(i["author_id"]) == q["author_id"]]
        if q.get("author_username"):
            issues = [i for i in issues if self.sandbox.user(i["author_id"])["username"] == q["author_username"]]
        for key, field in (("updated_after", "updated_at"), ("created_after", "created_at")):
            if q.get(key):
                since = _parse_time(q[key])
                issues = [i for i in issues if _parse_time(i[field]) >= since]
        if q.get("search"):
            # GitLab's full-text search, rate-limited per user (search_rate_limit; 429 without Retry-After).
            if not self.sandbox.search_limit.allow(user["id"]):
                raise ApiError(429, "This endpoint has been requested too many times. Try again later.")
            fields = [f.strip() for f in q.get("in", "title,description").split(",") if f.strip()]
            issues = [i for i in issues if search.matches(i["title"], i["description"] or "", q["search"], fields,
                                                          self.sandbox.search_rules)]
        order = q.get("order_by", "created_at")
        key_field = order if order in ("created_at", "updated_at") else "created_at"
        issues.sort(key=lambda i: (i[key_field], i["iid"]), reverse=q.get("sort", "desc") == "desc")
        status, chunk, headers = self.paginate(issues)
        return status, [self.sandbox.issue_json(project, i) for i in chunk], headers

    @route("POST", r"/api/v4/projects/([^/]+)/issues")
    def create_issue(self, ref):
        user = self.me()
        project = self.sandbox.project(ref, user)
        issue = self.sandbox.create_issue(project, user, self.body())
        return 201, self.sandbox.issue_json(project, issue), {}

    @route("GET", r"/api/v4/projects/([^/]+)/issues/(\d+)")
    def get_issue(self, ref, iid):
        user = self.me()
        project = self.sandbox.project(ref, user)
        return 200, self.sandbox.issue_json(project, self.sandbox.issue(project, iid, user)), {}

    @route("PUT", r"/api/v4/projects/([^/]+)/issues/(\d+)")
    def edit_issue(self, ref, iid):
        user = self.me()
        project = self.sandbox.project(ref, user)
        issue = self.sandbox.edit_issue(project, self.sandbox.issue(project, iid, user), user, self.body())
        return 200, self.sandbox.issue_json(project, issue), {}

    @route("GET", r"/api/v4/projects/([^/]+)/issues/(\d+)/notes")
    def list_notes(self, ref, iid):
        user = self.me()
        project = self.sandbox.project(ref, user)
        issue = self.sandbox.issue(project, iid, user)
        notes = sorted(issue["notes"], key=lambda n: (n[self.query.get("order_by", "created_at")], n["id"]),
                       reverse=self.query.get("sort", "desc") == "desc")
        status, chunk, headers = self.paginate(notes)
        return status, [self.sandbox.note_json(issue, n) for n in chunk], headers

    @route("POST", r"/api/v4/projects/([^/]+)/issues/(\d+)/notes")
    def create_note(self, ref, iid):
        user = self.me()
        project = self.sandbox.project(ref, user)
        issue = self.sandbox.issue(project, iid, user)
        body = (self.body().get("body") or "").strip("\n")
        if not body.strip():
            raise ApiError(400, "400 Bad request - body is missing")
        now = _now()
        note = {"id": self.sandbox.next_id("note"), "body": body, "author_id": user["id"], "system": False,
                "created_at": now, "updated_at": now}
        issue["notes"].append(note)
        issue["updated_at"] = now
        return 201, self.sandbox.note_json(issue, note), {}

    @route("PUT", r"/api/v4/projects/([^/]+)/issues/(\d+)/notes/(\d+)")
    def edit_note(self, ref, iid, note_id):
        user = self.me()
        project = self.sandbox.project(ref, user)
        issue = self.sandbox.issue(project, iid, user)
        note = next((n for n in issue["notes"] if str(n["id"]) == note_id and not n["system"]), None)
        if note is None:
            raise ApiError(404, "404 Note Not Found")
        if note["author_id"] != user["id"]:
            raise ApiError(403, "403 Forbidden")
        note["body"], note["updated_at"] = self.body().get("body") or note["body"], _now()
        issue["updated_at"] = note["updated_at"]  # GitLab touches the issue when a note changes
        return 200, self.sandbox.note_json(issue, note), {}

    @route("GET", r"/api/v4/projects/([^/]+)/issues/(\d+)/notes/(\d+)")
    def get_note(self, ref, iid, note_id):
        user = self.me()
        issue = self.sandbox.issue(self.sandbox.project(ref, user), iid, user)
        return 200, self.sandbox.note_json(issue, self._note(issue, note_id)), {}

    @route("DELETE", r"/api/v4/projects/([^/]+)/issues/(\d+)/notes/(\d+)")
    def delete_note(self, ref, iid, note_id):
        """Its author, or a Maintainer and above, may delete a comment (NotePolicy: admin_note)."""
        user = self.me()
        project = self.sandbox.project(ref, user)
        issue = self.sandbox.issue(project, iid, user)
        note = self._note(issue, note_id)
        if note["author_id"] != user["id"]:
            self.sandbox.require(project, user, MAINTAINER)
        issue["notes"].remove(note)
        issue["updated_at"] = _now()
        return 204, b"", {}

    def _note(self, issue: dict, note_id: str) -> dict:
        note = next((n for n in issue["notes"] if str(n["id"]) == note_id), None)
        if note is None:
            raise ApiError(404, "404 Note Not Found")
        return note

    @route("GET", r"/api/v4/version")
    def version(self):
        """GET /version: v1 is a GitLab before 16.6, v2 and v3 newer; `-ee` on a paid edition."""
        self.me()
        number = {"v1": "16.5.2", "v2": "17.6.1", "v3": "18.2.1"}[self.sandbox.search_rules]
        suffix = "-ee" if self.sandbox.edition == "premium" else ""
        return 200, {"version": number + suffix, "revision": "sandbox", "kas": {"enabled": False}}, {}

    @route("GET", r"/api/v4/personal_access_tokens/self")
    def token_self(self):
        """GET /personal_access_tokens/self (project access tokens answer too): scopes and expiry.
        The bot's token expires 10 days after the sandbox starts, so doctor's warning can be seen."""
        user = self.me()
        days = 10 if user["token"] == "bot-token" else 365
        expires = (self.sandbox.started + timedelta(days=days)).date().isoformat()
        return 200, {"id": user["id"], "name": f"{user['username']} token", "revoked": False, "active": True,
                     "scopes": ["api"], "user_id": user["id"], "created_at": self.sandbox.started.isoformat(),
                     "expires_at": expires, "last_used_at": _now()}, {}

    @route("GET", r"/api/v4/projects/([^/]+)/pipeline_schedules")
    def pipeline_schedules(self, ref):
        """The schedule that runs the bot: `active`, and its `owner` (GitLab deactivates a schedule whose
        owner is blocked or removed)."""
        user = self.me()
        project = self.sandbox.project(ref, user)
        self.sandbox.require(project, user, DEVELOPER)
        schedules = project.setdefault("pipeline_schedules", [
            {"id": 1, "description": "License Bot", "ref": "main", "cron": "*/10 * * * *", "cron_timezone": "UTC",
             "active": True, "owner_id": 7}])
        return self.paginate([{**{k: v for k, v in sch.items() if k != "owner_id"},
                               "owner": self.sandbox.user_json(self.sandbox.user(sch["owner_id"]))}
                              for sch in schedules])

    @route("GET", r"/api/v4/projects/([^/]+)/issues/(\d+)/resource_label_events")
    def label_events(self, ref, iid):
        user = self.me()
        project = self.sandbox.project(ref, user)
        issue = self.sandbox.issue(project, iid, user)
        events = [{"id": e["id"], "user": self.sandbox.user_json(self.sandbox.user(e["user_id"])),
                   "created_at": e["created_at"], "resource_type": "Issue", "resource_id": issue["id"],
                   "label": {**e["label"], "color": "#6699cc", "description": None}, "action": e["action"]}
                  for e in issue.get("label_events", [])]
        return self.paginate(events)

    @route("POST", r"/api/v4/projects/([^/]+)/uploads")
    def upload(self, ref):
        user = self.me()
        project = self.sandbox.project(ref, user)
        self.sandbox.require(project, user, GUEST)
        file = self.body().get("file")
        if not isinstance(file, dict):
            raise ApiError(400, "400 Bad request - file is missing")
        secret = secrets.token_hex(16)
        name = file["filename"]
        project["uploads"][secret] = {"filename": name, "data": base64.b64encode(file["data"]).decode()}
        url = f"/uploads/{secret}/{name}"
        return 201, {"id": self.sandbox.next_id("upload"), "alt": name, "url": url,
                     "full_path": f"/-/project/{project['id']}/uploads/{secret}/{name}",
                     "markdown": f"[{name}]({url})"}, {}

    @route("GET", r"/api/v4/projects/([^/]+)/uploads/([0-9a-f]{32})/([^/]+)")
    def download(self, ref, secret, name):
        project = self.sandbox.project(ref, self.me())
        upload = project["uploads"].get(secret)
        if not upload or upload["filename"] != name:
            raise ApiError(404, "404 Not found")
        return 200, base64.b64decode(upload["data"]), {"Content-Type": "application/octet-stream"}

    def _readable_repo(self, ref: str) -> dict:
        user = self.me()
        project = self.sandbox.project(ref, user)
        if project["visibility"] != "public":
            self.sandbox.require(project, user, REPORTER)  # Guests cannot read a private project's code
        return project

    @route("GET", r"/api/v4/projects/([^/]+)/repository/files/([^/]+)")
    def get_file(self, ref, path):
        project = self._readable_repo(ref)
        entry = project["files"].get(path)
        if entry is None:
            raise ApiError(404, "404 File Not Found")
        content = entry["content"].encode()
        return 200, {"file_name": path.rsplit("/", 1)[-1], "file_path": path, "size": len(content),
                     "encoding": "base64", "content": base64.b64encode(content).decode(),
                     "ref": self.query.get("ref", project["default_branch"])}, {}

    @route("GET", r"/api/v4/projects/([^/]+)/repository/files/([^/]+)/raw")
    def get_file_raw(self, ref, path):
        project = self._readable_repo(ref)
        entry = project["files"].get(path)
        if entry is None:
            raise ApiError(404, "404 File Not Found")
        return 200, entry["content"].encode(), {"Content-Type": "text/plain"}

    def _write_file(self, ref, path, create: bool):
        user = self.me()
        project = self.sandbox.project(ref, user)
        self.sandbox.require(project, user, DEVELOPER)
        data = self.body()
        if not data.get("branch") or not data.get("commit_message"):
            raise ApiError(400, "branch and commit_message are required")
        exists = path in project["files"]
        if create and exists:
            raise ApiError(400, "A file with this name already exists")
        if not create and not exists:
            raise ApiError(400, "A file with this name doesn't exist")
        content = data.get("content") or ""
        if data.get("encoding") == "base64":
            content = base64.b64decode(content).decode()
        project["files"][path] = {"content": content, "branch": data["branch"]}
        return (201 if create else 200), {"file_path": path, "branch": data["branch"]}, {}

    @route("POST", r"/api/v4/projects/([^/]+)/repository/files/([^/]+)")
    def create_file(self, ref, path):
        return self._write_file(ref, path, create=True)

    @route("PUT", r"/api/v4/projects/([^/]+)/repository/files/([^/]+)")
    def update_file(self, ref, path):
        return self._write_file(ref, path, create=False)

    # --- the sandbox's own endpoints (no auth: loopback only) ------------------------------------------
    @route("GET", r"/sandbox/mail")
    def list_mail(self):
        return 200, [mail_json(m) for m in self.sandbox.state["mail"]], {}

    @route("GET", r"/sandbox/requests")
    def request_log(self):
        log = self.sandbox.requests
        by_method: dict[str, int] = {}
        for method, _, _ in log:
            by_method[method] = by_method.get(method, 0) + 1
        since = int(self.query.get("since") or 0)
        return 200, {"total": len(log), "by_method": by_method, "requests": log[since:]}, {}

    @route("POST", r"/sandbox/smtp/(up|down)")
    def smtp_switch(self, state):
        self.server.smtp_switch(state == "up")  # type: ignore[attr-defined]
        return 200, {"smtp": state}, {}

    @route("POST", r"/sandbox/projects/([^/]+)/visibility/(private|internal|public)")
    def set_visibility(self, ref, visibility):
        project = next(p for p in self.sandbox.state["projects"] if ref in (str(p["id"]), p["path_with_namespace"]))
        project["visibility"] = visibility
        return 200, self.sandbox.project_json(project), {}


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class SandboxServer:
    """The HTTP API and the SMTP sink, started together on loopback."""

    def __init__(self, port: int = 0, smtp_port: int = 0, state_file: str | None = None, *,
                 search_rules: str = "v3", edition: str = "premium", search_rate_limit: int = 30):
        from .. import mailsink

        self.sandbox = Sandbox(state_file, search_rules=search_rules, edition=edition,
                               search_rate_limit=search_rate_limit)
        handler = type("BoundHandler", (Handler,), {"sandbox": self.sandbox})
        self.http = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.http.daemon_threads = True
        self.port = self.http.server_address[1]
        self.sandbox.base_url = f"http://127.0.0.1:{self.port}"
        self.smtp_port = smtp_port or mailsink.free_port()
        self._inbox = mailsink.Inbox(on_message=self.sandbox.add_mail)
        self._smtp = None
        self.http.smtp_switch = self.smtp_switch  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def smtp_switch(self, up: bool) -> None:
        from .. import mailsink

        if up and self._smtp is None:
            self._smtp = mailsink.start(self._inbox, port=self.smtp_port)
        elif not up and self._smtp is not None:
            self._smtp.stop()
            self._smtp = None

    def start(self) -> SandboxServer:
        self.smtp_switch(True)
        self._thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()
        self.smtp_switch(False)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
