"""The sandbox's Zendesk: the Ticketing API v2 subset the bot uses, and the calls a test needs to seed data.

Zendesk facts mirrored (developer docs, reference/zendesk-notes.md): bodies wrap the object
({"ticket": ...}); API-token auth is HTTP Basic `<agent email>/token` with the token as the password, 401
otherwise; a missing record is 404 {"error": "RecordNotFound"}; a closed ticket cannot be updated (422);
files reach a comment only through an upload token; creating a ticket with an unknown requester email
creates an end user; tags PUT adds tags. `POST /sandbox/zendesk/down` and `/up` make it answer 503 and
recover (`/sandbox/zendesk/down?writes=1`: reads work, writes answer 503, as in a read-only
maintenance). Seeded: the agent bot@example.com (token `zendesk-token`) and the organization ACME Corp.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .routing import route
from .store import ApiError, _now

AGENT_EMAIL, TOKEN = "bot@example.com", "zendesk-token"


def seed() -> dict[str, Any]:
    return {"users": [{"id": 1, "name": "License Bot", "email": AGENT_EMAIL, "role": "agent", "organization_id": None}],
            "organizations": [{"id": 1, "name": "ACME Corp"}], "tickets": [], "comments": {}, "uploads": {},
            "next_id": {"user": 2, "ticket": 512000, "comment": 1, "attachment": 1}, "down": False}


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
        return state

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
        return ticket

    def _add_comment(self, zd: dict, ticket: dict, comment: dict, author_id: int) -> None:
        attachments = []
        for token in comment.get("uploads") or ():
            upload = zd["uploads"].pop(token, None)
            if upload:
                attachments.append({"id": self._next(zd, "attachment"), "file_name": upload["file_name"],
                                    "content_type": "application/octet-stream", "size": upload["size"],
                                    "content_url": f"{self.sandbox.base_url}/attachments/{upload['token']}"})
        zd["comments"].setdefault(str(ticket["id"]), []).append({
            "id": self._next(zd, "comment"), "type": "Comment", "author_id": author_id,
            "body": comment.get("body") or "", "html_body": f"<p>{comment.get('body') or ''}</p>",
            "public": comment.get("public", True), "attachments": attachments, "created_at": _now()})
        ticket["updated_at"] = _now()

    def _json(self) -> dict:
        return json.loads(self.raw_body() or b"{}")  # type: ignore[attr-defined]

    # --- routes -----------------------------------------------------------------------------------------

    @route("POST", r"/api/v2/uploads")
    def zd_upload(self):
        zd = self._zd()
        name = (parse_qs(urlsplit(self.path).query).get("filename") or ["file"])[-1]
        data = self.raw_body()  # type: ignore[attr-defined]
        token = secrets.token_hex(12)
        zd["uploads"][token] = {"token": token, "file_name": name, "size": len(data),
                                "data": base64.b64encode(data).decode()}
        return 201, {"upload": {"token": token, "attachment": {"file_name": name, "size": len(data)}}}, {}

    @route("POST", r"/api/v2/tickets")
    def zd_create_ticket(self):
        zd = self._zd()
        data = self._json().get("ticket") or {}
        who = data.get("requester") or {}
        requester = self._user_by_email(zd, who.get("email") or "", who.get("name"), data.get("organization_id"))
        ccs = [self._user_by_email(zd, cc["user_email"])["id"] for cc in data.get("email_ccs") or ()]
        ticket = {"id": self._next(zd, "ticket"), "subject": data.get("subject") or "", "status": data.get("status")
                  or "new", "requester_id": requester["id"], "submitter_id": requester["id"],
                  "organization_id": requester.get("organization_id"), "email_cc_ids": ccs,
                  "collaborator_ids": list(ccs), "follower_ids": [], "tags": list(data.get("tags") or ()),
                  "created_at": _now(), "updated_at": _now()}
        zd["tickets"].append(ticket)
        self._add_comment(zd, ticket, {**(data.get("comment") or {}), "public": True}, requester["id"])
        return 201, {"ticket": ticket}, {}

    @route("GET", r"/api/v2/tickets/(\d+)")
    def zd_ticket(self, ticket_id):
        return 200, {"ticket": self._ticket(self._zd(), ticket_id)}, {}

    @route("PUT", r"/api/v2/tickets/(\d+)")
    def zd_update_ticket(self, ticket_id):
        zd = self._zd()
        ticket = self._ticket(zd, ticket_id)
        if ticket["status"] == "closed":
            raise ApiError(422, "RecordInvalid", {"error": "RecordInvalid", "description": "Record validation errors",
                                                  "details": {"status": [{"description": "Status: closed prevents "
                                                                                         "ticket update"}]}})
        data = self._json().get("ticket") or {}
        if data.get("status"):
            ticket["status"] = data["status"]
        if data.get("comment"):
            self._add_comment(zd, ticket, data["comment"], 1)
        ticket["updated_at"] = _now()
        return 200, {"ticket": ticket}, {}

    @route("GET", r"/api/v2/tickets/(\d+)/comments")
    def zd_comments(self, ticket_id):
        zd = self._zd()
        self._ticket(zd, ticket_id)
        comments = zd["comments"].get(ticket_id, [])
        return 200, {"comments": comments, "next_page": None, "previous_page": None, "count": len(comments)}, {}

    @route("GET", r"/api/v2/tickets/(\d+)/tags")
    def zd_tags(self, ticket_id):
        return 200, {"tags": self._ticket(self._zd(), ticket_id)["tags"]}, {}

    @route("PUT", r"/api/v2/tickets/(\d+)/tags")
    def zd_add_tags(self, ticket_id):
        zd = self._zd()
        ticket = self._ticket(zd, ticket_id)
        ticket["tags"] += [t for t in self._json().get("tags") or () if t not in ticket["tags"]]
        return 200, {"tags": ticket["tags"]}, {}

    @route("GET", r"/api/v2/users/me")
    def zd_me(self):
        return 200, {"user": self._user(self._zd(), 1)}, {}

    @route("GET", r"/api/v2/users/show_many")
    def zd_users(self):
        zd = self._zd()
        ids = {int(i) for i in (parse_qs(urlsplit(self.path).query).get("ids") or [""])[-1].split(",") if i}
        return 200, {"users": [u for u in zd["users"] if u["id"] in ids]}, {}

    @route("GET", r"/api/v2/users/(\d+)")
    def zd_user(self, user_id):
        return 200, {"user": self._user(self._zd(), int(user_id))}, {}

    @route("GET", r"/api/v2/organizations/(\d+)")
    def zd_organization(self, org_id):
        org = next((o for o in self._zd()["organizations"] if str(o["id"]) == org_id), None)
        if org is None:
            raise _not_found()
        return 200, {"organization": org}, {}

    @route("POST", r"/sandbox/zendesk/(up|down)")
    def zd_switch(self, state):
        writes_only = parse_qs(urlsplit(self.path).query).get("writes") == ["1"]
        self.sandbox.state.setdefault("zendesk", seed())["down"] = (
            False if state == "up" else "writes" if writes_only else "all")
        return 200, {"zendesk": state}, {}
