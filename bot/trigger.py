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
    except ValueError:
        return Decision(None, "ignored: TRIGGER_PAYLOAD is not JSON")
    if not isinstance(payload, dict) or payload.get("object_kind") != "issue":
        kind = payload.get("object_kind") if isinstance(payload, dict) else None
        return Decision(None, f"ignored: not an issue event ({kind or 'no object_kind'})")
    where = payload.get("project") or {}
    # Paths compare as GitLab resolves them, ignoring case (app/models/concerns/routable.rb): a config that writes
    # the project as Support/Internal-Requests means the same project, and must not ignore every event.
    if str(project).casefold() not in (str(where.get("path_with_namespace")).casefold(), str(where.get("id"))):
        return Decision(None, f"ignored: an event on {where.get('path_with_namespace')}, not on {project}")
    actor = (payload.get("user") or {}).get("username")
    if bot_username and actor == bot_username:
        return Decision(None, "ignored: the event was caused by the bot itself")
    iid = (payload.get("object_attributes") or {}).get("iid")
    if not isinstance(iid, int):
        return Decision(None, "ignored: the event names no issue")
    return Decision(iid, f"issue #{iid} changed by {actor or 'someone'}")
