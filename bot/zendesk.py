"""The Zendesk adapter: the facts a request is checked against, and the internal note left on the ticket.

Thin, over `requests` (zenpy builds https://{subdomain}.zendesk.com addresses and cannot be pointed at a
loopback sandbox cleanly; these are a handful of calls). Zendesk facts it follows (Ticketing API v2, checked in
tests/test_zendesk.py): bodies wrap the object; API-token auth is Basic `<email>/token`; 401 is a bad credential;
403 on one ticket is that ticket (an agent restricted to some groups or brands), not the token; 404 is a missing
ticket; 429 and 503 come with Retry-After; lists page by cursor (`page[size]`, `meta.has_more`, `links.next`) or
offset (`next_page`), each next address absolute and usually ending in `.json`; inline images are left out of a
comment's attachments unless asked for; files reach a comment through an upload token.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

from . import meaning
from .config import ZendeskConfig
from .errors import BotError

if TYPE_CHECKING:
    from .policy import TicketFacts

PAGE_SIZE = 100  # the most a comments page holds
RETRY_PAUSE = 1.0  # seconds before asking again after a 5xx or timeout without Retry-After
RATE_LIMIT_PAUSE = 5.0  # seconds after a 429 that names no Retry-After
MAX_TRIES = 10  # tries of one call, however often Zendesk says Retry-After

# What a failed call means (ZendeskError.kind): each has its own handling.
CONFIG = "config"        # the token, user or address is wrong: every call would fail; the run stops
TICKET = "ticket"        # this ticket may not be read or changed by the API user, or does not exist
CLOSED = "closed"        # the ticket is closed (or merged): Zendesk allows no update; a follow-up ticket is the way
FILE_REFUSED = "file"    # the account refuses this attachment's file type
TRANSIENT = "transient"  # Zendesk is down, slow or rate-limiting: try again (later in the run, or next run)
OTHER = "other"


class ZendeskError(BotError):
    """A failed call, classified by what it means (`kind`). `config`: the run stops; `transient`: try again."""

    def __init__(self, message: str, *, kind: str = OTHER, status: int | None = None,
                 transient: bool = False, config: bool = False):
        super().__init__(message)
        kind = CONFIG if config else TRANSIENT if transient else kind
        self.kind, self.status = kind, status
        self.transient, self.config = kind == TRANSIENT, kind == CONFIG


def customer_ticket_url(zendesk_url: str, ticket_id: int, help_center_url: str | None = None) -> str:
    """The page a customer opens to see their ticket: the help center's request page, never `/agent/tickets/N`
    (only agents can open that). `help_center_url` is the brand's help-center address when it is not the
    Zendesk account's own host."""
    base = (help_center_url or zendesk_url).rstrip("/")
    return f"{base}/hc/requests/{int(ticket_id)}"


def unusable_role(user: dict[str, Any]) -> str | None:
    """Why the API user cannot do the bot's work (read tickets, add a private comment with a file, add a tag),
    or None. Zendesk's `role` is end-user/agent/admin; `role_type` narrows an agent: 1 light agent (private
    comments only, no ticket changes such as tags), 2 chat-only agent, 3 Contributor (no comments at all);
    `chat_only` agents have no Support seat."""
    role, role_type = user.get("role"), user.get("role_type")
    if isinstance(role_type, str) and role_type.isdigit():  # some accounts answer it as a string ("4")
        role_type = int(role_type)
    if role not in ("agent", "admin"):
        return f"is a {role or 'user'}, not an agent: it cannot read tickets or add internal notes"
    if user.get("chat_only") or role_type == 2:
        return "is a chat-only agent: it has no access to tickets"
    if role_type == 3:
        return "is a Contributor: it can read tickets but cannot add comments or internal notes"
    if role_type == 1:
        return "is a light agent: it may add private comments but may not change tickets, so the tag is refused"
    return None


