"""The Zendesk adapter: the facts a request is checked against, and the internal note left on the ticket.

Thin, over `requests` (zenpy builds https://{subdomain}.zendesk.com addresses and cannot be pointed at a
loopback sandbox cleanly; these are seven calls). Zendesk facts it follows (Ticketing API v2): bodies
wrap the object; API-token auth is Basic `<email>/token`; 404 is a missing ticket, 401/403 a bad token or
a user who may not see it; 429 comes with Retry-After; files reach a comment through an upload token.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import requests

from .config import ZendeskConfig
from .errors import BotError

if TYPE_CHECKING:
    from .policy import TicketFacts

MAX_RETRY_AFTER = 30  # seconds a run waits for Zendesk's rate limit before leaving the request for later


class ZendeskError(BotError):
    """`config`: the token or user is wrong (every call would fail); `transient`: try again at a later run."""

    def __init__(self, message: str, *, transient: bool = False, config: bool = False, status: int | None = None):
        super().__init__(message)
        self.transient, self.config, self.status = transient, config, status


class ZendeskClient:
    def __init__(self, config: ZendeskConfig, token: str | None, session: requests.Session | None = None):
        if not token:
            raise ZendeskError("zendesk.enabled is true but ZENDESK_API_TOKEN is not set: make an API token in "
                               "Zendesk (Admin Center > Apps and integrations > Zendesk API) for "
                               f"{config.email or 'the API user'}", config=True)
        self.config = config
        self.session = session or requests.Session()
        self.session.auth = (f"{config.email}/token", token)
        self.calls = 0

    # --- reads ----------------------------------------------------------------------------------------

    def me(self) -> dict[str, Any]:
        return self._call("GET", "/api/v2/users/me", doing="read the API user")["user"]

    def ticket(self, ticket_id: int) -> TicketFacts | None:
        """The facts a request is checked against; None when the ticket does not exist."""
        from .policy import TicketFacts  # only when a request is judged: an idle run does not pay for it

        data = self._call("GET", f"/api/v2/tickets/{ticket_id}", doing=f"read ticket {ticket_id}", absent=404)
        if data is None:
            return None
        t = data["ticket"]
        people = [t.get("requester_id"), *(t.get("email_cc_ids") or ()), *(t.get("collaborator_ids") or ())]
        ids = ",".join(str(i) for i in dict.fromkeys(p for p in people if p))
        users = {u["id"]: u for u in self._call("GET", f"/api/v2/users/show_many?ids={ids}",
                                                doing="read the ticket's people")["users"]} if ids else {}
        requester = users.get(t.get("requester_id")) or {}
        organization = None
        if t.get("organization_id"):
            org = self._call("GET", f"/api/v2/organizations/{t['organization_id']}",
                             doing="read the ticket's organization", absent=404)
            organization = org["organization"]["name"] if org else None
        ccs = tuple(users[i]["email"] for i in dict.fromkeys([*(t.get("email_cc_ids") or ()),
                                                             *(t.get("collaborator_ids") or ())])
                    if i in users and users[i].get("email"))
        attachments = sum(len(c.get("attachments") or ()) for c in self.comments(ticket_id))
        return TicketFacts(int(t["id"]), str(t.get("status") or ""), requester.get("email") or "",
                           requester.get("name") or "", organization, ccs, attachments)

    def comments(self, ticket_id: int) -> list[dict[str, Any]]:
        out, path = [], f"/api/v2/tickets/{ticket_id}/comments"
        while path:
            page = self._call("GET", path, doing=f"read the comments of ticket {ticket_id}")
            out += page.get("comments") or []
            nxt = page.get("next_page")
            path = nxt.split(self.config.url, 1)[-1] if nxt else None
        return out

    # --- writes ---------------------------------------------------------------------------------------

    def add_internal_note(self, ticket_id: int, body: str, file_name: str, data: bytes) -> None:
        upload = self._call("POST", f"/api/v2/uploads?filename={file_name}", doing=f"upload {file_name}",
                            data=data, headers={"Content-Type": "application/octet-stream"})
        token = upload["upload"]["token"]
        self._call("PUT", f"/api/v2/tickets/{ticket_id}", doing=f"add an internal note to ticket {ticket_id}",
                   json={"ticket": {"comment": {"body": body, "public": False, "uploads": [token]}}})

    def add_tag(self, ticket_id: int, tag: str) -> None:
        self._call("PUT", f"/api/v2/tickets/{ticket_id}/tags", doing=f"tag ticket {ticket_id}", json={"tags": [tag]})

    # --- plumbing -------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, doing: str, absent: int | None = None, **kwargs: Any):
        where = self.config.url
        for attempt in range(3):
            self.calls += 1
            try:
                response = self.session.request(method, where + path, timeout=self.config.timeout_seconds, **kwargs)
            except requests.RequestException as exc:
                raise ZendeskError(f"could not {doing}: Zendesk at {where} is unreachable ({type(exc).__name__})",
                                   transient=True) from None
            if response.status_code == 429 and attempt < 2:
                wait = response.headers.get("Retry-After", "")
                time.sleep(min(float(wait) if wait.replace(".", "", 1).isdigit() else 5, MAX_RETRY_AFTER))
                continue
            break
        code = response.status_code
        if absent is not None and code == absent:
            return None
        if code in (401, 403):
            raise ZendeskError(f"could not {doing}: Zendesk refused the API user {self.config.email} ({code}); check "
                               "zendesk.email and ZENDESK_API_TOKEN, and that the user is an agent", config=True,
                               status=code)
        if code >= 400:
            detail = response.text[:200]
            raise ZendeskError(f"could not {doing}: Zendesk answered {code}: {detail}",
                               transient=code >= 500 or code == 429, status=code)
        return response.json() if response.content else {}
