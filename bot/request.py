"""Reading a filled-in request template: Markdown in, a LicenseRequest or field errors out.

People edit the template by hand at 3 a.m., so the parser is forgiving about layout (any heading
level, setext headings, `Field: value` lines, hints, CRLF, link syntax) and strict about meaning: two
different values for one field, a hedged value ("about 300"), or a date whose day/month order is
unclear is an error rather than a guess.

It reads what GitLab renders: the document's blocks come from markdown-it-py (GitLab Flavored Markdown
is CommonMark-based), so fenced and indented code, blockquotes, HTML blocks and comments hold no
fields. Anyone who can file an issue can send up to GitLab's 1,048,576 characters, so every step is
linear: markdown-it's block pass only (its inline pass and list rule are slow on hostile input; task
lines are read from paragraph lines instead), and values are found by splitting, not by regular
expressions that backtrack. Pure, and it never raises on any text.
"""

from __future__ import annotations

import gc
import re
from dataclasses import dataclass, field
from datetime import date
from urllib.parse import urlsplit

from . import tickets
from .markers import FORM_MARKER

FIELDS = ("ticket", "email", "user_count", "expired_on", "checklist", "form")
MAX_VALUE_CHARS = 2000  # a field's text; every real value is far shorter (an email address: at most 254)

# Headings and `Field:` names people use, normalised (lower case, letters, digits and spaces only).
_ALIASES = {
    "ticket": {"zendesk ticket", "ticket", "zendesk", "ticket url", "ticket link", "zendesk ticket url",
               "zendesk ticket link", "zendesk link", "support ticket"},
    "email": {"customer email", "email", "e mail", "customer e mail", "email address",
              "customer email address", "recipient", "recipient email", "send to"},
    "user_count": {"user count", "users", "number of users", "seats", "seat count", "user seats",
                   "licensed users", "active users", "maximum users"},
    "expired_on": {"expiry date of the customer s expired license",  # the template's heading
                   "license expiration date", "expiration date", "expired on", "expiry date",
                   "license expiry date", "license expired on", "expires at", "expired", "expiry",
                   "license expiration", "expiration"},
    "checklist": {"checklist", "check list"},
    "notes": {"notes", "note", "comments", "additional notes", "other notes"},
}
_FIELD_BY_ALIAS = {alias: name for name, aliases in _ALIASES.items() for alias in aliases}

# Where each field's value is expected, for error messages.
HEADINGS = {
    "ticket": "### Zendesk ticket",
    "email": "### Customer email",
    "user_count": "### User count",
    "expired_on": "### Expiry date of the customer's expired license",
    "checklist": "### Checklist",
}

_FIELD_LINE_RE = re.compile(r"^[ \t]*(?:[-*+][ \t]+)?([*_]{0,2}[A-Za-z][A-Za-z0-9 ()/_*-]{0,40}?):[ \t]*(.*)$")
_QUICK_ACTION_RE = re.compile(r"^/[a-z_]+(?:\s|$)")  # GitLab removes these when the issue is created
_TASK_RE = re.compile(r"^[ \t]*(?:[-*+]|\d+[.)])[ \t]+\[([ xX])\][ \t]*(.*)$")
_EMAIL_SPLIT_RE = re.compile(r"[\s<>()\[\]\"',;:*`|]+")  # what cannot be in an address; mailto: splits off
_URL_RE = re.compile(r"https?://[^\s<>()\[\]\"'`|]+", re.I)
# A ticket URL written without its scheme: host.name/path
_BARE_URL_RE = re.compile(r"(?<![\w@/.-])[a-z0-9-]+(?:\.[a-z0-9-]+)+/[^\s<>()\[\]\"'`|]*", re.I)
_TICKET_PATH_RE = re.compile(r"/(?:tickets|requests)/(\d{1,12})(?!\d)", re.I)
# Words and signs that make a number or date a guess: refused, never rounded into a license.
_HEDGE_RE = re.compile(
    r"(?<![a-z])(about|approx\w*|around|roughly|maybe|perhaps|probably|estimated|or|ca)(?![a-z])|[~?≈]", re.I)
