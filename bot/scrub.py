"""One scrubber for every text that leaves the bot: issue notes, the run report, the terminal, logs.

Secrets reach text in ways nobody plans for: Slack echoes part of its webhook URL in an error, a
mail server quotes the login, an exception names a URL with a token in it. So every such text goes
through this, whatever produced it. It replaces each secret value, and the parts a reply may quote
on their own (a webhook's path and its last segment, each line of a PEM key), with `[secret]`.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote, urlsplit

MIN_LENGTH = 6  # shorter values would blank out ordinary words


def _forms(value: str) -> set[str]:
    """The value and the pieces of it that another system might quote separately."""
    forms = {value, value.strip()}
    parts = urlsplit(value) if "://" in value else None
    if parts and parts.path.strip("/"):
        forms |= {parts.path, parts.path.strip("/"), parts.path.rstrip("/").rsplit("/", 1)[-1]}
        if parts.query:
            forms.add(parts.query)
    if "-----BEGIN" in value:  # a PEM key: any one of its lines identifies it
        forms |= {line.strip() for line in value.splitlines() if line.strip() and "-----" not in line}
    forms |= {quote(f, safe="") for f in list(forms)}
    return {f for f in forms if len(f) >= MIN_LENGTH}


class Scrubber:
    def __init__(self, secrets: Iterable[str | None] = ()):
        found: set[str] = set()
        for value in secrets:
            if value:
                found |= _forms(value)
        self._values = sorted(found, key=len, reverse=True)  # longest first: a part never hides the whole

    def __call__(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, "[secret]")
        return text