class ZendeskClient:
    def __init__(self, config: ZendeskConfig, token: str | None, session: requests.Session | None = None,
                 *, clock=time.monotonic, sleep=None):
        if not token:
            raise ZendeskError("zendesk.enabled is true but ZENDESK_API_TOKEN is not set: make an API token in "
                               "Zendesk (Admin Center > Apps and integrations > Zendesk API) for "
                               f"{config.email or 'the API user'}", config=True)
        self.config = config
        self.session = session or requests.Session()
        self.session.auth = (f"{config.email}/token", token)
        self.calls = 0
        self._clock = clock
        self._sleep = sleep or time.sleep
        self._deadline = clock() + config.max_wait_seconds  # one run waits for Zendesk this long in all

    # --- reads ----------------------------------------------------------------------------------------

    def me(self) -> dict[str, Any]:
        """The API user. Any refusal here is about the credentials or the address: the run stops."""
        try:
            data = self._call("GET", "/api/v2/users/me", doing="read the API user")
        except ZendeskError as exc:
            if exc.status in (401, 403):
                raise ZendeskError(str(exc), config=True, status=exc.status) from None
            if exc.status == 404:
                raise self._wrong_address("answered 404 for /api/v2/users/me") from None
            raise
        user = data.get("user") if isinstance(data, dict) else None
        if not isinstance(user, dict) or user.get("id") is None:
            # Zendesk answers an unauthenticated users/me with an anonymous user: the credentials did not count
            raise ZendeskError(f"Zendesk did not recognise the API user {self.config.email}: check zendesk.email "
                               "and ZENDESK_API_TOKEN", config=True)
        return user

    def ticket(self, ticket_id: int) -> TicketFacts | None:
        """The facts a request is checked against; None when the ticket does not exist. A ticket the API user
        may not read raises a ZendeskError of kind TICKET."""
        from .policy import TicketFacts  # only when a request is judged: an idle run does not pay for it

        data = self._call("GET", f"/api/v2/tickets/{ticket_id}", doing=f"read ticket {ticket_id}", absent=404)
        if data is None:
            return None
        t = data["ticket"]
        cc_ids = cc_ids_of(t)
        people = [t.get("requester_id"), *cc_ids]
        ids = ",".join(str(i) for i in dict.fromkeys(p for p in people if p))
        users = {u["id"]: u for u in self._call("GET", f"/api/v2/users/show_many?ids={ids}",
                                                doing="read the ticket's people")["users"]} if ids else {}
        requester = users.get(t.get("requester_id")) or {}
        organization = None
        if t.get("organization_id"):
            org = self._call("GET", f"/api/v2/organizations/{t['organization_id']}",
                             doing="read the ticket's organization", absent=404)
            organization = org["organization"]["name"] if org else None
        ccs = tuple(users[i]["email"] for i in cc_ids if i in users and users[i].get("email"))
        attachments = sum(len(c.get("attachments") or ()) for c in self.comments(ticket_id))
        status = str(t.get("status") or "")
        if status == "closed" and "closed_by_merge" in (t.get("tags") or ()):
            status = "merged"  # Zendesk closes a merged ticket and tags it closed_by_merge
        return TicketFacts(int(t["id"]), status, requester.get("email") or "",
                           requester.get("name") or "", organization, ccs, attachments)

    def comments(self, ticket_id: int) -> list[dict[str, Any]]:
        """Every comment, inline images among the attachments (as an agent sees them), over all pages."""
        out: list[dict[str, Any]] = []
        where = (f"/api/v2/tickets/{ticket_id}/comments.json?page[size]={PAGE_SIZE}&include_inline_images=true")
        seen = set()
        while where and where not in seen:
            seen.add(where)
            page = self._call("GET", where, doing=f"read the comments of ticket {ticket_id}")
            out += page.get("comments") or []
            meta, links = page.get("meta") or {}, page.get("links") or {}
            cursor = bool(meta or links)  # cursor pagination; else offset (next_page)
            where = (links.get("next") if meta.get("has_more") else None) if cursor else page.get("next_page")
        return out

    # --- writes ---------------------------------------------------------------------------------------

    def add_internal_note(self, ticket_id: int, body: str, file_name: str, data: bytes) -> bool:
        """The note with the file attached; True. When the account refuses the file's type, the note alone,
        saying so; False."""
        uploads: list[str] = []
        try:
            upload = self._call("POST", f"/api/v2/uploads?filename={file_name}", doing=f"upload {file_name}",
                                data=data, headers={"Content-Type": "application/octet-stream"}, upload=True)
            uploads = [upload["upload"]["token"]]
        except ZendeskError as exc:
            if exc.kind != FILE_REFUSED:
                raise
            body += ("\n\nThe license file is not attached: this Zendesk account does not accept files of its type "
                     f"({file_name}). Its text is in the request's status note.")
        self._call("PUT", f"/api/v2/tickets/{ticket_id}", doing=f"add an internal note to ticket {ticket_id}",
                   json={"ticket": {"comment": {"body": body, "public": False, "uploads": uploads}}})
        return bool(uploads)

    def add_tag(self, ticket_id: int, tag: str) -> None:
        self._call("PUT", f"/api/v2/tickets/{ticket_id}/tags", doing=f"tag ticket {ticket_id}", json={"tags": [tag]})

    # --- plumbing -------------------------------------------------------------------------------------

    def _wrong_address(self, what: str) -> ZendeskError:
        return ZendeskError(f"zendesk.url: {self.config.url} {what}, so it is not a Zendesk account's API; set "
                            "zendesk.url to the account's address, e.g. https://yourcompany.zendesk.com",
                            config=True)

    def _address(self, where: str) -> str:
        """A path on the account, or a next-page address Zendesk returned: absolute, on the account's host (or
        Zendesk's own), never elsewhere — the credentials go with it."""
        if where.startswith("/"):
            return self.config.url.rstrip("/") + where
        mine, theirs = urlsplit(self.config.url), urlsplit(where)
        if theirs.netloc == mine.netloc or (theirs.scheme == "https" and theirs.hostname
                                            and theirs.hostname.endswith(".zendesk.com")):
            return where
        raise ZendeskError(f"Zendesk returned a next page on {theirs.scheme}://{theirs.netloc}, not on zendesk.url "
                           f"({self.config.url}); the bot does not send its credentials there. Set zendesk.url to "
                           "the account's address", config=True)

    def _wait(self, seconds: float, doing: str) -> None:
        if self._clock() + seconds > self._deadline:
            raise ZendeskError(f"could not {doing}: Zendesk asked to wait {seconds:g} s, more than this run has "
                               f"left (zendesk.max_wait_seconds {self.config.max_wait_seconds}); the next run "
                               "tries again", transient=True)
        self._sleep(seconds)

    def _call(self, method: str, where: str, *, doing: str, absent: int | None = None, upload: bool = False,
              **kwargs: Any):
        url = self._address(where)
        retried = False
        for _ in range(MAX_TRIES):
            self.calls += 1
            try:
                response = self.session.request(method, url, timeout=self.config.timeout_seconds, **kwargs)
            except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                    requests.exceptions.InvalidSchema):
                raise self._wrong_address("is not a usable address") from None
            except requests.RequestException as exc:
                if method == "GET" and not retried:  # a read is safe to ask again; a write may have happened
                    retried = True
                    self._wait(RETRY_PAUSE, doing)
                    continue
                raise ZendeskError(f"could not {doing}: Zendesk at {self.config.url} is unreachable or timed out "
                                   f"({type(exc).__name__})", transient=True) from None
            code = response.status_code
            wait = _seconds(response.headers.get("Retry-After")) if code == 429 or code >= 500 else None
            if code == 429 and wait is None and not retried:  # a 429 without Retry-After (it happens): a pause
                retried, wait = True, RATE_LIMIT_PAUSE
            if wait is not None:  # 429, or 503 in maintenance: nothing was done; ask again when told
                self._wait(wait, doing)
                continue
            if code >= 500 and method == "GET" and not retried:
                retried = True
                self._wait(RETRY_PAUSE, doing)
                continue
            break
        if absent is not None and code == absent:
            return None
        if code == 401:
            raise ZendeskError(f"could not {doing}: Zendesk refused the API user {self.config.email} (401); check "
                               "zendesk.email and ZENDESK_API_TOKEN", config=True, status=code)
        if upload and code in (400, 413, 415, 422):  # a refused file (its type or size), not the user
            raise ZendeskError(f"could not {doing}: Zendesk refused the file ({code})", kind=FILE_REFUSED,
                               status=code)
        if code == 403:
            raise ZendeskError(f"could not {doing}: Zendesk does not let the API user {self.config.email} do this "
                               "(403): the ticket is outside its groups or brands, or its role may not", kind=TICKET,
                               status=code)
        if code == 404:
            raise ZendeskError(f"could not {doing}: Zendesk answered 404 (the ticket does not exist, or was "
                               "deleted)", kind=TICKET, status=code)
        if code == 422 and "closed" in response.text.lower():
            raise ZendeskError(f"could not {doing}: the ticket is closed, and Zendesk allows no change to a closed "
                               "ticket", kind=CLOSED, status=code)
        if code >= 400:  # what it means and the code, never Zendesk's raw body (bot.meaning)
            raise ZendeskError(f"could not {doing}: {meaning.http('Zendesk', code)}",
                               transient=code >= 500 or code == 429, status=code)
        if not response.content:
            return {}
        data = _json(response)
        if data is None:  # a web page, not the API: a wrong address (a help center, a proxy, a login page)
            raise self._wrong_address(f"answered {doing!r} with a web page ({response.headers.get('Content-Type')}) "
                                      "instead of JSON")
        return data


def cc_ids_of(ticket: dict[str, Any]) -> list[int]:
    """The ticket's CCs: `email_cc_ids` where the account has CCs and followers (the field is present); on an
    older account `collaborator_ids`, less any `follower_ids` (agents following, not recipients)."""
    if "email_cc_ids" in ticket:
        return list(dict.fromkeys(ticket.get("email_cc_ids") or ()))
    followers = set(ticket.get("follower_ids") or ())
    return [i for i in dict.fromkeys(ticket.get("collaborator_ids") or ()) if i not in followers]


def _seconds(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds < 86400 else None


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
