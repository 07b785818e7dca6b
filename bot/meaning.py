"""What a server's answer means, in words a person acts on, with its code kept for whoever digs further. Pure.

Notes and the terminal never carry a raw reply body (`{"error": "Service Unavailable"}`, an HTML error page): a
body is the server's, not the reader's, and can be long or hostile. The status code stays, so nothing is lost.
"""

from __future__ import annotations

_HTTP = {
    400: "refused the request as malformed",
    401: "refused the credentials",
    403: "does not allow this",
    404: "does not have it",
    408: "timed out waiting for the request",
    409: "refused it as a conflict with a change made at the same time",
    413: "refused it as too large",
    422: "refused it as invalid",
    429: "is limiting how often it may be asked; it answers again later",
}


def http(service: str, code: int | None) -> str:
    """'Zendesk is down or overloaded for now (503)': what CODE from SERVICE means."""
    if code is None:
        return f"{service} did not answer"
    if code in _HTTP:
        what = _HTTP[code]
    elif code in (502, 503, 504):
        what = "is down or overloaded for now"
    elif code >= 500:
        what = "failed on its side"
    else:
        what = "refused the request"
    return f"{service} {what} ({code})"


def smtp(code: int, text: str = "") -> str:
    """What a mail server's reply means, with its code and enhanced status code (RFC 3463) kept."""
    import re

    enhanced = re.match(r"\s*([245]\.\d{1,3}\.\d{1,3})\b", text or "")
    codes = f"{code} {enhanced.group(1)}" if enhanced else str(code)
    detail = enhanced.group(1) if enhanced else ""
    if detail in ("5.1.1", "5.1.0") or code in (550, 551, 553) and detail.startswith("5.1"):
        what = "the address does not exist"
    elif detail == "5.2.2" or code == 552:
        what = "the mailbox is full"
    elif detail.startswith("5.7"):
        what = "the server refuses mail from this sender (policy or spam filter)"
    elif code == 550:
        what = "the mailbox is unavailable"
    elif code >= 500:
        what = "the server refused it for good"
    elif code >= 400:
        what = "the server refused it for now (a temporary problem; it may work later)"
    else:
        what = "the server answered unexpectedly"
    return f"{what} ({codes})"
