"""Reading a filled-in request template: Markdown in, a LicenseRequest or field errors out.

People edit the template by hand at 3 a.m., so the parser is forgiving about layout (any heading
level, setext headings, `Field: value` lines, hints, CRLF, link syntax) and strict about meaning: two
different values for one field, a hedged value ("about 300"), or a date whose day/month order is
unclear is an error rather than a guess.

It reads what GitLab renders: the document's blocks follow CommonMark's block rules (GitLab Flavored
Markdown is CommonMark-based), so fenced and indented code, blockquotes, HTML blocks and comments hold
no fields. Anyone who can file an issue can send up to GitLab's 1,048,576 characters, so every step is
linear and cheap per character: a block scanner that consumes runs of same-shaped blocks with one
bounded regular expression, applied again where it stopped (markdown-it-py took 3 s on 1 MB of `#\n`; the
tests keep it as the reference the scanner must agree with), and values found by splitting, not by regular
expressions that backtrack. Pure, and it never raises on any text.
"""

from __future__ import annotations

import functools
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

# A field's name: up to 60 characters, room for the template's own longest heading ("Expiry date of the
# customer's expired license", apostrophe and all) written as a field line.
_FIELD_LINE_RE = re.compile(r"^[ \t]*(?:[-*+][ \t]+)?([*_]{0,2}[A-Za-z][A-Za-z0-9 ()/_*'\u2019-]{0,60}?):[ \t]*(.*)$")
_QUICK_ACTION_RE = re.compile(r"^/[a-z_]+(?:\s|$)")  # GitLab removes these when the issue is created
_TASK_RE = re.compile(r"^[ \t]*(?:[-*+]|\d+[.)])[ \t]+\[([ xX])\][ \t]*(.*)$")
# The same two, over a block of lines at once.
_FIELD_LINES_RE = re.compile(_FIELD_LINE_RE.pattern, re.M)
_TASK_LINES_RE = re.compile(_TASK_RE.pattern, re.M)
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
_MONTH_BY_PREFIX = {m[:3]: n for m, n in _MONTHS.items()}
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
    ticket_id: int | None = None  # the ticket's number, once the ticket field parsed (its URL is checked apart)
    email: str | None = None
    user_count: int | None = None
    expired_on: date | None = None


# --- structure: sections and field lines ---------------------------------------------------------

def _normalise_name(text: str) -> str:
    text = re.sub(r"\([^)]*\)", " ", text)  # "User count (seats)" -> "User count"
    text = re.sub(r"[^a-z0-9]+", " ", text.lower())
    return text.strip()


# Every alias holds one of these: a heading without any (`# 1`, `#`) is no field, found without normalising it.
_ALIAS_HINT = re.compile(r"ticket|zendesk|mail|recipient|send|user|seat|expir|check|note|comment", re.I)


@functools.lru_cache(maxsize=1024)
def _field_for(name: str) -> str | None:
    if len(name) > 200 or not _ALIAS_HINT.search(name):
        return None
    return _FIELD_BY_ALIAS.get(_normalise_name(name))


# --- the document's blocks: a linear scanner ------------------------------------------------------
#
# What GitLab renders, block by block (CommonMark, which GitLab Flavored Markdown builds on): fenced and
# indented code, blockquotes and HTML blocks hold no fields; ATX and setext headings start sections; the rest
# are paragraphs. Lists, tables, thematic breaks and link reference definitions are read as paragraph lines
# (task lines are read from them). The rules follow markdown-it's CommonMark block rules, which the tests
# compare this scanner against. Anyone who can file an issue can send 1,048,576 characters of one tiny
# block repeated (`#\n`, `x\n\n`, `> x\n\n`, `-\n`, fences...), so every run of same-shaped blocks is
# consumed by one regular expression (atomic, so it cannot backtrack), not one Python step per line.