# A whole token that starts with a digit ("2.5k" stays one token, never "2").
_NUMBER_RE = re.compile(r"(?<![\w.,])-?\d[\w,.]*")
_WHOLE_NUMBER_RE = re.compile(r"-?(\d{1,3}(,\d{3})+|\d+(_\d+)*)")
_ISO_DATE_RE = re.compile(r"(?<!\d)(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?!\d)")
_NUMERIC_DATE_RE = re.compile(r"(?<!\d)(\d{1,2})[-/.](\d{1,2})[-/.](\d{2,4})(?!\d)")
_MONTHS = {m: i + 1 for i, m in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
     "november", "december"])}
_MONTH_ALT = "|".join(sorted({n for m in _MONTHS for n in (m, m[:3], "sept")}, key=len, reverse=True))
_SEP = r"[ \t\-.]+"
_DAY = r"(\d{1,2})(?:st|nd|rd|th)?"
_DAY_MONTH_YEAR_RE = re.compile(rf"(?<!\w){_DAY}{_SEP}({_MONTH_ALT})\.?,?{_SEP}(\d{{4}})(?!\d)", re.I)
_MONTH_DAY_YEAR_RE = re.compile(rf"(?<!\w)({_MONTH_ALT})\.?{_SEP}{_DAY},?{_SEP}(\d{{4}})(?!\d)", re.I)


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


@dataclass(frozen=True)
class Checklist:
    paid_plan: bool = False
    screenshots: bool = False


@dataclass(frozen=True)
class LicenseRequest:
    ticket_url: str
    ticket_id: int | None
    email: str
    user_count: int
    expired_on: date
    checklist: Checklist = Checklist()
    notes: str = ""

    def to_json(self) -> dict:
        return {"ticket_url": self.ticket_url, "ticket_id": self.ticket_id, "email": self.email,
                "user_count": self.user_count, "expired_on": self.expired_on.isoformat()}


@dataclass(frozen=True)
class ParseResult:
    request: LicenseRequest | None
    errors: tuple[FieldError, ...] = ()
    has_form_marker: bool = False
    checklist: Checklist = field(default_factory=Checklist)
    # Whatever fields did parse, even when others did not, so every rule can still be checked.
    ticket_url: str | None = None
    email: str | None = None
    user_count: int | None = None
    expired_on: date | None = None


# --- structure: sections and field lines ---------------------------------------------------------

def _normalise_name(text: str) -> str:
    text = re.sub(r"\([^)]*\)", " ", text)  # "User count (seats)" -> "User count"
    text = re.sub(r"[^a-z0-9]+", " ", text.lower())
    return text.strip()


def _field_for(name: str) -> str | None:
    return _FIELD_BY_ALIAS.get(_normalise_name(name))


_MARKDOWN = None


def _markdown():
    global _MARKDOWN
    if _MARKDOWN is None:
        from markdown_it import MarkdownIt  # only when a request is read: an idle run does not pay for it

        md = MarkdownIt("commonmark")
        # Blocks only: the inline pass and the list rule cost seconds per megabyte on hostile input.
        md.disable(["inline", "text_join", "table", "reference", "hr", "list"], ignoreInvalid=True)
        _MARKDOWN = md
    return _MARKDOWN


def _without_comments(text: str) -> str:
    """Inline HTML comments removed, by a linear scan (an unclosed `<!--` is text, as CommonMark says)."""
    out, at = [], 0
    while (start := text.find("<!--", at)) != -1:
        end = text.find("-->", start + 4)
        if end == -1:
            break
        out.append(text[at:start])
        at = end + 3
    out.append(text[at:])
    return "".join(out)


def _blocks(text: str) -> tuple[list[tuple[str, str]], bool]:
    """What a reader of the rendered issue sees as prose, in order: ("heading", text) and ("line", text)
    items; and whether the form marker is in the document outside code."""
    tokens = _markdown().parse(text)
    items: list[tuple[str, str]] = []
    has_marker, quoted = False, 0
    for i, token in enumerate(tokens):
        if token.type == "blockquote_open":
            quoted += 1
        elif token.type == "blockquote_close":
            quoted -= 1
        elif token.type == "html_block":
            has_marker = has_marker or FORM_MARKER in token.content
        elif token.type == "inline":
            has_marker = has_marker or FORM_MARKER in token.content
            if quoted:
                continue  # a blockquote quotes someone: it holds no fields
            content = _without_comments(token.content) if "<!--" in token.content else token.content
            if tokens[i - 1].type == "heading_open":
                items.append(("heading", content))
            else:
                items.extend(("line", line) for line in content.split("\n"))
    return items, has_marker


