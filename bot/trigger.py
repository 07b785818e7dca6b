"""Which issue a webhook-triggered pipeline should process. Pure: the payload in, a decision out.

A project webhook on issue events starts a pipeline with the event in TRIGGER_PAYLOAD. Requests are
confidential, and GitLab sends a confidential issue's events only to webhooks with "Confidential issues
events" on, with `object_kind` "issue" and `event_type` "confidential_issue" (Webhook events docs), so
both kinds are read. Only issue events on the tracker that the bot itself did not cause lead anywhere;
the bot's own edits fire events too, and reacting to them would loop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Decision:
    iid: int | None
    reason: str


def decide(payload_text: str, project: str, bot_username: str | None) -> Decision:
    try:
        payload: Any = json.loads(payload_text)
    except ValueError as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        return Decision(None, f"ignored: TRIGGER_PAYLOAD is not JSON{where}")
    except RecursionError:  # json's C decoder recurses per level: 100,000 levels of [ end here
        return Decision(None, "ignored: TRIGGER_PAYLOAD is nested too deeply to be a webhook event")
    if not isinstance(payload, dict) or payload.get("object_kind") != "issue":
        kind = payload.get("object_kind") if isinstance(payload, dict) else None
        return Decision(None, f"ignored: not an issue event ({_name(kind) or 'no object_kind'})")
    where, user, attributes = (_mapping(payload, key) for key in ("project", "user", "object_attributes"))
    if where is None or user is None or attributes is None:
        wrong = next(k for k, v in (("project", where), ("user", user), ("object_attributes", attributes)) if v is None)
        return Decision(None, f"ignored: TRIGGER_PAYLOAD's {wrong} is not an object, as GitLab sends it")
    # Paths compare as GitLab resolves them, ignoring case (app/models/concerns/routable.rb): a config that writes
    # the project as Support/Internal-Requests means the same project, and must not ignore every event.
    if str(project).casefold() not in (str(where.get("path_with_namespace")).casefold(), str(where.get("id"))):
        return Decision(None, f"ignored: an event on {_name(where.get('path_with_namespace'))}, not on {project}")
    actor = user.get("username")
    if bot_username and actor == bot_username:
        return Decision(None, "ignored: the event was caused by the bot itself")
    iid = attributes.get("iid")
    if type(iid) is not int or iid < 1:  # true is an int to Python, and issue #True is nothing
        return Decision(None, "ignored: the event names no issue (object_attributes.iid is not a positive number)")
    return Decision(iid, f"issue #{iid} changed by {_name(actor) or 'someone'}")


def _mapping(payload: dict, key: str) -> dict | None:
    """The object under `key`; missing is an empty one, anything but an object is None."""
    value = payload.get(key)
    return {} if value is None else value if isinstance(value, dict) else None


def _name(value: Any) -> str | None:
    """A name from the payload for a log line: short text only (it is whatever the sender put there)."""
    return value[:100] if isinstance(value, str) else None if value is None else f"a {type(value).__name__}"