_BLANK = r"[ \t]*(?:\n|\Z)"
_EOL = r"(?:\n|\Z)"
_ATX = r"[ ]{0,3}#{1,6}(?:[ \t][^\n]*)?" + _EOL
_UNDERLINE = r"[ ]{0,3}(?:=+|-+)[ \t]*" + _EOL
# A line that is a paragraph's text wherever it stands: not indented as code, and it neither starts another
# block nor underlines a heading. Lines starting with < go the slow way (HTML blocks have 7 kinds).
_PLAIN = (r"[ ]{0,3}(?:[^#<> \t\n`~=\-]|#{7}|#{1,6}[^ \t\n#]|`(?!``)|~(?!~~)|(?!(?:=+|-+)[ \t]*(?:\n|\Z))[=\-])"
          r"[^\n]*" + _EOL)
_INDENTED = r"(?:[ ]{0,3}\t|[ ]{4})"
_BLOCK_NAMES = (
    "address|article|aside|base|basefont|blockquote|body|caption|center|col|colgroup|dd|details|dialog|dir|div|"
    "dl|dt|fieldset|figcaption|figure|footer|form|frame|frameset|h1|h2|h3|h4|h5|h6|head|header|hr|html|iframe|"
    "legend|li|link|main|menu|menuitem|nav|noframes|ol|optgroup|option|p|param|search|section|summary|table|"
    "tbody|td|tfoot|th|thead|title|tr|track|ul")
_ATTRIBUTE = (r"(?:\s+[a-zA-Z_:][a-zA-Z0-9:._-]*(?:\s*=\s*(?:[^\"'=<>`\x00-\x20]+|'[^']*'|\"[^\"]*\"))?)")
_OPEN_CLOSE_TAG = r"(?:<[A-Za-z][A-Za-z0-9\-]*" + _ATTRIBUTE + r"*\s*/?>|</[A-Za-z][A-Za-z0-9\-]*\s*>)"
# The same within one line, for expressions over many lines (a block's start is judged by its line alone).
_OPEN_CLOSE_TAG_LINE = (_OPEN_CLOSE_TAG.replace(r"\s", r"[^\S\n]").replace(r"'[^']*'", r"'[^'\n]*'")
                        .replace(r'\"[^\"]*\"', r'\"[^\"\n]*\"'))
