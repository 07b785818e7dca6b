"""The sandbox's Zendesk: the Ticketing API v2 subset the bot uses, and the calls a test needs to seed data.

Zendesk facts mirrored (developer docs, reference/zendesk-notes.md): bodies wrap the object
({"ticket": ...}); API-token auth is HTTP Basic `<agent email>/token` with the token as the password, 401
otherwise; a missing record is 404 {"error": "RecordNotFound"}; a closed ticket cannot be updated (422);
files reach a comment only through an upload token; creating a ticket with an unknown requester email
creates an end user; tags PUT adds tags. `POST /sandbox/zendesk/down` and `/up` make it answer 503 and
recover (`/sandbox/zendesk/down?writes=1`: reads work, writes answer 503, as in a read-only
maintenance). Seeded: the agent bot@example.com (token `zendesk-token`) and the organization ACME Corp.

What a real account adds (tests/test_zendesk.py cites where each is documented): every path also answers with
`.json`; comments page 100 at a time by offset (`next_page`) or, with `page[size]`, by cursor (`meta.has_more`,
`links.next`), each next address absolute and ending in `.json`; a pasted screenshot is an `inline` attachment,
left out unless `include_inline_images=true`; CCs (`email_cc_ids`) differ from followers (`follower_ids`, agents),
and the older `collaborator_ids` holds both; a ticket in a group the API user is not in answers 403; a light
agent (`role_type` 1) may add private comments only (tags and public comments: 403); a closed or merged
(`closed_by_merge`) ticket refuses every change with 422; an account can refuse file types on upload.
Test switches: `POST /sandbox/zendesk/agent` changes the API user (role, role_type, group_ids),
`/sandbox/zendesk/settings` the account (blocked_extensions), `/sandbox/zendesk/fail` makes the next N
matching calls answer a status (or time out), and `/sandbox/zendesk/tickets/N/comments` adds a customer's reply.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .routing import route
from .store import ApiError, _now

AGENT_EMAIL, TOKEN = "bot@example.com", "zendesk-token"


def seed() -> dict[str, Any]:
    return {"users": [{"id": 1, "name": "License Bot", "email": AGENT_EMAIL, "role": "agent", "role_type": None,
                       "organization_id": None, "group_ids": None}],
            "organizations": [{"id": 1, "name": "ACME Corp"}], "tickets": [], "comments": {}, "uploads": {},
            "next_id": {"user": 2, "ticket": 512000, "comment": 1, "attachment": 1}, "down": False,
            "faults": [], "blocked_extensions": []}


J = r"(?:\.json)?"  # Zendesk answers a path with or without `.json`


def _forbidden() -> ApiError:
    return ApiError(403, "Forbidden", {"error": "Forbidden", "description": "You do not have access to this page."})


def _closed() -> ApiError:
    return ApiError(422, "RecordInvalid", {"error": "RecordInvalid", "description": "Record validation errors",
                                           "details": {"status": [{"description": "Status: closed prevents ticket "
                                                                                  "update"}]}})


def _not_found() -> ApiError:
    return ApiError(404, "RecordNotFound", {"error": "RecordNotFound", "description": "Not found"})


class ZendeskRoutes:
    """Mixed into the HTTP handler: every route here answers as Zendesk does."""

    sandbox: Any
    headers: Any
    path: str

    # --- helpers ----------------------------------------------------------------------------------------

    def _zd(self) -> dict:
        state = self.sandbox.state.setdefault("zendesk", seed())
        if state.get("down") == "all" or (state.get("down") == "writes" and self.command != "GET"):
            raise ApiError(503, "Service Unavailable", {"error": "Service Unavailable"})
        auth = self.headers.get("Authorization") or ""
        try:
            user, _, password = base64.b64decode(auth.removeprefix("Basic ")).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            user = password = ""
        if not auth.startswith("Basic ") or (user, password) != (f"{AGENT_EMAIL}/token", TOKEN):
            raise ApiError(401, "Couldn't authenticate you", {"error": "Couldn't authenticate you"})
        self.sandbox.zendesk_requests.append((self.command, self.path))
        self._fault(state)
        return state

    def _fault(self, zd: dict) -> None:
        """A test's injected failure for this call: a status (with Retry-After), or no answer in time."""
        for fault in zd.get("faults") or ():
            if fault["times"] > 0 and fault["method"] == self.command and re.search(fault["path"], self.path):
                fault["times"] -= 1
                if fault["status"] == "timeout":  # no answer in time, and nothing done
                    time.sleep(fault.get("seconds", 2))
                    raise ApiError(504, "timeout", {"error": "Gateway Timeout"})
                error = ApiError(fault["status"], "injected", {"error": f"injected {fault['status']}"})
                error.headers = {"Retry-After": str(fault["retry_after"])} if "retry_after" in fault else {}
                raise error

    def _me(self, zd: dict) -> dict:
        return self._user(zd, 1)

    def _visible(self, zd: dict, ticket: dict) -> dict:
        """403 for a ticket in a group the API user is not in (an agent restricted to some groups)."""
        groups = self._me(zd).get("group_ids")
        if groups is not None and ticket.get("group_id") not in groups:
            raise _forbidden()
        return ticket

    def _next(self, zd: dict, kind: str) -> int:
        zd["next_id"][kind] += 1
        return zd["next_id"][kind] - 1

    def _user(self, zd: dict, user_id: int) -> dict:
        user = next((u for u in zd["users"] if u["id"] == user_id), None)
        if user is None:
            raise _not_found()
        return user

    def _user_by_email(self, zd: dict, email: str, name: str | None = None, organization_id: int | None = None) -> dict:
        user = next((u for u in zd["users"] if u["email"].lower() == email.lower()), None)
        if user is None:  # an unknown requester email creates an end user
            user = {"id": self._next(zd, "user"), "name": name or email.split("@")[0], "email": email,
                    "role": "end-user", "organization_id": organization_id}
            zd["users"].append(user)
        return user

    def _ticket(self, zd: dict, ticket_id: str) -> dict:
        ticket = next((t for t in zd["tickets"] if str(t["id"]) == ticket_id), None)
        if ticket is None:
            raise _not_found()
        return self._visible(zd, ticket)

    def _add_comment(self, zd: dict, ticket: dict, comment: dict, author_id: int) -> None:
        attachments = []
        for inline, token in [*((False, t) for t in comment.get("uploads") or ()),
                              *((True, t) for t in comment.get("inline_uploads") or ())]:
            upload = zd["uploads"].pop(token, None)
            if upload:
                attachments.append({"id": self._next(zd, "attachment"), "file_name": upload["file_name"],
                                    "content_type": "application/octet-stream", "size": upload["size"],
                                    "inline": inline,
                                    "content_url": f"{self.sandbox.base_url}/attachments/{upload['token']}"})
        zd["comments"].setdefault(str(ticket["id"]), []).append({
            "id": self._next(zd, "comment"), "type": "Comment", "author_id": author_id,
            "body": comment.get("body") or "", "html_body": f"<p>{comment.get('body') or ''}</p>",
            "public": comment.get("public", True), "attachments": attachments, "created_at": _now()})
        ticket["updated_at"] = _now()

    def _json(self) -> dict:
        return json.loads(self.raw_body() or b"{}")  # type: ignore[attr-defined]

    # --- routes -----------------------------------------------------------------------------------------

    @route("POST", r"/api/v2/uploads" + J)
    def zd_upload(self):
        zd = self._zd()
        name = (parse_qs(urlsplit(self.path).query).get("filename") or ["file"])[-1]
        # Read even when refused: an unread body is taken for the next request on the keep-alive connection.
        data = self.raw_body()  # type: ignore[attr-defined]
        if any(name.lower().endswith(ext.lower()) for ext in zd.get("blocked_extensions") or ()):
            raise ApiError(422, "RecordInvalid", {"error": "RecordInvalid", "description": "Record validation "
                                                  "errors", "details": {"base": [{"description": "File type not "
                                                                                  "allowed"}]}})
        token = secrets.token_hex(12)
        zd["uploads"][token] = {"token": token, "file_name": name, "size": len(data),
                                "data": base64.b64encode(data).decode()}
        return 201, {"upload": {"token": token, "attachment": {"file_name": name, "size": len(data)}}}, {}

    @route("POST", r"/api/v2/tickets" + J)
    def zd_create_ticket(self):
        zd = self._zd()
        data = self._json().get("ticket") or {}
        who = data.get("requester") or {}
        requester = self._user_by_email(zd, who.get("email") or "", who.get("name"), data.get("organization_id"))
        ccs = [self._user_by_email(zd, cc["user_email"])["id"] for cc in data.get("email_ccs") or ()]
        followers = [self._user_by_email(zd, f["user_email"])["id"] for f in data.get("followers") or ()]
        ticket = {"id": self._next(zd, "ticket"), "subject": data.get("subject") or "", "status": data.get("status")
                  or "new", "requester_id": requester["id"], "submitter_id": requester["id"],
                  "organization_id": requester.get("organization_id"), "email_cc_ids": ccs,
                  "collaborator_ids": [*ccs, *followers], "follower_ids": followers,
                  "group_id": data.get("group_id"), "tags": list(data.get("tags") or ()),
                  "created_at": _now(), "updated_at": _now()}
        if data.get("legacy_ccs"):  # an account without CCs and followers: only collaborator_ids
            del ticket["email_cc_ids"], ticket["follower_ids"]
        zd["tickets"].append(ticket)
        self._add_comment(zd, ticket, {**(data.get("comment") or {}), "public": True}, requester["id"])
        return 201, {"ticket": ticket}, {}

    @route("GET", r"/api/v2/tickets/(\d+)" + J)
    def zd_ticket(self, ticket_id):
        return 200, {"ticket": self._ticket(self._zd(), ticket_id)}, {}

    @route("PUT", r"/api/v2/tickets/(\d+)" + J)
    def zd_update_ticket(self, ticket_id):
        zd = self._zd()
        ticket = self._ticket(zd, ticket_id)
        if ticket["status"] == "closed":
            raise _closed()
        data = self._json().get("ticket") or {}
        if self._me(zd).get("role_type") == 1 and (set(data) - {"comment"} or (data.get("comment") or {}).get(
                "public", True)):
            raise _forbidden()  # a light agent: private comments only
        if data.get("status"):
            ticket["status"] = data["status"]
        if data.get("comment"):
            self._add_comment(zd, ticket, data["comment"], 1)
        ticket["updated_at"] = _now()
        return 200, {"ticket": ticket}, {}

    @route("GET", r"/api/v2/tickets/(\d+)/comments" + J)
    def zd_comments(self, ticket_id):
        zd = self._zd()
        self._ticket(zd, ticket_id)
        comments = zd["comments"].get(ticket_id, [])
        if self.query.get("include_inline_images") != "true":  # type: ignore[attr-defined]
            comments = [{**c, "attachments": [a for a in c["attachments"] if not a.get("inline")]} for c in comments]
        base = f"{self.sandbox.base_url}/api/v2/tickets/{ticket_id}/comments.json"
        inline = "&include_inline_images=true" if "include_inline_images" in self.query else ""  # type: ignore
        if "page[size]" in self.query:  # type: ignore[attr-defined] - cursor pagination
            size, start = min(int(self.query["page[size]"]), 100), int(self.query.get("page[after]") or 0)  # type: ignore
            page, more = comments[start:start + size], start + size < len(comments)
            return 200, {"comments": page, "meta": {"has_more": more, "after_cursor": str(start + size) if more
                                                    else None, "before_cursor": str(start)},
                         "links": {"next": f"{base}?page[size]={size}&page[after]={start + size}{inline}" if more
                                   else None, "prev": None}}, {}
        per_page, number = 100, int(self.query.get("page") or 1)  # type: ignore[attr-defined] - offset pagination
        page = comments[(number - 1) * per_page:number * per_page]
        more = number * per_page < len(comments)
        return 200, {"comments": page, "next_page": f"{base}?page={number + 1}{inline}" if more else None,
                     "previous_page": None, "count": len(comments)}, {}

    @route("GET", r"/api/v2/tickets/(\d+)/tags" + J)
    def zd_tags(self, ticket_id):
        return 200, {"tags": self._ticket(self._zd(), ticket_id)["tags"]}, {}

    @route("PUT", r"/api/v2/tickets/(\d+)/tags" + J)
    def zd_add_tags(self, ticket_id):
        zd = self._zd()
        ticket = self._ticket(zd, ticket_id)
        if ticket["status"] == "closed":
            raise _closed()
        if self._me(zd).get("role_type") == 1:
            raise _forbidden()  # a light agent may not change a ticket's tags
        ticket["tags"] += [t for t in self._json().get("tags") or () if t not in ticket["tags"]]
        return 200, {"tags": ticket["tags"]}, {}

    @route("GET", r"/api/v2/users/me" + J)
    def zd_me(self):
        return 200, {"user": self._user(self._zd(), 1)}, {}

    @route("GET", r"/api/v2/users/show_many" + J)
    def zd_users(self):
        zd = self._zd()
        ids = {int(i) for i in (parse_qs(urlsplit(self.path).query).get("ids") or [""])[-1].split(",") if i}
        return 200, {"users": [u for u in zd["users"] if u["id"] in ids]}, {}

    @route("GET", r"/api/v2/users/(\d+)" + J)
    def zd_user(self, user_id):
        return 200, {"user": self._user(self._zd(), int(user_id))}, {}

    @route("GET", r"/api/v2/organizations/(\d+)" + J)
    def zd_organization(self, org_id):
        org = next((o for o in self._zd()["organizations"] if str(o["id"]) == org_id), None)
        if org is None:
            raise _not_found()
        return 200, {"organization": org}, {}

    @route("POST", r"/sandbox/zendesk/agent")
    def zd_set_agent(self):
        user = self._user(self.sandbox.state.setdefault("zendesk", seed()), 1)
        user.update({k: v for k, v in self._json().items() if k in ("role", "role_type", "group_ids", "chat_only")})
        return 200, {"user": user}, {}

    @route("POST", r"/sandbox/zendesk/settings")
    def zd_settings(self):
        zd = self.sandbox.state.setdefault("zendesk", seed())
        zd["blocked_extensions"] = list(self._json().get("blocked_extensions") or ())
        return 200, {"blocked_extensions": zd["blocked_extensions"]}, {}

    @route("POST", r"/sandbox/zendesk/fail")
    def zd_fail(self):
        """{"method", "path" (a regex), "status" (a number or "timeout"), "times", "retry_after"?}; [] clears."""
        zd = self.sandbox.state.setdefault("zendesk", seed())
        body = self._json()
        zd["faults"] = [*zd.get("faults", []), body] if body else []
        return 200, {"faults": zd["faults"]}, {}

    @route("POST", r"/sandbox/zendesk/tickets/(\d+)/comments")
    def zd_reply(self, ticket_id):
        """A reply on the ticket as its requester wrote it, screenshots pasted inline or attached."""
        zd = self.sandbox.state.setdefault("zendesk", seed())
        ticket = next(t for t in zd["tickets"] if str(t["id"]) == ticket_id)
        self._add_comment(zd, ticket, {**self._json(), "public": True}, ticket["requester_id"])
        return 201, {"count": len(zd["comments"][ticket_id])}, {}

    @route("POST", r"/sandbox/zendesk/(up|down)")
    def zd_switch(self, state):
        writes_only = parse_qs(urlsplit(self.path).query).get("writes") == ["1"]
        self.sandbox.state.setdefault("zendesk", seed())["down"] = (
            False if state == "up" else "writes" if writes_only else "all")
        return 200, {"zendesk": state}, {}
