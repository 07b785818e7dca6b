"""Reminders before a trial ends (issue 21): which licenses are due a reminder today, and its words. Pure.

A license is due from `days_before` days before it expires until the day before it expires (a missed run is
caught up; an expired license is never reminded). The run (bot/runner.py, `remind`) does the rest once per
license: the bot's :alarm_clock: reaction on the license's record entry issue claims it, the note carries a
hidden marker with the license id, and the bot's :bell: reaction there says it is done.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

CLAIM_EMOJI = "alarm_clock"  # the bot's own reaction: nobody below the bot can add or remove it
DONE_EMOJI = "bell"          # the note is posted: later runs only read the entry's reactions
_MARKER = "<!-- license-bot:reminder {license_id} -->"
_MARKER_RE = re.compile(r"<!-- license-bot:reminder ([0-9a-f]{16}) -->")


@dataclass(frozen=True)
class Reminder:
    license_id: str
    entry_iid: int      # the record entry issue: the claim and done reactions live there
    request_iid: int    # the [Success] request issue: the note goes there
    request_url: str
    requester: str      # the request's author's username
    email: str
    ticket_url: str | None
    expires_on: date


def due(entries, today: date, days_before: int) -> list[tuple[int, str]]:
    """(entry issue, license id) of each verified license inside its reminder window today."""
    out = []
    for recorded in entries:
        expires = date.fromisoformat(recorded.entry.expires_on)
        if expires - timedelta(days=days_before) <= today < expires and recorded.entry.seq > 0:
            out.append((recorded.where, recorded.entry.license_id))
    return out


def window_start(today: date, max_duration_days: int) -> date:
    """The oldest day a record entry may have been opened and its license still be due today: a license expires at
    most `max_duration_days` (the longest trial the configuration allows, so also one made before `duration_days`
    was shortened) after the day it was made, and is due only before then; one day more for clocks and time
    zones. An entry opened earlier can never be due."""
    return today - timedelta(days=max_duration_days + 1)


def candidates(issues, today: date, days_before: int) -> list[int]:
    """Of these (issue iid, description) pairs (the bot's recent issues, not yet verified), the issues whose entry
    may be inside its reminder window today. Only a filter in front of the verified record: a license the record
    verifies as due is always among them (its entry issue holds it as the bot wrote it; an edited entry is damage,
    and damage reminds no one), and nothing is said from them."""
    from .record import parse_entry

    out = []
    for iid, text in issues:
        parsed = parse_entry(text or "")
        if parsed is None:
            continue  # not an entry (the home issue), or one the verified read reports as damage
        entry = parsed[0]
        expires = date.fromisoformat(entry.expires_on)  # parse_entry checked it, and every field's type
        if entry.seq > 0 and expires - timedelta(days=days_before) <= today < expires:
            out.append(iid)  # in the window: the verified record decides
    return out


def marker(license_id: str) -> str:
    return _MARKER.format(license_id=license_id)


def posted(bodies, license_id: str) -> bool:
    """Whether one of these (the bot's own) notes is this license's reminder."""
    return any(license_id in _MARKER_RE.findall(body or "") for body in bodies)


def note_text(reminder: Reminder, today: date) -> str:
    from .messages import render

    return render("reminder_note.md.j2", r=reminder, days=(reminder.expires_on - today).days).strip()


def slack_text(reminder: Reminder, today: date) -> str:
    from .messages import render

    return render("reminder_slack.txt.j2", r=reminder, days=(reminder.expires_on - today).days).strip()
