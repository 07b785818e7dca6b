"""Every text the bot writes for people — titles, notes, emails, Slack — rendered from templates/.

Pure: values in, text out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from . import resources
from .actions import Actors, grouped
from .inert import Verbatim, inert
from .request import FieldError
from .status import MARKER, Status, encode_state

DEFAULT_ACTORS = Actors()

FIELD_NAMES = {
    "form": "Request form",
    "ticket": "Zendesk ticket",
    "email": "Customer email",
    "user_count": "User count",
    "expired_on": "Expiry date of the customer's expired license",
    "checklist": "Checklist",
    "author": "Requester",
    "override": "Override",
    "license": "License",
}


@lru_cache(maxsize=2)
def environment(for_gitlab: bool = False):
    """Templates; `for_gitlab` (what the bot writes on issues, `*.md.j2`): every value is made inert, so no
    outside text reaches a line start as a quick action, whatever field it came through."""
    # Imported here: an idle run renders nothing and should not pay for jinja2.
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=FileSystemLoader(str(resources.templates_dir())),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=(lambda v: inert(v) if isinstance(v, str) else v) if for_gitlab else None,
    )
    env.filters["sentence"] = sentence
    return env


def sentence(text: str) -> str:
    """TEXT starting with a capital, the rest as it was: Jinja's `capitalize` lower-cases the rest ([success])."""
    return text[:1].upper() + text[1:]


def render(name: str, **values) -> str:
    return environment(name.endswith(".md.j2")).get_template(name).render(field_names=FIELD_NAMES, **values)


def failure(author: str | None, errors: Sequence[FieldError], warnings: Sequence[FieldError] = (),
            actors: Actors = DEFAULT_ACTORS) -> str:
    """The comment telling who can act what to do: every problem, under the one who can solve it."""
    return render("failure.md.j2", author=author, groups=grouped(errors), warnings=warnings,
                  actors=actors).strip() + "\n"


def plain(text: str) -> str:
    """A message for the terminal: the Markdown a note uses (code spans, bold, label references) removed."""
    text = re.sub(r"~\"([^\"]+)\"", r"\1", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"\1", text)
    return text.replace("`", "'")


def as_text(note_body: str) -> str:
    """A note as a person reads it at a terminal: no hidden comments (marker, state), no Markdown marks, the
    details block and code fences as plain lines, a link as its text and then where it points."""
    text = re.sub(r"<!--.*?-->\n?", "", note_body, flags=re.S)
    text = re.sub(r"<details><summary>(.*?)</summary>", r"\1:", text)
    text = re.sub(r"^(```|</details>)\n", "", text, flags=re.M)
    text = re.sub(r"^:[a-z_]+: ", "", text, flags=re.M)  # GitLab's emoji shortcodes
    text = re.sub(r"\[([^\]\n]+)\]\(([^)\s]+)\)", r"\1 (\2)", text)
    return re.sub(r"\n{3,}", "\n\n", plain(text)).strip("\n")


def success_title(email: str, user_count: int) -> str:
    """The closed issue's title, exactly as the workflow tells engineers to search for it."""
    return f"[Success] - Created a license under {email} for {user_count} user{'' if user_count == 1 else 's'}"


_SUCCESS_TITLE_RE = re.compile(r"\[Success\] - Created a license under (\S+@\S+) for (\d+) users?")


def parse_success_title(title: str) -> tuple[str, int] | None:
    """(email, user count) of an exact success title; None for anything else, however similar."""
    match = _SUCCESS_TITLE_RE.fullmatch(title or "")
    return (match.group(1), int(match.group(2))) if match else None


def status_note(status: Status, *, key_text: str | None = None, labels: dict[str, str],
                duration_days: int, max_attempts: int, actors: Actors = DEFAULT_ACTORS) -> str:
    failure_text = failure(status.author, [FieldError(*e) for e in status.errors],
                           [FieldError(*w) for w in status.warnings], actors) if status.step == "rejected" else ""
    body = render("status_note.md.j2", marker=MARKER, status=status, failure=Verbatim(failure_text.strip()),
                  key_text=Verbatim(key_text) if key_text else key_text, labels=labels, duration_days=duration_days,
                  max_attempts=max_attempts, state=Verbatim(encode_state(status)))
    return re.sub(r"\n{3,}", "\n\n", body)


def slack_text(status: Status, issue_url: str, duration_days: int) -> str:
    return render("slack.txt.j2", status=status, issue_url=issue_url, duration_days=duration_days).strip()
