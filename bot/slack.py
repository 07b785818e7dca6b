"""Posting to the licensing Slack channel through an incoming webhook (the workflow's last step)."""

from __future__ import annotations

import re
from typing import Protocol

import requests

from . import meaning
from .errors import BotError


class SlackError(BotError):
    pass


class Notifier(Protocol):
    def post(self, text: str) -> None: ...


class SlackWebhook:
    def __init__(self, webhook_url: str, channel: str, timeout_seconds: int):
        self._url, self.channel, self.timeout = webhook_url, channel, timeout_seconds

    def post(self, text: str) -> None:
        try:
            response = requests.post(self._url, json={"text": text, "channel": self.channel}, timeout=self.timeout)
        except requests.RequestException as exc:
            # The exception text can carry the webhook URL, which is a secret: name only its kind.
            raise SlackError(f"Slack could not be reached ({type(exc).__name__})") from None
        if response.status_code >= 300:
            # Slack's webhook errors are short names (no_service, invalid_token, channel_not_found): kept, as the
            # code is; any other body (a proxy's page) is not.
            name = response.text.strip()[:60]
            said = f", {name}" if re.fullmatch(r"[a-z_]+", name) else ""
            raise SlackError(meaning.http("Slack", response.status_code).removesuffix(")") + said + ")")
