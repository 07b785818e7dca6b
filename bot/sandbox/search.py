"""How GitLab searches issues: PostgreSQL full-text search, in three generations of GitLab's code.

GitLab facts mirrored here (gitlabhq: app/models/concerns/pg_full_text_searchable.rb,
lib/gitlab/sql/pattern.rb; docs: "Issues API", `search` and `in`):
- each issue is indexed as setweight(to_tsvector('english', title), 'A') ||
  setweight(to_tsvector('english', description), 'B'), after GitLab's own clean-up of the text;
- a query is split into terms (a "quoted phrase" stays one term); each term becomes a prefix match
  `term:*` on the chosen columns' weights, an all-digit term N matches N or -N, terms are AND-ed,
  and the whole is parsed by to_tsquery('english', ...);
- v1 (before about 16.6): the URL scheme is removed from the query and characters outside
  [a-zA-Z0-9 .@/-"] become spaces; text inside HTML tags and comments is not indexed;
- v2 (about 16.6 on): `</?([^>]+)>` is unwrapped to ' \\1 ' before indexing; the query keeps `_` too;
- v3 (newest): indexed as v2; each query term is quoted, not filtered.

PostgreSQL's default text-search parser is emulated for the shapes request text has: words (with
hyphens), numbers (a '-' after a word makes a signed int), emails, URLs with or without a scheme
(url, host and url_path tokens), file paths, HTML tags and comments. It was checked against a real
PostgreSQL 15 by tests/test_sandbox_search.py; shapes it does not mirror: non-ASCII words beyond
letters, floats in scientific notation inside words, and `file` tokens such as `b.c`.
Stemming is Snowball's English stemmer, as PostgreSQL's english_stem dictionary uses.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

GENERATIONS = ("v1", "v2", "v3")

# PostgreSQL's english.stop (tsearch_data/english.stop): stop words take a position but make no lexeme.
STOP_WORDS = frozenset("""
i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers
herself it its itself they them their theirs themselves what which who whom this that these those am is are
was were be been being have has had having do does did doing a an the and but if or because as until while of
at by for with about against between into through during before after above below to from up down in out on
off over under again further then once here there when where why how all any both each few more most other
some such no nor not only own same so than too very s t can will just don should now""".split())  # noqa: SIM905

# The english configuration's mapping: these token types go through english_stem, these through simple.
_STEMMED = {"asciiword", "word", "numword", "asciihword", "hword", "numhword", "hword_asciipart", "hword_part",
            "hword_numpart"}
_SIMPLE = {"email", "url", "host", "url_path", "file", "sfloat", "float", "int", "uint", "version"}

# --- PostgreSQL's default parser, for request-shaped text ------------------------------------------

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST = rf"(?:{_LABEL}\.)+[A-Za-z]{{2,}}(?![A-Za-z0-9-])(?::\d+)?"
_PATH = r"/[^\s<>\"|`{}\\^]+"
_TAG_RE = re.compile(r"<!--.*?-->|</?[A-Za-z][A-Za-z0-9_:.-]*(?:\s[^<>]*)?/?>", re.S)
_PROTOCOL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_URL_RE = re.compile(rf"({_HOST})({_PATH})?")
_EMAIL_RE = re.compile(rf"[A-Za-z0-9](?:[A-Za-z0-9_]|[.-](?=[A-Za-z0-9_]))*@({_HOST})")
# A path segment: dots only between characters (PostgreSQL ends `/agent/tickets/5.` and `/a/b/` before the
# last dot or slash, and `/a..b` at the first dot; `self-managed/x` is a word, then a path).
_SEG = r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_][A-Za-z0-9_-]*)*"
_FILE_RE = re.compile(rf"(?:~|\.)?/\.?{_SEG}(?:/\.?{_SEG})*|[A-Za-z0-9]+(?:\.[A-Za-z0-9_]+)*(?:/\.?{_SEG})+")
_VERSION_RE = re.compile(r"\d+(?:\.\d+){2,}(?![\w.])")
_FLOAT_RE = re.compile(r"-?\d+\.\d+(?![\w])")
_INT_RE = re.compile(r"-\d+(?![A-Za-z_\d])")
_UINT_RE = re.compile(r"\d+(?![A-Za-z\d])")
_PLUS_NUMBER_RE = re.compile(r"\+\d+(?:\.\d+)?")
_WORD_RE = re.compile(r"[^\W_]+")  # letters and digits
_COMPOUND_RE = re.compile(r"[^\W_]+(?:-[^\W_]*[^\W\d_][^\W_]*)+|[^\W_]*[^\W\d_][^\W_]*(?:-[^\W_]+)+")


def _word_type(word: str, compound: bool = False) -> str:
    has_digit = any(c.isdigit() for c in word)
    ascii_only = word.isascii()
    if compound:
        return "numhword" if has_digit else ("asciihword" if ascii_only else "hword")
    return "numword" if has_digit else ("asciiword" if ascii_only else "word")


def tokens(text: str) -> list[tuple[str, str]]:
    """(type, token) for every token PostgreSQL's parser would index or skip visibly; blanks left out."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    after_word = False  # a '-' right after a simple word starts a signed int ("ticket-5" -> ticket, -5)
    while i < n:
        c = text[i]
        if c == "<":
            m = _TAG_RE.match(text, i)
            if m:
                out.append(("tag", m.group(0)))
                i, after_word = m.end(), False
                continue
        if c.isalnum():
            m = _PROTOCOL_RE.match(text, i)
            if m:
                rest = _URL_RE.match(text, m.end())
                out.append(("protocol", m.group(0)))
                i = m.end()
                if rest:
                    i = _emit_url(out, rest)
                after_word = False
                continue
            m = _EMAIL_RE.match(text, i)
            if m:
                out.append(("email", m.group(0)))
                i, after_word = m.end(), False
                continue
            m = _URL_RE.match(text, i)
            if m and (m.group(2) or not text[i].isdigit()):
                i, after_word = _emit_url(out, m), False
                continue
            m = _FILE_RE.match(text, i)
            if m and "/" in m.group(0):
                out.append(("file", m.group(0)))
                i, after_word = m.end(), False
                continue
            for kind, pattern in (("version", _VERSION_RE), ("float", _FLOAT_RE), ("uint", _UINT_RE)):
                m = pattern.match(text, i)
                if m:
                    out.append((kind, m.group(0)))
                    i, after_word = m.end(), False
                    break
            else:
                m = _COMPOUND_RE.match(text, i)
                if m and not re.fullmatch(r"[^\W_]+(?:-\d+)+", m.group(0)):
                    word = m.group(0)
                    out.append((_word_type(word, compound=True), word))
                    for part in word.split("-"):
                        if part:
                            out.append(("hword_numpart" if any(ch.isdigit() for ch in part) else
                                        "hword_asciipart" if part.isascii() else "hword_part", part))
                    i, after_word = m.end(), False
                    continue
                m = _WORD_RE.match(text, i)
                word = m.group(0)
                out.append((_word_type(word), word))
                i, after_word = m.end(), True
            continue
        if c in "/~." and (m := _FILE_RE.match(text, i)) and len(m.group(0)) > 1 and m.group(0) != "./":
            out.append(("file", m.group(0)))
            i, after_word = m.end(), False
            continue
        if c == "+" and i + 1 < n and text[i + 1].isdigit():  # "+8" is a signed number, whatever follows it
            m = _PLUS_NUMBER_RE.match(text, i)
            out.append(("float" if "." in m.group(0) else "int", m.group(0)))
            i, after_word = m.end(), False
            continue
        if c == "-" and i + 1 < n and text[i + 1].isdigit() and (after_word or i == 0 or not text[i - 1].isalnum()):
            m = _FLOAT_RE.match(text, i) or _INT_RE.match(text, i)
            if m:
                out.append(("float" if "." in m.group(0) else "int", m.group(0)))
                i, after_word = m.end(), False
                continue
        i, after_word = i + 1, False
    return out


