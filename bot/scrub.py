"""One scrubber for every text that leaves the bot: issue notes, the run report, the terminal, logs.

Secrets reach text in ways nobody plans for: Slack echoes part of its webhook URL in an error, a
mail server quotes the login, an exception names a URL with a token in it. So every such text goes
through this, whatever produced it. It replaces each secret value, and the parts a reply may quote
on their own (a webhook's path and its last segment, each line of a PEM key), with `[secret]`.
A URL's user-info (`https://oauth2:TOKEN@host/`) is always dropped, whoever put it there. A secret
too short to replace everywhere (it would blank out ordinary words) is still replaced where secrets
stand: after `=` or `:` (`key=value`, `key: value`, `user:secret@`); and whatever follows `token=`,
`password=` and their kin, or `Authorization: Bearer`, is replaced whoever's secret it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, urlsplit

MIN_LENGTH = 6  # shorter values would blank out ordinary words

# scheme://user[:password]@ : the user-info goes, the scheme and host stay.
_USERINFO_RE = re.compile(r"(\b[a-z][a-z0-9+.-]{0,20}://)[^/\s@?#\"'<>]{1,512}@", re.I)
# Names under which a secret travels in a query string, a header or a settings line, whatever its value.
_NAMED_RE = re.compile(r"(?i)(\b(?:(?:private|access|job|api|auth)?[_-]?token|password|passwd|secret|api[_-]?key|pin)"
                       r"[\"']?\s*=\s*|\bauthorization:\s*(?:bearer|basic|token)\s+)(?!\[secret\])"
                       r"(\"[^\"\n]{0,512}\"|'[^'\n]{0,512}'|[^\s&;,\"'<>)\]]{1,512})")


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
        short: set[str] = set()
        for value in secrets:
            if value:
                found |= _forms(value)
                if len(value.strip()) < MIN_LENGTH and value.strip():
                    short |= {value.strip(), quote(value.strip(), safe="")}
        self._values = sorted(found, key=len, reverse=True)  # longest first: a part never hides the whole
        # A short secret right after `=` or `:` (a query string, `key=value`, `user:secret@`), as a whole word.
        self._short = re.compile(
            r"(?<=[=:])(\s*[\"']?)(" + "|".join(map(re.escape, sorted(short, key=len, reverse=True)))
            + r")(?![\w~%+-]|\.\w)") if short else None

    def __call__(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, "[secret]")
        if "://" in text:
            text = _USERINFO_RE.sub(r"\1", text)
        if self._short is not None:
            text = self._short.sub(r"\1[secret]", text)
        return _NAMED_RE.sub(r"\1[secret]", text)