# HTML block starts (CommonMark's seven kinds, in order) and what ends each; kinds 1-6 interrupt a paragraph.
_HTML_KINDS = (
    (re.compile(r"<(?a:script|pre|style|textarea)(?=\s|>|$)", re.I), re.compile(r"</(?a:script|pre|style|textarea)>",
                                                                                  re.I)),
    (re.compile(r"<!--"), re.compile(r"-->")),
    (re.compile(r"<\?"), re.compile(r"\?>")),
    (re.compile(r"<![A-Za-z]"), re.compile(r">")),
    (re.compile(r"<!\[CDATA\["), re.compile(r"\]\]>")),
    (re.compile(r"</?(?a:" + _BLOCK_NAMES + r")(?=\s|/?>|$)", re.I), None),
    (re.compile(_OPEN_CLOSE_TAG + r"\s*$"), None),
)
# A run of half a million blocks is consumed chunk by chunk: each expression repeats its block at most _MANY
# times and is applied again where it stopped. An unbounded repeat of a group makes Python's regex engine keep
# state for every repetition (superlinear on a megabyte); and possessive quantifiers, which would avoid that,
# match wrongly in Python before 3.11.4 (Debian 12 ships 3.11.2), so none are used.
_MANY = "{1,2048}"
_SOME = "{0,2048}"
_BLANK_LINE = r"[ \t]*\n"
_RUNS = {
    # Paragraphs of plain lines and the blank lines between them.
    "plain": re.compile(r"(?:" + _PLAIN + "|" + _BLANK_LINE + ")" + _MANY),
    "atx": re.compile(r"(?:" + _ATX + "|" + _BLANK_LINE + ")" + _MANY),
    # One-line paragraphs each underlined: setext headings (x/-, -/-, x/=).
    "setext": re.compile(r"(?:(?:" + _PLAIN + "|" + _UNDERLINE + ")" + _UNDERLINE + "|" + _BLANK_LINE + ")" + _MANY),
    # Blockquotes each ended by a blank line.
    "quote": re.compile(r"(?:[ ]{0,3}>[^\n]*\n(?:[ \t]*>[^\n]*\n)" + _SOME + "(?:" + _BLANK_LINE + ")" + _MANY
                        + ")" + _MANY),
    "fence": re.compile(r"(?:[ ]{0,3}(?:(?P<b>`{3,})[^`\n]*\n(?:(?![ ]{0,3}(?P=b)`*[ \t]*" + _EOL + r")[^\n]*\n)"
                        + _SOME + r"[ ]{0,3}(?P=b)`*|(?P<t>~{3,})[^\n]*\n(?:(?![ ]{0,3}(?P=t)~*[ \t]*" + _EOL
                        + r")[^\n]*\n)" + _SOME + r"[ ]{0,3}(?P=t)~*)[ \t]*" + _EOL + "|" + _BLANK_LINE + ")" + _MANY),
    "code": re.compile(r"(?:" + _INDENTED + r"[^\n]*" + _EOL + "|" + _BLANK_LINE + ")" + _MANY),
    # HTML blocks of kinds 6 and 7 (they end at a blank line), and one-line comments.
    "html": re.compile(r"(?:[ ]{0,3}(?:(?:</?(?a:" + _BLOCK_NAMES + r")(?=\s|/?>|\Z)|(?!<(?:script|pre|style|"
                       r"textarea)(?=[\s>]|\Z))" + _OPEN_CLOSE_TAG_LINE + r"[ \t]*(?=\n|\Z))[^\n]*" + _EOL
                       + r"(?:[ \t]*[^ \t\n][^\n]*" + _EOL + ")" + _SOME + r"(?=[ \t]*(?:\n|\Z))"  # ends here
                       + r"|<!--[^\n]*?-->[^\n]*" + _EOL
                       + r")(?:" + _BLANK_LINE + ")" + _SOME + ")" + _MANY, re.I),
}
_CONTINUATION = re.compile(r"(?:" + _PLAIN + "|" + _INDENTED + r"[ \t]*[^ \t\n][^\n]*" + _EOL + ")" + _MANY)
_BLANKS = re.compile(r"(?:" + _BLANK_LINE + ")" + _MANY)
_LAST_BLANK = re.compile(r"\n[ \t]*\n")
_FENCE_OPEN = re.compile(r"[ ]{0,3}(`{3,}(?=[^`\n]*$)|~{3,})", re.M)
_ATX_START = re.compile(r"[ ]{0,3}#{1,6}(?:[ \t]|$)")
_UNDERLINE_RE = re.compile(r"[ ]{0,3}(?:=+|-+)[ \t]*$")


def _indent(line: str) -> int:
    """Columns of leading whitespace, a tab reaching the next multiple of 4 (as CommonMark counts)."""
    n = 0
    for c in line:
        if c == " ":
            n += 1
        elif c == "\t":
            n += 4 - n % 4
        else:
            break
    return n


def _html_kind(stripped: str) -> int | None:
    """Which of CommonMark's seven HTML block kinds a line (without its indent) starts, 1-based."""
    for kind, (start, _) in enumerate(_HTML_KINDS, start=1):
        if start.match(stripped):
            return kind
    return None


def _interrupts(line: str, stripped: str) -> bool:
    """Whether a line ends an open paragraph (or a blockquote's lazy lines) by starting a block of its own."""
    if _indent(line) >= 4:
        return False
    c = stripped[0]
    if c == ">":
        return True
    if c == "#":
        return _ATX_START.match(line) is not None
    if c in "`~":
        return _FENCE_OPEN.match(line) is not None
    if c == "<":
        kind = _html_kind(stripped)
        return kind is not None and kind <= 6
    return False


def _atx_text(line: str) -> str:
    """An ATX heading's text, as far as it is read: only ever as a field's name, of which _normalise_name keeps
    letters and digits alone, so its opening and closing #s need no CommonMark rules; its comments do go."""
    return _clean(line.strip())


def _clean(content: str) -> str:
    return _without_comments(content) if "<!--" in content else content


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


def _line_end(text: str, pos: int) -> int:
    end = text.find("\n", pos)
    return len(text) if end == -1 else end