def _emit_url(out: list[tuple[str, str]], m: re.Match) -> int:
    host, path = m.group(1), m.group(2)
    if path:
        out += [("url", host + path), ("host", host), ("url_path", path)]
        return m.end()
    out.append(("host", host))
    return m.end(1)


@lru_cache(maxsize=4096)
def _stem(word: str) -> str:
    import snowballstemmer  # the sandbox only

    return snowballstemmer.stemmer("english").stemWord(word)


def lexemes(text: str) -> list[tuple[str | None, int]]:
    """to_tsvector('english', text) before it is folded: (lexeme, position); None for a stop word."""
    out, position = [], 0
    for kind, token in tokens(text):
        if kind not in _STEMMED and kind not in _SIMPLE:
            continue
        if len(token.encode()) > 2047:  # PostgreSQL: "word is too long to be indexed"
            continue
        position += 1
        low = token.lower()
        if kind in _STEMMED:
            out.append((None if low in STOP_WORDS else _stem(low), position))
        else:
            out.append((low, position))
    return out


# --- GitLab's clean-up of indexed text and queries ---------------------------------------------------

_LONG_WORDS_RE = re.compile(r"[A-Za-z0-9+/@]{50,}")
_XML_TAG_RE = re.compile(r"</?([^>]+)>")
_URL_SCHEME_RE = re.compile(r"(?:(?<=\A)|(?<=\W))\w+://(?=\w+)")
_QUOTED_TERM_RE = re.compile(r"(?:(?<=\A)|(?<= ))\"[^\"]+\"(?= |\Z)")
_DISALLOWED = {"v1": re.compile(r"[^a-zA-Z0-9 .@/\-\"]"), "v2": re.compile(r"[^a-zA-Z0-9 .@/\-\"_]")}


