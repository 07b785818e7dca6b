"""The sandbox's HTTP API: GitLab REST v4 routes over `Sandbox`, with GitLab's status codes, error
bodies and pagination headers, plus the sandbox's own `/sandbox/...` endpoints for tests (loopback only).
Every request body is read before any answer (keep-alive stays in step); tokens count only in the
PRIVATE-TOKEN or Bearer header; another Host, and writes from another origin, are refused.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import sys
import threading
import traceback
from datetime import datetime, timedelta, timezone
from email import message_from_bytes
from email import policy as email_policy
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from . import search
from .model import Sandbox
from .routing import ROUTES, route
from .snippets import SnippetRoutes
from .store import DEVELOPER, GUEST, MAINTAINER, OWNER, PLANNER, REPORTER, ApiError, _label_list, _now, mail_json
from .zendesk import ZendeskRoutes

# GitLab validates award names against its emoji list (`Gitlab::Emoji`); the sandbox knows these.
EMOJI_NAMES = frozenset({"thumbsup", "thumbsdown", "heart", "key", "lock", "white_check_mark", "robot", "eyes",
                         "tada", "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                         "keycap_ten", "passport_control", "alarm_clock", "bell"})

# --- HTTP --------------------------------------------------------------------------------------------------

class Handler(SnippetRoutes, ZendeskRoutes, BaseHTTPRequestHandler):
    server_version = "license-bot-sandbox/1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: without this, 40 ms stalls
    protocol_version = "HTTP/1.1"
    sandbox: Sandbox  # set on the subclass made by serve()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: the request log is the API
        pass

    # dispatch
    def _handle(self, method: str) -> None:
        # Read the whole body before anything can refuse the request: an unread body would be parsed as
        # the next request on this keep-alive connection (an HTML 400/501 for the client's next call).
        if not self._read_body():
            return
        refusal = self._foreign(method)
        if refusal:
            with self.sandbox.lock:
                self.sandbox.requests.append((method, self.path, refusal[0]))
            self._send(*refusal, {})
            return
        parts = urlsplit(self.path)
        self.query, self.query_lists = _params(parse_qs(parts.query, keep_blank_values=True))
        path = parts.path
        if path.startswith("/api/") and self.sandbox.hold_at is not None:
            with self.sandbox.lock:
                self.sandbox.hold_at -= 1
                hold = self.sandbox.hold_at == 0
            if hold:  # a test's "the server stops answering here": this call never gets an answer
                self.sandbox.held.set()
                threading.Event().wait()
        status = 500
        try:
            for verb, pattern, name in ROUTES:
                match = pattern.match(path)
                if verb == method and match:
                    args = [None if g is None else unquote(g) for g in match.groups()]
                    with self.sandbox.lock:
                        status, body, headers = getattr(self, name)(*args)
                        if method != "GET":
                            self.sandbox.save()
                    break
            else:
                status, body, headers = 404, {"error": "404 Not Found"}, {}
        except ApiError as exc:
            status, body, headers = exc.status, exc.body, dict(getattr(exc, "headers", {}))
        except Exception:  # noqa: BLE001 - GitLab's bare 500 for the client; the traceback for whoever runs it
            traceback.print_exc(file=sys.stderr)
            status, body, headers = 500, {"message": "500 Internal Server Error"}, {}
        if path.startswith("/api/v4/"):  # GitLab's calls; Zendesk's are counted apart
            with self.sandbox.lock:
                self.sandbox.requests.append((method, self.path, status))
        if path.startswith("/api/") and self.sandbox.on_step:
            self.sandbox.on_step(method, self.path)
        self._send(status, body, headers)

    def _send(self, status: int, body: Any, headers: dict) -> None:
        if isinstance(body, bytes):
            data, ctype = body, headers.pop("Content-Type", "application/octet-stream")
        else:
            data, ctype = json.dumps(body).encode(), "application/json"
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client went away (killed mid-call)
            self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._handle("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")

    def do_PATCH(self) -> None:  # noqa: N802 - no route takes PATCH: GitLab's JSON 404, not an HTML 501
        self._handle("PATCH")

    # request helpers
    def _foreign(self, method: str) -> tuple[int, dict] | None:
        """Refuse what a web page elsewhere could make a browser send: a Host other than the sandbox's own
        address (DNS rebinding), and a write carrying a foreign Origin or a cross-site fetch mark (a form
        POST from another site). Tokens come only in headers (see `me`), so a form cannot carry one."""
        port = self.server.server_address[1]
        own_hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}
        if (self.headers.get("Host") or "").lower() not in own_hosts:
            return 421, {"message": "421 Misdirected Request - the Host is not this sandbox's address"}
        if method in ("GET", "HEAD"):
            return None
        origin = self.headers.get("Origin")
        if origin is not None and origin.lower() not in {f"http://{h}" for h in own_hosts}:
            return 403, {"message": "403 Forbidden - cross-origin request refused"}
        if self.headers.get("Sec-Fetch-Site", "same-origin").lower() not in ("same-origin", "none"):
            return 403, {"message": "403 Forbidden - cross-site request refused"}
        return None

    def _read_body(self) -> bool:
        """Consume the request body (Content-Length or chunked) into `_raw`; on a body it cannot frame,
        answer 400 and close the connection rather than misread what follows."""
        self._raw = b""
        try:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks = []
                while (size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)) > 0:
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                self._raw = b"".join(chunks)
                return True
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0:
                raise ValueError(length)
        except ValueError:
            self.close_connection = True
            self._send(400, {"message": "400 Bad request - unreadable request body"}, {"Connection": "close"})
            return False
        self._raw = self.rfile.read(length) if length else b""
        return True

    def raw_body(self) -> bytes:
        return self._raw

    def body(self) -> dict:
        raw = self._raw
        ctype = self.headers.get("Content-Type", "")
        if ctype.startswith("application/json"):
            try:
                return json.loads(raw or b"{}")
            except ValueError:
                raise ApiError(400, "400 Bad request - the body is not valid JSON") from None
        if ctype.startswith("multipart/form-data"):
            msg = message_from_bytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + raw,
                                     policy=email_policy.HTTP)
            out = {}
            for part in msg.iter_parts():
                name = part.get_param("name", header="content-disposition")
                out[name] = {"filename": part.get_filename(), "data": part.get_payload(decode=True)} \
                    if part.get_filename() else part.get_payload(decode=True).decode()
            return out
        return _form(parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True))

    def me(self) -> dict:
        """The caller, from the `PRIVATE-TOKEN` or `Authorization: Bearer` header only: a token in a URL or
        a form body would let any page that can make a browser send a request act as its owner."""
        token = self.headers.get("PRIVATE-TOKEN")
        scheme, _, bearer = (self.headers.get("Authorization") or "").partition(" ")
        if not token and scheme.lower() == "bearer":
            token = bearer.strip()
        user = self.sandbox.user_by_token(token)
        if user is None:
            raise ApiError(401, "401 Unauthorized")
        return user

    def integer(self, name: str, default: int | None = None) -> int | None:
        """An Integer parameter as Grape coerces it: not a number is 400 `<name> is invalid`
        (GitLab: `rescue_from Grape::Exceptions::Base` in `lib/api/api.rb`)."""
        value = self.query.get(name)
        if value in (None, ""):
            return default
        if not re.fullmatch(r"[+-]?\d+", value.strip()):
            raise ApiError(400, f"{name} is invalid", body={"error": f"{name} is invalid"})
        return int(value)

    def boolean(self, name: str) -> bool | None:
        """A Boolean parameter as Grape coerces it."""
        value = self.query.get(name)
        if value in (None, ""):
            return None
        if value.lower() in ("true", "t", "1", "yes", "y", "on"):
            return True
        if value.lower() in ("false", "f", "0", "no", "n", "off"):
            return False
        raise ApiError(400, f"{name} is invalid", body={"error": f"{name} is invalid"})

    def paginate(self, items: list) -> tuple[int, list, dict]:
        per_page = max(1, min(self.integer("per_page", 20), 100))
        page = max(1, self.integer("page", 1))
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

    # Members (`lib/api/members.rb`): `members` and `members/:user_id` are direct members only; `members/all`
    # adds members inherited through the project's groups and groups shared with them. Anyone who can see
    # the project may read them (`read_project_member`).
    def _project_members(self, ref: str, every: bool) -> dict[str, int]:
        project = self.sandbox.project(ref, self.me())
        if not every:
            return dict(project["members"])
        uids = set(project["members"]) | set(self.sandbox.project_group_members(project))
        return {uid: self.sandbox.access(project, self.sandbox.user(int(uid))) for uid in uids}

    @route("GET", r"/api/v4/projects/([^/]+)/members")
    def list_project_members(self, ref):
        members = self._project_members(ref, every=False)
        return self.paginate([self._member_json(uid, lvl) for uid, lvl in sorted(members.items(), key=_uid)])

    @route("GET", r"/api/v4/projects/([^/]+)/members/all")
    def list_all_project_members(self, ref):
        members = self._project_members(ref, every=True)
        return self.paginate([self._member_json(uid, lvl) for uid, lvl in sorted(members.items(), key=_uid)])

    @route("GET", r"/api/v4/projects/([^/]+)/members/(\d+)")
    def get_direct_project_member(self, ref, user_id):
        members = self._project_members(ref, every=False)
        if user_id not in members:
            raise ApiError(404, "404 Not found")
        return 200, self._member_json(user_id, members[user_id]), {}

    @route("GET", r"/api/v4/projects/([^/]+)/members/all/(\d+)")
    def get_project_member(self, ref, user_id):
        members = self._project_members(ref, every=True)
        if not members.get(user_id):
            raise ApiError(404, "404 Not found")
        return 200, self._member_json(user_id, members[user_id]), {}

    @route("GET", r"/api/v4/groups/([^/]+)")
    def get_group(self, ref):
        g = self.sandbox.group(ref, self.me())
        return 200, {"id": g["id"], "path": g["path"], "name": g["name"], "full_path": g["full_path"],
                     "parent_id": g["parent_id"], "visibility": g["visibility"],
                     "shared_with_groups": g["shared_with_groups"]}, {}

    def _member_json(self, uid: str, level: int) -> dict:
        user = self.sandbox.user(int(uid))
        # Entities::Member: the user, the level, and the membership's own state and dates
        return {**self.sandbox.user_json(user), "access_level": level, "state": user.get("state", "active"),
                "expires_at": None, "created_at": self.sandbox.started.isoformat(), "membership_state": "active"}

    @route("GET", r"/api/v4/groups/([^/]+)/members")
    def list_direct_group_members(self, ref):
        g = self.sandbox.group(ref, self.me())
        return self.paginate([self._member_json(uid, lvl) for uid, lvl in sorted(g["members"].items(), key=_uid)])

    @route("GET", r"/api/v4/groups/([^/]+)/members/all")
    def list_group_members(self, ref):
        user = self.me()
        members = self.sandbox.group_members_all(self.sandbox.group_members_readable(self.sandbox.group(ref, user),
                                                                                    user))
        return self.paginate([self._member_json(uid, lvl) for uid, lvl in members.items()])

    @route("GET", r"/api/v4/groups/([^/]+)/members/all/(\d+)")
    def get_group_member(self, ref, user_id):
        user = self.me()
        members = self.sandbox.group_members_all(self.sandbox.group_members_readable(self.sandbox.group(ref, user),
                                                                                    user))
        if user_id not in members:
            raise ApiError(404, "404 Not found")
        return 200, self._member_json(user_id, members[user_id]), {}

    @route("GET", r"/api/v4/groups/([^/]+)/members/(\d+)")
    def get_direct_group_member(self, ref, user_id):
        user = self.me()
        g = self.sandbox.group_members_readable(self.sandbox.group(ref, user), user)
        if user_id not in g["members"]:
            raise ApiError(404, "404 Not found")  # inherited and shared members are not direct members
        return 200, self._member_json(user_id, g["members"][user_id]), {}

    # Labels: a project sees its own and its groups' (labels.py); rename and delete reach only its own.
    def _visible_labels(self, project: dict) -> list[dict]:
        """`include_ancestor_groups` (default true) adds the groups' labels (`lib/api/labels.rb`)."""
        if self.boolean("include_ancestor_groups") is False:
            return list(project["labels"])
        return self.sandbox.available_labels(project)

    @route("GET", r"/api/v4/projects/([^/]+)/labels")
    def list_labels(self, ref):
        project = self.sandbox.project(ref, self.me())
        return self.paginate([self.sandbox.label_json(lb, project) for lb in self._visible_labels(project)])

    def _new_label(self, owner: dict, available: list[dict]) -> tuple[int, dict, dict]:
        data = self.body()
        name = (data.get("name") or "").strip()
        if not name or not re.fullmatch(r"#[0-9a-fA-F]{6}", data.get("color") or ""):
            raise ApiError(400, {"name": ["can't be blank"]} if not name else {"color": ["must be a valid color"]})
        if any(lb["name"] == name for lb in available):
            raise ApiError(409, "Label already exists")
        label = {"id": self.sandbox.next_id("label"), "name": name, "color": data["color"],
                 "description": data.get("description")}
        owner["labels"].append(label)
        return 201, label, {}

    @route("POST", r"/api/v4/projects/([^/]+)/labels")
    def create_label(self, ref):
        user = self.me()
        project = self.sandbox.project(ref, user)
        self.sandbox.require(project, user, REPORTER)
        status, label, headers = self._new_label(project, self.sandbox.available_labels(project))
        return status, self.sandbox.label_json(label, project), headers

    @route("GET", r"/api/v4/projects/([^/]+)/labels/([^/]+)")
    def get_label(self, ref, name):
        project = self.sandbox.project(ref, self.me())
        label = self.sandbox.find_label(self._visible_labels(project), name)
        return 200, self.sandbox.label_json(label, project), {}

    def _own_project_label(self, ref: str, name: str | None) -> tuple[dict, dict]:
        user = self.me()
        project = self.sandbox.project(ref, user)
        self.sandbox.require(project, user, REPORTER)
        data = self.body()
        ref_ = name if name is not None else str(data.get("label_id") or data.get("name") or "")
        return project, self.sandbox.find_label(project["labels"], ref_)  # group labels: 404 here

    @route("PUT", r"/api/v4/projects/([^/]+)/labels/([^/]+)")
    def update_label(self, ref, name):
        project, label = self._own_project_label(ref, name)
        label = self.sandbox.rename_label(project, False, label, self.body())
        return 200, self.sandbox.label_json(label, project), {}

    @route("PUT", r"/api/v4/projects/([^/]+)/labels")
    def update_label_by_body(self, ref):  # the deprecated form: label_id or name in the body
        return self.update_label(ref, None)

    @route("DELETE", r"/api/v4/projects/([^/]+)/labels/([^/]+)")
    def delete_label(self, ref, name):
        project, label = self._own_project_label(ref, name)
        self.sandbox.remove_label(project, False, label)
        return 204, b"", {}

    @route("DELETE", r"/api/v4/projects/([^/]+)/labels")
    def delete_label_by_body(self, ref):
        return self.delete_label(ref, None)

    def _group_for_labels(self, ref: str, write: bool) -> dict:
        user = self.me()
        group = self.sandbox.group(ref, user)
        if write and self.sandbox.group_members_all(group).get(str(user["id"]), 0) < REPORTER:
            raise ApiError(403, "403 Forbidden")
        group.setdefault("labels", [])
        return group

    def _group_available(self, group: dict) -> list[dict]:
        return [lb for g in self.sandbox.group_chain(group["id"]) for lb in g.setdefault("labels", [])]

    @route("GET", r"/api/v4/groups/([^/]+)/labels")
    def list_group_labels(self, ref):
        group = self._group_for_labels(ref, write=False)
        return self.paginate([self.sandbox.label_json(lb) for lb in self._group_available(group)])

    @route("POST", r"/api/v4/groups/([^/]+)/labels")
    def create_group_label(self, ref):
        group = self._group_for_labels(ref, write=True)
        status, label, headers = self._new_label(group, self._group_available(group))
        return status, self.sandbox.label_json(label), headers

    @route("GET", r"/api/v4/groups/([^/]+)/labels/([^/]+)")
    def get_group_label(self, ref, name):
        group = self._group_for_labels(ref, write=False)
        return 200, self.sandbox.label_json(self.sandbox.find_label(self._group_available(group), name)), {}

    @route("PUT", r"/api/v4/groups/([^/]+)/labels/([^/]+)")
    def update_group_label(self, ref, name):
        group = self._group_for_labels(ref, write=True)
        label = self.sandbox.find_label(group["labels"], name)
        return 200, self.sandbox.label_json(self.sandbox.rename_label(group, True, label, self.body())), {}

    @route("DELETE", r"/api/v4/groups/([^/]+)/labels/([^/]+)")
    def delete_group_label(self, ref, name):
        group = self._group_for_labels(ref, write=True)
        self.sandbox.remove_label(group, True, self.sandbox.find_label(group["labels"], name))
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
        scope = q.get("scope")  # `scope`: the caller's own issues (IssuableFinder#by_scope), or those assigned
        if scope is not None and scope not in ("created_by_me", "created-by-me", "assigned_to_me", "assigned-to-me",
                                               "all"):
            raise ApiError(400, "scope does not have a valid value",
                           body={"error": "scope does not have a valid value"})
        if scope in ("created_by_me", "created-by-me"):
            issues = [i for i in issues if i["author_id"] == user["id"]]
        elif scope in ("assigned_to_me", "assigned-to-me"):
            issues = [i for i in issues if user["id"] in i["assignee_ids"]]
        reaction = q.get("my_reaction_emoji")  # the caller's own reactions: a name, None or Any (Awardable.awarded)
        if reaction:
            def mine(issue, name=None):
                return any(a["user_id"] == user["id"] and name in (None, a["name"]) for a in issue.get("awards", []))
            issues = [i for i in issues if (not mine(i) if reaction.lower() == "none" else
                                            mine(i) if reaction.lower() == "any" else mine(i, reaction))]
        iids = self.query_lists.get("iids")
        if iids:  # iids[]=1&iids[]=2 (Issues API: `iids`, Array[Integer])
            if not all(re.fullmatch(r"\d+", v) for v in iids):
                raise ApiError(400, "iids is invalid", body={"error": "iids is invalid"})
            issues = [i for i in issues if str(i["iid"]) in iids]
        assignee = q.get("assignee_id", "")
        if assignee.lower() == "none":  # `integer_none_any`: None, Any or an id
            issues = [i for i in issues if not i["assignee_ids"]]
        elif assignee.lower() == "any":
            issues = [i for i in issues if i["assignee_ids"]]
        elif assignee:
            wanted_id = self.integer("assignee_id")
            issues = [i for i in issues if wanted_id in i["assignee_ids"]]
        confidential = self.boolean("confidential")
        if confidential is not None:
            issues = [i for i in issues if i["confidential"] == confidential]
        if q.get("author_username"):
            issues = [i for i in issues if self.sandbox.user(i["author_id"])["username"] == q["author_username"]]
        for key, field in (("updated_after", "updated_at"), ("created_after", "created_at")):
            if q.get(key):
                try:  # Grape's `type: DateTime`: anything else is refused
                    since = _parse_time(q[key])
                except ValueError:
                    raise ApiError(400, f"{key} is invalid", body={"error": f"{key} is invalid"}) from None
                issues = [i for i in issues if _parse_time(i[field]) >= since]
        if q.get("search"):
            # GitLab's full-text search, rate-limited per user (search_rate_limit; 429 without Retry-After).
            if not self.sandbox.search_limit.allow(user["id"]):
                # `render_api_error!({ error: … }, 429)` (`lib/api/helpers/rate_limiter.rb`)
                raise ApiError(429, {"error": "This endpoint has been requested too many times. Try again later."})
            fields = [f.strip() for f in q.get("in", "title,description").split(",") if f.strip()]
            try:
                search.matches("", "", q["search"], fields, self.sandbox.search_rules)  # the query runs regardless
                issues = [i for i in issues if search.matches(i["title"], i["description"] or "", q["search"],
                                                              fields, self.sandbox.search_rules)]
            except search.QueryError:  # PostgreSQL refuses GitLab's tsquery: GitLab's answer is a bare 500
                raise ApiError(500, "500 Internal Server Error") from None
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

    @route("DELETE", r"/api/v4/projects/([^/]+)/issues/(\d+)")
    def delete_issue(self, ref, iid):
        """Deleting an issue takes `destroy_issue`: the Planner role or Owner (ProjectPolicy), never a
        Reporter, Developer or Maintainer; the issue's author may not either (IssuePolicy)."""
        user = self.me()
        project = self.sandbox.project(ref, user)
        issue = self.sandbox.issue(project, iid, user)
        if self.sandbox.access(project, user) not in (PLANNER, OWNER):
            raise ApiError(403, "403 Forbidden")
        project["issues"].remove(issue)
        project["deleted_issues"] = project.get("deleted_issues", 0) + 1  # iids are never given again
        return 204, b"", {}

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
        # Quick actions in a note run as its poster (`Notes::CreateService`); a note of commands only is
        # not saved, and the API answers 202 (`lib/api/notes.rb`).
        body = self.sandbox.apply_quick_actions(project, user, body, issue, new_issue=False)
        if not body.strip():
            return 202, {"commands_changes": {}, "summary": []}, {}
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
        note = self._note(issue, note_id)
        self._require_admin_note(project, note, user)
        body = self.body().get("body") or note["body"]
        # A note edit runs its quick actions too, as the editor (`Notes::UpdateService`).
        note["body"] = self.sandbox.apply_quick_actions(project, user, body, issue, new_issue=False) or note["body"]
        note["updated_at"] = _now()
        issue["updated_at"] = note["updated_at"]  # GitLab touches the issue when a note changes
        return 200, self.sandbox.note_json(issue, note), {}

    # --- award emoji (lib/api/award_emoji.rb, AwardEmojis::AddService, app/models/award_emoji.rb) ---------
    def _awardable(self, ref: str, iid: str, note_id: str | None) -> tuple[dict, dict, dict]:
        user = self.me()
        project = self.sandbox.project(ref, user)
        try:
            issue = self.sandbox.issue(project, iid, user)
        except ApiError:
            raise ApiError(404, "404 Award Emoji Not Found") from None  # can_read_awardable? fails: not_found!
        target = self._note(issue, note_id) if note_id else issue
        return user, issue, target

    def _award_json(self, target: dict, award: dict, note: bool) -> dict:
        return {"id": award["id"], "name": award["name"], "user": self.sandbox.user_json(self.sandbox.user(
            award["user_id"])), "created_at": award["created_at"], "updated_at": award["created_at"],
            "awardable_id": target["id"], "awardable_type": "Note" if note else "Issue", "url": None}

    @route("GET", r"/api/v4/projects/([^/]+)/issues/(\d+)(?:/notes/(\d+))?/award_emoji")
    def list_awards(self, ref, iid, note_id=None):
        _, _, target = self._awardable(ref, iid, note_id)
        status, chunk, headers = self.paginate(target.setdefault("awards", []))
        return status, [self._award_json(target, a, bool(note_id)) for a in chunk], headers

    @route("POST", r"/api/v4/projects/([^/]+)/issues/(\d+)(?:/notes/(\d+))?/award_emoji")
    def create_award(self, ref, iid, note_id=None):
        """One award per user, name and awardable: a second is refused with 404 and the validation's message
        (`validates :name, uniqueness: { scope: [:user, :awardable_type, :awardable_id] }`; the API answers
        `not_found!("Award Emoji #{message}")`). Unknown names are refused the same way."""
        user, _, target = self._awardable(ref, iid, note_id)
        name = str(self.body().get("name") or "")
        awards = target.setdefault("awards", [])
        if name not in EMOJI_NAMES:
            raise ApiError(404, "404 Award Emoji Name is not a valid emoji name Not Found")
        if any(a["user_id"] == user["id"] and a["name"] == name for a in awards):
            raise ApiError(404, "404 Award Emoji Name has already been taken Not Found")
        award = {"id": self.sandbox.next_id("note"), "name": name, "user_id": user["id"], "created_at": _now()}
        awards.append(award)
        return 201, self._award_json(target, award, bool(note_id)), {}

    @route("DELETE", r"/api/v4/projects/([^/]+)/issues/(\d+)(?:/notes/(\d+))?/award_emoji/(\d+)")
    def delete_award(self, ref, iid, note_id=None, award_id=None):
        """Only the award's own user (or an admin; the sandbox has none) may delete it: `unauthorized!
        unless award.user == current_user || current_user.admin?` — whatever the caller's role."""
        user, _, target = self._awardable(ref, iid, note_id)
        award = next((a for a in target.setdefault("awards", []) if str(a["id"]) == award_id), None)
        if award is None:
            raise ApiError(404, "404 Not found")
        if award["user_id"] != user["id"]:
            raise ApiError(401, "401 Unauthorized")
        target["awards"].remove(award)
        return 204, b"", {}

    @route("GET", r"/api/v4/projects/([^/]+)/issues/(\d+)/notes/(\d+)")
    def get_note(self, ref, iid, note_id):
        user = self.me()
        issue = self.sandbox.issue(self.sandbox.project(ref, user), iid, user)
        return 200, self.sandbox.note_json(issue, self._note(issue, note_id)), {}

    @route("DELETE", r"/api/v4/projects/([^/]+)/issues/(\d+)/notes/(\d+)")
    def delete_note(self, ref, iid, note_id):
        user = self.me()
        project = self.sandbox.project(ref, user)
        issue = self.sandbox.issue(project, iid, user)
        note = self._note(issue, note_id)
        self._require_admin_note(project, note, user)
        issue["notes"].remove(note)
        issue["updated_at"] = _now()
        return 204, b"", {}

    def _require_admin_note(self, project: dict, note: dict, user: dict) -> None:
        """Editing and deleting a comment need `admin_note` (`lib/api/helpers/notes_helpers.rb`): its author
        has it, and so do Maintainers and Owners for anyone's comment (ProjectPolicy; permissions doc "Edit
        comments (posted by any user)"); nobody has it on a system note (NotePolicy: `~editable`)."""
        if note["system"] or (note["author_id"] != user["id"] and self.sandbox.access(project, user) < MAINTAINER):
            raise ApiError(403, "403 Forbidden")

    def _note(self, issue: dict, note_id: str) -> dict:
        note = next((n for n in issue["notes"] if str(n["id"]) == note_id), None)
        if note is None:
            raise ApiError(404, "404 Note Not Found")
        return note

    @route("GET", r"/api/v4/(?:version|metadata)")
    def version(self):
        """GET /metadata and the deprecated /version answer the same (`lib/api/metadata.rb`): v1 is a GitLab
        before 16.6, v2 and v3 newer. `-ee` and `enterprise: true` say the EE codebase runs, not that a paid
        license is installed: EE without a license behaves as Free."""
        self.me()
        number = {"v1": "16.5.2", "v2": "17.6.1", "v3": "18.2.1"}[self.sandbox.search_rules]
        ee = self.sandbox.enterprise
        return 200, {"version": number + ("-ee" if ee else ""), "revision": "sandbox",
                     "kas": {"enabled": False, "externalUrl": None, "version": None}, "enterprise": ee}, {}

    @route("GET", r"/api/v4/license")
    def license(self):
        """EE only, and administrators only (`ee/lib/api/license.rb`: `authenticated_as_admin!`); the sandbox
        has no administrator, so the tier cannot be read through it, as with any non-admin token."""
        self.me()
        if not self.sandbox.enterprise:
            raise ApiError(404, "404 Not Found", body={"error": "404 Not Found"})  # no such route on CE
        raise ApiError(403, "403 Forbidden")

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
        owner is blocked or removed). Listing needs `read_pipeline_schedule`, which ProjectPolicy gives to
        `reporter_access` (lib/api/ci/pipeline_schedules.rb)."""
        user = self.me()
        project = self.sandbox.project(ref, user)
        self.sandbox.require(project, user, REPORTER)
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
                   "label": self.sandbox.label_event_json(e), "action": e["action"]}
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

    def _repo_file(self, ref: str, path: str) -> tuple[dict, dict]:
        user = self.me()
        project = self.sandbox.project(ref, user)
        if project["visibility"] != "public":
            self.sandbox.require(project, user, REPORTER)  # Guests cannot read a private project's code
        entry = project["files"].get(path)
        if entry is None:
            raise ApiError(404, "404 File Not Found")
        return project, entry

    @route("GET", r"/api/v4/projects/([^/]+)/repository/files/([^/]+)")
    def get_file(self, ref, path):
        project, entry = self._repo_file(ref, path)
        content = entry["content"].encode()
        return 200, {"file_name": path.rsplit("/", 1)[-1], "file_path": path, "size": len(content),
                     "encoding": "base64", "content": base64.b64encode(content).decode(),
                     "ref": self.query.get("ref", project["default_branch"])}, {}

    @route("GET", r"/api/v4/projects/([^/]+)/repository/files/([^/]+)/raw")
    def get_file_raw(self, ref, path):
        _, entry = self._repo_file(ref, path)
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
        return 200, {"total": len(log), "by_method": by_method, "requests": log[since:],
                     "zendesk": len(self.sandbox.zendesk_requests), "held": self.sandbox.held.is_set()}, {}

    @route("POST", r"/sandbox/hold/(\d+)")
    def hold(self, n):
        """Leave the n-th API call from now unanswered for ever (for a test that kills the sandbox mid-run)."""
        self.sandbox.hold_at, _ = int(n), self.sandbox.held.clear()
        return 200, {"hold_at": int(n)}, {}

    @route("POST", r"/sandbox/smtp/(up|down)")
    def smtp_switch(self, state):
        self.server.smtp_switch(state == "up")  # type: ignore[attr-defined]
        return 200, {"smtp": state}, {}

    @route("POST", r"/sandbox/smtp/refuse")
    def smtp_refuse(self):
        """{"address": ..., "reply": "550 5.1.1 ..."}: the mail server refuses that recipient; {} refuses none."""
        data = self.body()
        refused = self.server.smtp_refused  # type: ignore[attr-defined]
        if data.get("address"):
            refused[data["address"]] = data.get("reply") or "550 5.1.1 <address>: Recipient address rejected"
        else:
            refused.clear()
        return 200, {"refused": sorted(refused)}, {}

    @route("POST", r"/sandbox/projects/([^/]+)/visibility/(private|internal|public)")
    def set_visibility(self, ref, visibility):
        project = next(p for p in self.sandbox.state["projects"] if ref in (str(p["id"]), p["path_with_namespace"]))
        project["visibility"] = visibility
        return 200, self.sandbox.project_json(project), {}


def _uid(item: tuple[str, int]) -> int:
    return int(item[0])


def _params(parsed: dict[str, list[str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Rack's reading of a query or form: `name[]=a&name[]=b` is the array `name`; a repeated plain name
    keeps its last value. Returns the scalar view and the array view."""
    scalars: dict[str, str] = {}
    lists: dict[str, list[str]] = {}
    for key, values in parsed.items():
        if key.endswith("[]"):
            lists[key[:-2]] = values
        else:
            scalars[key] = values[-1]
            lists.setdefault(key, [values[-1]])
    return scalars, lists


def _form(parsed: dict[str, list[str]]) -> dict[str, Any]:
    """A form body as Grape sees it: arrays (`assignee_ids[]=1&assignee_ids[]=4`) become lists."""
    scalars, lists = _params(parsed)
    return {**scalars, **{k: v for k, v in lists.items() if k + "[]" in parsed}}


def _parse_time(text: str) -> datetime:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)  # Grape's DateTime.parse: no zone is UTC