def _blocks(text: str) -> tuple[list[tuple[str, str]], bool]:
    """What a reader of the rendered issue sees outside code and quotes, in order: ("heading", text) items
    and ("text", lines) items whose lines are paragraph lines; and whether the form marker is in the
    document outside code."""
    if "\r" in text or "\0" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\0", "\ufffd")
    items: list[tuple[str, str]] = []
    marker = False
    para: list[str] = []  # the open paragraph's lines (an entry may hold several)
    n, pos = len(text), 0

    def close(heading: bool = False) -> None:
        nonlocal marker
        content = "\n".join(para).strip()
        para.clear()
        marker = marker or FORM_MARKER in content
        if heading or content:
            items.append(("heading" if heading else "text", _clean(content)))

    while pos < n:
        if para:  # lines that continue the open paragraph, all at once
            match = _CONTINUATION.match(text, pos)
            if match:
                para.append(text[pos:match.end()].rstrip("\n"))
                pos = match.end()
                continue
        else:
            blank = _BLANKS.match(text, pos)
            if blank:
                pos = blank.end()
                continue
            after, marked = _run(text, pos, items, para)
            if after != pos:
                marker = marker or marked
                pos = after
                continue
        end = _line_end(text, pos)
        line = text[pos:end]
        stripped = line.lstrip(" \t")
        if not stripped:
            if para:
                close()
            pos = end + 1
            continue
        if para:
            if _indent(line) < 4 and _UNDERLINE_RE.match(line):
                close(heading=True)
                pos = end + 1
                continue
            if not _interrupts(line, stripped):
                para.append(line)
                pos = end + 1
                continue
            close()
        pos, marked = _block(text, pos, end, line, stripped, items, para)
        marker = marker or marked
    if para:
        close()
    return items, marker