def transliterate(text: str) -> str:
    """ActiveSupport::Inflector.transliterate: accents dropped, what has no ASCII form becomes '?'."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c if c.isascii() else "?" for c in decomposed if not unicodedata.combining(c))


def indexed_text(text: str, generation: str) -> str:
    text = _LONG_WORDS_RE.sub(" ", text or "")[:1_048_576]
    text = transliterate(text)
    if generation != "v1":
        text = _XML_TAG_RE.sub(r" \1 ", text)
    return text


class QueryError(ValueError):
    """A query GitLab hands to PostgreSQL as a tsquery it cannot parse: GitLab answers 500."""


@dataclass(frozen=True)
class Operand:
    """One to_tsquery operand: lexemes at relative positions (a phrase when several), prefix or not."""

    lexemes: tuple[tuple[str, int], ...]
    prefix: bool


def _operand(text: str, prefix: bool) -> Operand | None:
    found = [(lexeme, pos) for lexeme, pos in lexemes(text) if lexeme is not None]
    if not found:
        return None  # PostgreSQL: "contains only stop words or doesn't contain lexemes, ignored"
    first = found[0][1]
    return Operand(tuple((lexeme, pos - first) for lexeme, pos in found), prefix)


def _phrase(words: list[str]) -> Operand | None:
    """A quoted phrase, `'w1':AB <-> 'w2':AB <-> …` as to_tsquery reads it: each word stands for all its
    lexemes in a row (a URL is url <-> host <-> path, `ticket-5` is ticket <-> -5); a word without lexemes
    (a stop word, `-`, `###`) still takes its place, so `a <-> the <-> b` is `a <2> b`; at either end it
    is dropped."""
    found: list[tuple[str, int]] = []
    gap = 0
    for word in words:
        lexes = [(lexeme, pos) for lexeme, pos in lexemes(word) if lexeme is not None]
        if not lexes:
            gap += 1 if found else 0
            continue
        base = found[-1][1] + 1 + gap if found else 0
        first = lexes[0][1]
        found += [(lexeme, base + pos - first) for lexeme, pos in lexes]
        gap = 0
    return Operand(tuple(found), False) if found else None


def query_terms(query: str, generation: str) -> list[list[Operand]]:
    """The tsquery GitLab builds, as AND-ed terms, each an OR of operands."""
    if generation in _DISALLOWED:
        query = _URL_SCHEME_RE.sub("", query)
    query = transliterate(query)
    if generation in _DISALLOWED:
        query = _DISALLOWED[generation].sub(" ", query)
    quoted: list[str] = []

    def keep(m: re.Match) -> str:
        quoted.append(m.group(0)[1:-1])
        return ""
    query = _QUOTED_TERM_RE.sub(keep, query)
    terms: list[list[Operand]] = []
    for term in query.split() + quoted:
        if not term.strip():  # `" "`: GitLab joins no words into an empty operand, a tsquery syntax error
            raise QueryError("syntax error in tsquery")
        if term.isdigit() and term.isascii():
            options = [_operand(term, True), _operand("-" + term, True)]
        elif any(c.isspace() for c in term):
            options = [_phrase(term.split())]
        else:
            options = [_operand(term, True)]
        options = [o for o in options if o is not None]
        if options:
            terms.append(options)
    return terms


# --- matching --------------------------------------------------------------------------------------

def document(title: str, description: str, generation: str) -> dict[str, set[tuple[int, str]]]:
    """The issue's search vector: lexeme -> {(position, weight)}; the description follows the title."""
    vector: dict[str, set[tuple[int, str]]] = {}
    offset = 0
    for text, weight in ((title, "A"), (description, "B")):
        found = lexemes(indexed_text(text, generation))
        for lexeme, position in found:
            if lexeme is not None:
                vector.setdefault(lexeme, set()).add((offset + position, weight))
        offset += max((p for _, p in found), default=0)
    return vector


def _positions(vector: dict[str, set[tuple[int, str]]], lexeme: str, prefix: bool, weights: str) -> set[int]:
    keys = [k for k in vector if k.startswith(lexeme)] if prefix else ([lexeme] if lexeme in vector else [])
    return {p for k in keys for p, w in vector[k] if w in weights}


def _operand_matches(vector, operand: Operand, weights: str) -> bool:
    (first, _), rest = operand.lexemes[0], operand.lexemes[1:]
    starts = _positions(vector, first, operand.prefix, weights)
    for lexeme, offset in rest:
        found = _positions(vector, lexeme, operand.prefix, weights)
        starts = {p for p in starts if p + offset in found}
    return bool(starts)


def _latin(text: str) -> bool:
    return all(ord(c) < 0x250 or not c.isalpha() for c in text)


def matches(title: str, description: str, query: str, fields: list[str], generation: str = "v3") -> bool:
    """Whether GitLab's issue search (`search=query&in=fields`) answers this issue."""
    if not _latin(query):  # GitLab falls back to its fuzzy ILIKE search for non-Latin terms
        words = [w.lower() for w in query.split() if len(w) >= 3] or [query.lower()]
        texts = [(title if f == "title" else description).lower() for f in fields]
        return all(any(w in t for t in texts) for w in words)
    weights = "".join("A" if f == "title" else "B" for f in fields) or "AB"
    terms = query_terms(query, generation)
    if not terms:
        return False  # an empty tsquery matches nothing
    vector = document(title, description, generation)
    return all(any(_operand_matches(vector, op, weights) for op in term) for term in terms)