def _collect(items: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Candidate text for each field: the lines under its heading, plus `Field: value` lines."""
    found: dict[str, list[str]] = {name: [] for name in (*HEADINGS, "notes")}
    section: str | None = None  # None: before any heading; "" an unknown heading
    for kind, line in items:
        if kind == "heading":
            section = _field_for(line) or ""
            continue
        if not line.strip() or _QUICK_ACTION_RE.match(line.strip()):
            continue
        if section in HEADINGS or section == "notes":
            found[section].append(line)
            continue
        # Outside any known section: look for `Field: value` or `**Field:** value`.
        match = _FIELD_LINE_RE.match(line)
        if match:
            name = _field_for(match.group(1).strip("*_ "))
            if name and name != "notes":
                found[name].append(match.group(2).lstrip("*_ "))
        task = _TASK_RE.match(line)
        if task:
            found["checklist"].append(line)
    return found


# --- values ------------------------------------------------------------------------------------------

def quote(text: str, limit: int = 60) -> str:
    """User text shown inside a message: inline code, so it cannot mention, link or format."""
    text = " ".join(text.replace("`", "'").split())
    return f"`{text[:limit]}{'…' if len(text) > limit else ''}`"


def _distinct(values: list[str], key=lambda v: v) -> list[str]:
    seen, out = set(), []
    for value in values:
        if key(value) not in seen:
            seen.add(key(value))
            out.append(value)
    return out


# How each field is named in messages: (plural, what "none found" looks for, the fix, what is missing, example).
_WORDING = {
    "ticket": ("tickets", "ticket URL or number", "write the Zendesk ticket's URL (…/agent/tickets/NUMBER) or its "
               "number", "the Zendesk ticket's URL or number", "https://gitlab.zendesk.com/agent/tickets/512345"),
    "email": ("email addresses", "email address", "write the customer's address, e.g. jane@example.com",
              "the customer's email address", "jane@example.com"),
    "user_count": ("user counts", "number", "write the user count as a number, e.g. 250",
                   "the number of users (at least the \"Maximum users\" on the Subscription page)", "250"),
    "expired_on": ("dates", "date", "write the expired license's date as YYYY-MM-DD, e.g. 2026-11-12",
                   "the expired license's expiration date from the screenshot", "2026-11-12"),
}


def _settle(field_name: str, values: list, texts: list[str], errors: list[FieldError]):
    """The field's one value; otherwise an error for several values, for text holding none, or for nothing."""
    plural, noun, fix, what, example = _WORDING[field_name]
    if len(values) > 1:
        shown = ", ".join(quote(str(v)) for v in values[:4])
        errors.append(FieldError(field_name, f"found {len(values)} different {plural} ({shown}); keep exactly one "
                                             f"under {HEADINGS[field_name]}"))
    elif values:
        return values[0]
    elif any(t.strip() for t in texts):
        errors.append(FieldError(field_name, f"no {noun} found in {quote(texts[0])}; {fix}"))
    else:
        errors.append(FieldError(field_name, f"missing: write {what} under {HEADINGS[field_name]}, e.g. {example}"))
    return None


def _parse_ticket(texts: list[str], base_url: str, errors: list[FieldError]) -> tuple[str, int | None] | None:
    """The ticket however it is written: a URL with or without its scheme, in any letter case, with a
    trailing slash or query, in a Markdown link or angle brackets; a bare number, or `#number`."""
    candidates: list[tuple[str, int | None]] = []
    for text in texts:
        urls = [u.rstrip(".,;:!?*_") for u in _URL_RE.findall(text)]
        rest = _URL_RE.sub(" ", text)
        urls += ["https://" + u.rstrip(".,;:!?*_") for u in _BARE_URL_RE.findall(rest)]
        rest = _BARE_URL_RE.sub(" ", rest)
        for url in urls:
            numbers = _TICKET_PATH_RE.findall(urlsplit(url).path)
            candidates.append((url, int(numbers[-1]) if numbers else None))
        for number in re.findall(r"(?<![\w/])#?(\d{1,12})(?!\w)", rest):
            candidates.append((f"{base_url}/agent/tickets/{int(number)}", int(number)))
    # A URL and its own bare number written side by side are one ticket.
    by_id = _distinct(candidates, key=lambda c: c[1] if c[1] is not None else c[0].lower())
    if _settle("ticket", [c[0] for c in by_id], texts, errors) is None:
        return None
    url, ticket_id = by_id[0]
    if ticket_id is None:
        errors.append(FieldError("ticket", f"{quote(url, 100)} has no ticket number in it; paste the ticket's URL "
                                           "(…/agent/tickets/512345) or just its number"))
        return None
    return url, ticket_id


def _parse_email(texts: list[str], errors: list[FieldError]) -> str | None:
    found = []
    for text in texts:
        for token in _EMAIL_SPLIT_RE.split(text):  # split, never backtrack: linear in any input
            if "@" not in token:
                continue
            token = token.strip(".")
            local, _, domain = token.rpartition("@")
            if local and domain:
                found.append(f"{local}@{domain.lower()}")  # domains are case-insensitive
    return _settle("email", _distinct(found, key=str.casefold), texts, errors)


def _hedged(field_name: str, texts: list[str], errors: list[FieldError]) -> bool:
    """A value written as a guess ("about 300", "~250", "2026-11-12?") is refused, never rounded."""
    for text in texts:
        hedge = _HEDGE_RE.search(text)
        if hedge:
            what = "the exact number of users from the Subscription page, e.g. 250" if field_name == "user_count" \
                else "the exact date from the customer's screenshot as YYYY-MM-DD, e.g. 2026-11-12"
            errors.append(FieldError(field_name, f"{quote(text)} is not exact ({quote(hedge.group(0))}); the bot "
                                                 f"does not guess: write {what}"))
            return True
    return False


def _parse_user_count(texts: list[str], errors: list[FieldError]) -> int | None:
    if _hedged("user_count", texts, errors):
        return None
    found: list[int] = []
    for text in texts:
        for token in _NUMBER_RE.findall(text):
            token = token.rstrip(".,")
            if len(token) > 40:
                errors.append(FieldError("user_count", f"{quote(token, 20)} is far too large; write the user count"))
                return None
            if not _WHOLE_NUMBER_RE.fullmatch(token):
                hint = "a whole number of users" if re.fullmatch(r"-?\d+\.\d+", token) else "a number"
                errors.append(FieldError("user_count", f"{quote(token)} is not {hint}; write e.g. 1,250 or 1250"))
                return None
            digits = token.replace(",", "").replace("_", "")
            if len(digits) > 30:
                errors.append(FieldError("user_count", f"{quote(token, 20)} is far too large; write the user count"))
                return None
            found.append(int(digits))
    return _settle("user_count", _distinct(found), texts, errors)


def _make_date(year: int, month: int, day: int, shown: str, errors: list[FieldError]) -> date | None:
    if not 2000 <= year <= 2099:  # no license GitLab made expired outside these; and date arithmetic stays safe
        errors.append(FieldError("expired_on", f"{quote(shown)} is not a plausible expiration date; write the date "
                                               "from the customer's screenshot as YYYY-MM-DD"))
        return None
    try:
        return date(year, month, day)
    except ValueError:
        errors.append(FieldError("expired_on", f"{quote(shown)} is not a real date; write it as YYYY-MM-DD"))
        return None


# Unambiguous date forms, tried in order, each as (pattern, match -> (year, month, day)).
_DATE_FORMS = (
    (_ISO_DATE_RE, lambda m: (int(m.group(1)), int(m.group(2)), int(m.group(3)))),
    (_DAY_MONTH_YEAR_RE, lambda m: (int(m.group(3)), _month(m.group(2)), int(m.group(1)))),
    (_MONTH_DAY_YEAR_RE, lambda m: (int(m.group(3)), _month(m.group(1)), int(m.group(2)))),
)


def _parse_expired_on(texts: list[str], errors: list[FieldError]) -> date | None:
    if _hedged("expired_on", texts, errors):
        return None
    found: list[date] = []
    for text in texts:
        rest = text
        for pattern, parts in _DATE_FORMS:
            for m in pattern.finditer(rest):
                d = _make_date(*parts(m), m.group(0), errors)
                if d is None:
                    return None
                found.append(d)
            rest = pattern.sub(" ", rest)  # a date read once is not read again by a looser form
        ambiguous = _NUMERIC_DATE_RE.search(rest)
        if ambiguous:
            errors.append(FieldError(
                "expired_on", f"{quote(ambiguous.group(0))} is ambiguous (day/month or month/day?); write it as "
                              "YYYY-MM-DD, e.g. 2026-11-12, or with the month's name, e.g. 12 Nov 2026"))
            return None
    return _settle("expired_on", _distinct(found), texts, errors)


def _month(name: str) -> int:
    name = name.lower()
    return 9 if name == "sept" else _MONTHS.get(name) or next(n for m, n in _MONTHS.items() if m[:3] == name[:3])


def _parse_checklist(texts: list[str]) -> Checklist:
    paid, shots = [], []
    for text in texts:
        task = _TASK_RE.match(text)
        if not task:
            continue
        ticked, label = task.group(1) in "xX", task.group(2).lower()
        if "paid" in label or "prospect" in label:
            paid.append(ticked)
        if "screenshot" in label:
            shots.append(ticked)
    return Checklist(paid_plan=bool(paid) and all(paid), screenshots=bool(shots) and all(shots))


# --- the whole document ------------------------------------------------------------------------------

def parse(text: str, ticket_base_url: str = "https://gitlab.zendesk.com") -> ParseResult:
    """Parse an issue description; every problem is reported at once, as field errors."""
    gc_was_on = gc.isenabled()
    gc.disable()  # a hostile description makes a token or line per block: collections made it superlinear
    try:
        return _parse(text if isinstance(text, str) else "", ticket_base_url)
    finally:
        if gc_was_on:
            gc.enable()


def _parse(text: str, ticket_base_url: str) -> ParseResult:
    items, has_marker = _blocks(text)
    found = _collect(items)
    errors: list[FieldError] = []
    checklist = _parse_checklist(found["checklist"])
    for name in HEADINGS:  # no value is this long: say so, and keep the value parsers' work small
        size = sum(len(t) for t in found[name])
        if name != "checklist" and size > MAX_VALUE_CHARS:
            errors.append(FieldError(name, f"the text for this field is {size:,} characters long; write just the "
                                           f"value under {HEADINGS[name]}"))
            found[name] = []
    if errors:
        return ParseResult(None, tuple(errors), has_marker, checklist)
    if not any(found[name] for name in HEADINGS):
        errors.append(FieldError("form", "no request fields found: fill in the Emergency License Request template "
                                         "(ticket, customer email, user count, license expiration date, checklist)"))
        return ParseResult(None, tuple(errors), has_marker, checklist)
    ticket = _parse_ticket(found["ticket"], ticket_base_url.rstrip("/"), errors)
    email = _parse_email(found["email"], errors)
    users = _parse_user_count(found["user_count"], errors)
    expired_on = _parse_expired_on(found["expired_on"], errors)
    if errors or ticket is None or email is None or users is None or expired_on is None:
        return ParseResult(None, tuple(errors), has_marker, checklist, ticket_url=ticket[0] if ticket else None,
                           email=email, user_count=users, expired_on=expired_on)
    # The link the bot writes is the one it builds: the typed URL only said which ticket (and policy checks it).
    request = LicenseRequest(ticket_url=tickets.agent_url(ticket_base_url, ticket[1]), ticket_id=ticket[1],
                             email=email, user_count=users,
                             expired_on=expired_on, checklist=checklist, notes="\n".join(found["notes"]).strip())
    return ParseResult(request, (), has_marker, checklist, ticket_url=ticket[0], email=email, user_count=users,
                       expired_on=expired_on)