def _collect(items: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Candidate text for each field: the lines under its heading, plus `Field: value` lines. Each block of
    lines is searched by one regular expression, not line by line: a block can hold half a million lines."""
    found: dict[str, list[str]] = {name: [] for name in (*HEADINGS, "notes")}
    section: str | None = None  # None: before any heading; "" an unknown heading
    for kind, block in items:
        if kind == "heading":
            section = _field_for(block) or ""
            continue
        if section in HEADINGS or section == "notes":
            lines = [line for line in block.split("\n") if line.strip()]
            if "/" in block:
                lines = [line for line in lines if not _QUICK_ACTION_RE.match(line.strip())]
            found[section].extend(lines)
            continue
        # Outside any known section: `Field: value` or `**Field:** value` lines, and task lines.
        hits = []
        if ":" in block:
            for match in _FIELD_LINES_RE.finditer(block):
                name = _field_for(match.group(1).strip("*_ "))
                if name and name != "notes":
                    hits.append((match.start(), name, match.group(2).lstrip("*_ ")))
        if not hits:
            if "[" in block and _TASK_LINES_RE.search(block):
                found["checklist"].append(block)  # its task lines, read together by _parse_checklist
            continue
        hits += [(m.start(), "checklist", m.group(0)) for m in _TASK_LINES_RE.finditer(block)]
        for _, name, value in sorted(hits, key=lambda hit: hit[0]):
            found[name].append(value)
    return found


def _run(text: str, pos: int, items: list[tuple[str, str]], para: list[str]) -> tuple[int, bool]:
    """Consume a run of same-shaped blocks at `pos`: the new position (`pos` itself when no run starts here),
    and whether the run held the form marker outside code."""
    c = text[pos]
    if c in " " and _indent(text[pos:pos + 4]) >= 4 or c == "\t":
        return _repeat(_RUNS["code"], text, pos), False
    first = text[pos:pos + 4].lstrip(" ")[:1]
    if first == "#":
        end = _repeat(_RUNS["atx"], text, pos)
        if end > pos:
            items.append(("heading", _atx_text(_last_lines(text, pos, end, 1)[0])))
            return end, _marked(text, pos, end)
    elif first == ">":
        end = _repeat(_RUNS["quote"], text, pos)
        return end, _marked(text, pos, end) and _quotes_marked(text, pos, end)
    elif first in "`~":
        return _repeat(_RUNS["fence"], text, pos), False
    elif first == "<":
        end = _repeat(_RUNS["html"], text, pos)
        return end, _marked(text, pos, end)
    end = _repeat(_RUNS["setext"], text, pos)
    if end > pos:
        items.append(("heading", _clean(_last_lines(text, pos, end, 2)[0].strip())))
        return end, _marked(text, pos, end)
    end = _repeat(_RUNS["plain"], text, pos)
    if end == pos:
        return pos, False
    # The paragraphs before the last blank line are complete; the lines after it are a paragraph still open
    # (a setext underline or a lazy line may follow). Found by searching the run backwards, in one step.
    run = text[pos:end]
    last_blank = _LAST_BLANK.search(run[::-1])
    split = len(run) - last_blank.start() if last_blank else 0
    closed, open_ = run[:split], run[split:]
    if closed.strip():
        if "<!--" in closed:  # a comment never spans paragraphs
            closed = "\n\n".join(_without_comments(p) for p in re.split(r"\n[ \t]*\n", closed))
        items.append(("text", closed))
    if open_.strip():
        para.append(open_.rstrip("\n"))
    return end, FORM_MARKER in closed  # the open lines are checked when their paragraph closes


def _quotes_marked(text: str, pos: int, end: int) -> bool:
    """Whether blockquotes separated by blank lines hold the form's marker outside code: quote by quote, as
    _blockquote reads them (done only when the marker is somewhere in them)."""
    while pos < end:
        line_end = _line_end(text, pos)
        if not text[pos:line_end].strip(" \t"):
            pos = line_end + 1
            continue
        pos, marked = _blockquote(text, pos)
        if marked:
            return True
    return False


def _repeat(pattern: re.Pattern, text: str, pos: int) -> int:
    """Apply a bounded-repeat expression again and again from `pos`: the end of the whole run."""
    end = pos
    while (match := pattern.match(text, end)) and match.end() > end:
        end = match.end()
    return end


def _last_lines(text: str, start: int, end: int, count: int) -> list[str]:
    """The last `count` non-blank lines of text[start:end] (a run may end with blank lines)."""
    return text[start:end].rstrip(" \t\n").rsplit("\n", count)[-count:]


def _marked(text: str, start: int, end: int) -> bool:
    return text.find(FORM_MARKER, start, end) != -1


# A blockquote line: its `>` markers (nested ones too), then its content.
_QUOTE_MARKERS = re.compile(r"[ \t]*>(?:[ \t>]*>)?[ ]?")
# All of a line's `>` markers, never fewer, as one run of characters (not a repeated group: half a million
# markers on one line must cost what half a million letters do). With `[ ]?` after each `>` and blanks before
# it, `> > > ...` could be split in 2^n ways, and a failed match tried them all.
_MARKERS = r"[ \t]*>(?:[ \t>]*>)?(?![ \t]*>)"
# Quote lines with the same markers whose content is paragraph text, each with the lazy lines continuing it: a
# paragraph stays open throughout. `m` holds the markers (their depth).
_QUOTED_PARAGRAPH = re.compile(r"(?P<m>" + _MARKERS + ")" + _PLAIN + "(?:" + _PLAIN + ")" + _SOME + "(?:(?P=m)"
                               + _PLAIN + "(?:" + _PLAIN + ")" + _SOME + ")" + _SOME)
# Quote lines with no content, or a heading: no paragraph is open after them.
_QUOTE_LINES_CLOSED = re.compile(r"(?:" + _MARKERS + r"(?:[ ]{0,3}#{1,6}(?:[ \t][^\n]*)?)?[ \t]*" + _EOL + ")"
                                 + _MANY)
# Fenced code inside a quote, from its opening line to its closing one.
_QUOTED_FENCES = re.compile(
    r"(?:" + _MARKERS + r"[ ]{0,3}(?:(?P<b>`{3,})[^`\n]*\n(?:" + _MARKERS + r"(?![ ]{0,3}(?P=b))[^\n]*\n)" + _SOME
    + _MARKERS + r"[ ]{0,3}(?P=b)`*|(?P<t>~{3,})[^\n]*\n(?:" + _MARKERS + r"(?![ ]{0,3}(?P=t))[^\n]*\n)" + _SOME
    + _MARKERS + r"[ ]{0,3}(?P=t)~*)[ \t]*" + _EOL + ")" + _MANY)


def _blockquote(text: str, pos: int) -> tuple[int, bool]:
    """Where a blockquote that starts at `pos` ends: after its `>` lines and the lazy lines that continue a
    paragraph still open inside it (CommonMark's "paragraph continuation text"). Which inner block is open
    is followed line by line, roughly: paragraphs, blank lines, headings, fences, HTML, indented code.
    And whether the form's marker is in it outside code (as markdown-it sees text and HTML, not code)."""
    n, at, marked = len(text), pos, False
    paragraph = False  # the innermost open block: a paragraph, or
    fence = None  # a fence: (its character, its length, the depth it opened at)
    html = None  # an HTML block: (the depth it opened at, what ends it; None: a blank line)
    depth = 1  # how many `>` the last quote line had
    while at < n:
        if fence is None and html is None:  # runs of quote lines whose effect is known, at once
            match = _QUOTED_PARAGRAPH.match(text, at)
            if match:
                # A paragraph open in a deeper quote takes shallower quote lines as its lazy lines.
                depth = max(depth, match.group("m").count(">")) if paragraph else match.group("m").count(">")
                paragraph = True
                marked, at = marked or _marked(text, at, match.end()), match.end()
                continue
            match = _QUOTE_LINES_CLOSED.match(text, at)
            if match:
                paragraph = False
                marked, at = marked or _marked(text, at, match.end()), match.end()
                continue
            match = _QUOTED_FENCES.match(text, at)
            if match:
                paragraph, at = False, match.end()
                continue
        end = _line_end(text, at)
        line = text[at:end]
        stripped = line.lstrip(" \t")
        if stripped[:1] != ">":  # a lazy line, only where a paragraph is open
            # Inside a nested quote its indentation no longer makes it code: `# x` ends the quote (markdown-it).
            if not stripped or not paragraph or _interrupts(line if depth < 2 else stripped, stripped):
                break
            marked, at = marked or FORM_MARKER in line, end + 1
            continue
        expanded = line.expandtabs(4)  # CommonMark's tab stops: a tab after `>` is partly its optional space
        markers = _QUOTE_MARKERS.match(expanded).group(0)
        deeper, depth, content = depth, markers.count(">"), expanded[len(markers):]
        bare = content.lstrip(" \t")
        code = False  # the line is code (a fence's, or indented): its text is not read
        if html is not None and depth < html[0]:
            html = None  # the quote that held it ended (neither takes lazy lines)
        if fence is not None and depth < fence[2]:
            fence = None
        if html is not None:  # its lines are HTML, whatever they look like, until what ends it
            if (not bare) if html[1] is None else html[1].search(content):
                html = None
            paragraph = False
        elif fence is not None:
            mark = _FENCE_OPEN.match(content)
            if mark and mark.group(1)[0] == fence[0] and len(mark.group(1)) >= fence[1] and \
                    not content.strip(" \t").strip(fence[0]):
                fence = None
            paragraph, code = False, True
        elif paragraph and depth < deeper and bare and not _interrupts(content, bare):
            depth = deeper  # a lazy line of the deeper quote's paragraph: never code, nor an underline
        elif not bare:
            paragraph = False
        elif _indent(content) >= 4:
            code = not paragraph  # indented code, or a paragraph's continuation: whichever was open stays so
        elif bare[0] == "#" and _ATX_START.match(content):
            paragraph = False
        elif bare[0] in "`~" and _FENCE_OPEN.match(content):
            mark = _FENCE_OPEN.match(content).group(1)
            fence, paragraph, code = (mark[0], len(mark), depth), False, True
        elif bare[0] == "<" and (kind := _html_kind(bare)) is not None and (kind <= 6 or not paragraph):
            ender = _HTML_KINDS[kind - 1][1]
            if ender is None or not ender.search(bare):
                html = (depth, ender)
            paragraph = False
        elif paragraph and _UNDERLINE_RE.match(content):
            paragraph = False  # a setext heading
        else:
            paragraph = True
        marked, at = marked or (not code and FORM_MARKER in content), end + 1
    return min(at, n), marked


def _block(text: str, pos: int, end: int, line: str, stripped: str, items: list[tuple[str, str]],
           para: list[str]) -> tuple[int, bool]:
    """One block starting at the line text[pos:end], by CommonMark's rules in markdown-it's order."""
    n, nxt = len(text), end + 1  # never indented code: _run takes every run of it, an open paragraph its lines
    c = stripped[0]
    if c in "`~":
        fence = _FENCE_OPEN.match(line)
        if fence:
            mark = fence.group(1)
            close = re.compile(r"^[ ]{0,3}" + re.escape(mark[0]) + "{" + str(len(mark)) + r",}[ \t]*$", re.M)
            found = close.search(text, min(nxt, n))
            return (n if found is None else found.end() + 1), False
    if c == ">":
        return _blockquote(text, pos)
    if c == "<":
        kind = _html_kind(stripped)
        if kind is not None:
            ender = _HTML_KINDS[kind - 1][1]
            if ender is None:  # kinds 6 and 7 end at a blank line
                blank = re.compile(r"\n[ \t]*(?:\n|\Z)").search(text, end)
                stop = n if blank is None else blank.start() + 1
            elif ender.search(stripped):
                stop = nxt
            else:  # kinds 1-5 end on the line holding their end mark (none spans lines)
                found = ender.search(text, nxt) if nxt < n else None
                stop = n if found is None else _line_end(text, found.start()) + 1
            return min(stop, n), _marked(text, pos, min(stop, n))
    if c == "#" and _ATX_START.match(line):
        items.append(("heading", _atx_text(line)))
        return nxt, FORM_MARKER in line
    para.append(line)
    return nxt, False


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
    """A month named as _MONTH_ALT allows (whole, three letters, or "sept"): its first three letters say which."""
    return _MONTH_BY_PREFIX[name.lower()[:3]]


_TASK_PREFIX = r"^[ \t]*(?:[-*+]|\d+[.)])[ \t]+\["
_TICKED = {word: (re.compile(_TASK_PREFIX + r"[ xX]\][^\n]*" + word, re.M | re.I),
                  re.compile(_TASK_PREFIX + r" \][^\n]*" + word, re.M | re.I))
           for word in ("(?:paid|prospect)", "screenshot")}


def _parse_checklist(texts: list[str]) -> Checklist:
    """Each item is done when a task line names it and every task line naming it is ticked. Searched over
    all lines at once: a hostile checklist can hold a hundred thousand task lines."""
    lines = "\n".join(texts)

    def done(word: str) -> bool:
        named, unticked = _TICKED[word]
        return named.search(lines) is not None and unticked.search(lines) is None

    return Checklist(paid_plan=done("(?:paid|prospect)"), screenshots=done("screenshot"))


# --- the whole document ------------------------------------------------------------------------------

def parse(text: str, ticket_base_url: str = "https://gitlab.zendesk.com") -> ParseResult:
    """Parse an issue description; every problem is reported at once, as field errors. The same description
    asked twice (whether it is a request, then what it asks) is read once: the result is immutable."""
    return _parse_once(text if isinstance(text, str) else "", ticket_base_url)


@functools.lru_cache(maxsize=8)
def _parse_once(text: str, ticket_base_url: str) -> ParseResult:
    gc_was_on = gc.isenabled()
    gc.disable()  # a hostile description makes a token or line per block: collections made it superlinear
    try:
        return _parse(text, ticket_base_url)
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
                           ticket_id=ticket[1] if ticket else None, email=email, user_count=users,
                           expired_on=expired_on)
    # The link the bot writes is the one it builds: the typed URL only said which ticket (and policy checks it).
    request = LicenseRequest(ticket_url=tickets.agent_url(ticket_base_url, ticket[1]), ticket_id=ticket[1],
                             email=email, user_count=users,
                             expired_on=expired_on, checklist=checklist, notes="\n".join(found["notes"]).strip())
    return ParseResult(request, (), has_marker, checklist, ticket_url=ticket[0], ticket_id=ticket[1], email=email,
                       user_count=users, expired_on=expired_on)
