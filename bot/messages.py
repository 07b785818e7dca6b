"""Every text the bot writes for people — titles, notes, emails, Slack — rendered from templates/.

Pure: values in, text out.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from . import resources
from .request import FieldError

FIELD_NAMES = {
    "form": "Request form",
    "ticket": "Zendesk ticket",
    "email": "Customer email",
    "user_count": "User count",
    "expired_on": "License expiration date",
    "checklist": "Checklist",
    "author": "Requester",
}


@lru_cache(maxsize=1)
def environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(resources.templates_dir())),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(name: str, **values) -> str:
    return environment().get_template(name).render(field_names=FIELD_NAMES, **values)


def failure(author: str | None, errors: Sequence[FieldError], warnings: Sequence[FieldError] = ()) -> str:
    """The comment telling a request's author what to fix."""
    return render("failure.md.j2", author=author, errors=errors, warnings=warnings).strip() + "\n"
