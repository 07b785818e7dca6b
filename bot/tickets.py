"""The agent's ticket link: built from the ticket's number and the configured ticket base, never copied as typed.

Pure. A typed URL only ever tells which ticket is meant; what the bot writes (status note, record, Slack, the
check-request line) is `agent_url(base, id)`, so nothing an engineer pasted (a query string, a fragment, a
look-alike host) travels on. And a typed URL that a browser would take somewhere else than Python's `urlsplit`
thinks is refused with a message: `https://evil.example\\@gitlab.zendesk.com/...` has `urlsplit` see the host
gitlab.zendesk.com while a browser, for which `\\` ends the host, goes to evil.example.
"""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def agent_url(base_url: str, ticket_id: int) -> str:
    """The ticket as an agent opens it: BASE/agent/tickets/ID."""
    return f"{base_url.rstrip('/')}/agent/tickets/{int(ticket_id)}"


def problem(url: str, base_url: str) -> str | None:
    """Why URL is not a plain link to a ticket on BASE_URL's Zendesk, or None. The wording follows "URL ..."."""
    base = urlsplit(base_url)
    host = (base.hostname or "").lower()
    if "\\" in url:
        return "has a backslash in it: browsers end the host there, so the link would open another site"
    parts = urlsplit(url)
    if parts.scheme.lower() != base.scheme.lower():
        return f"is an {parts.scheme or 'scheme-less'} link, not {base.scheme}"
    if "@" in parts.netloc:
        return f"has a user name before the host ({parts.netloc.rpartition('@')[0][:40]}@): browsers may go elsewhere"
    try:
        port = parts.port
    except ValueError:
        return "has a port that is not a number"
    if (port or DEFAULT_PORTS.get(parts.scheme.lower())) != (base.port or DEFAULT_PORTS.get(base.scheme.lower())):
        return f"names port {port}, which is not the Zendesk's"
    if (parts.hostname or "").lower() != host:
        return f"is not a ticket on {host}"
    return None
