"""What may reach a terminal: text with no control characters and no escape sequences. Pure.

Issue titles, request fields and recorded ticket URLs are written by anyone who can file an issue, and a
terminal obeys what it is sent: ESC c resets it, ESC ] 0 ; retitles its window, an OSC 8 sequence turns the
following text into a link to anywhere, a lone CR or backspaces overwrite what came before. So everything the
CLI prints goes through `clean` (bot/cli.py, main): escape sequences are removed whole, then every remaining C0
control except newline and tab, DEL, every C1 control, and the bidirectional overrides that make a line read in
another order than it is stored. Text cut to a length is cleaned first (`cut`), so a cut can never leave a
sequence open.
"""

from __future__ import annotations

import re

_STRING_END = r"(?:\x07|\x1b\\|\x9c)"  # BEL or ST (ESC \ or its 8-bit form) ends OSC, DCS, SOS, PM and APC
_SEQUENCE = re.compile(
    rf"\x1b\][^\x07\x1b\x9c\n]*{_STRING_END}?"      # OSC: window titles, OSC 8 hyperlinks, clipboard writes
    rf"|\x1b[PX^_][^\x1b\x9c\n]*{_STRING_END}?"     # DCS, SOS, PM, APC strings
    r"|\x1b\[[0-?]*[ -/]*[@-~]?"                    # CSI: cursor moves, erase screen, colours
    r"|\x1b[ -/]*[0-~]?"                            # every other escape: ESC c (reset), ESC 7, ESC ( B ...
    rf"|\x9d[^\x07\x1b\x9c\n]*{_STRING_END}?"       # the same in their 8-bit (C1) forms
    rf"|[\x90\x98\x9e\x9f][^\x1b\x9c\n]*{_STRING_END}?"
    r"|\x9b[0-?]*[ -/]*[@-~]?"
)
# C0 but tab and newline, DEL, C1; bidi embeddings, overrides and isolates; lone surrogates (undecodable bytes).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def clean(text: str) -> str:
    """TEXT as a terminal may show it: the same printable characters, nothing it would obey."""
    if text.isprintable():  # the usual case: nothing to do
        return text
    text = _SEQUENCE.sub("", text)
    text = _CONTROL.sub("", text)
    return _SURROGATE.sub("\ufffd", text)


def cut(text: str, limit: int) -> str:
    """TEXT cleaned, then at most LIMIT characters, with … where it was cut."""
    text = clean(text)
    return text if len(text) <= limit else text[:max(limit - 1, 0)] + "…"


# --- fitting the terminal ------------------------------------------------------------------------------------

def wrap(text: str, width: int) -> str:
    """TEXT with each line wrapped at WIDTH columns, continuation lines indented two more than the line.

    Only at spaces: a URL, an address or a host:port is never split (a longer one overflows on its own line,
    so it still copies and clicks whole). Lines that fit are untouched, so do lines with no space to break at.
    """
    import textwrap

    out = []
    for line in text.split("\n"):
        if len(line) <= width or " " not in line.strip():
            out.append(line)
            continue
        indent = line[:len(line) - len(line.lstrip(" "))]
        out.append(textwrap.fill(line.strip(" "), max(width, len(indent) + 20), initial_indent=indent,
                                 subsequent_indent=indent + "  ", break_long_words=False, break_on_hyphens=False,
                                 drop_whitespace=True))
    return "\n".join(out)


# What the CLI's own symbols become on an output that cannot show them (PYTHONIOENCODING=ascii, a C locale).
_ASCII = str.maketrans({"✓": "+", "✗": "x", "⚠": "!", "–": "-", "—": "-", "…": "...", "’": "'", "‘": "'",
                        "“": '"', "”": '"', "→": "->", "×": "x", "\u00a0": " "})


def encodable(text: str, encoding: str | None) -> str:
    """TEXT as an output of ENCODING can take it: the CLI's symbols spelled in ASCII, anything else as `?`."""
    if not encoding:
        return text
    try:
        text.encode(encoding)
        return text
    except (UnicodeEncodeError, LookupError):
        pass
    text = text.translate(_ASCII)
    try:
        return text.encode(encoding, errors="replace").decode(encoding)
    except LookupError:
        return text.encode("ascii", errors="replace").decode("ascii")
