"""Helpers for end-to-end tests: the sandbox over real HTTP and SMTP, the bot as a real process."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path

import gitlab
import yaml

from bot import resources
from bot import status as status_mod
from bot.demo import fill_template

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "support/internal-requests"
HANG_SECONDS = 60


class KillAt:
    """SIGKILLs a client at its `point`-th step — an API call (GitLab's or Zendesk's) or an email — while the
    in-process sandbox serves that step, before the client has its answer (only steps `when(method, path)`
    accepts count). The point is a step, not a time, so it is the same on a fast and on a loaded machine.

        killer = KillAt(server, 7); killer.start(bot.start); killer.finish()  # killer.killed: it was"""

    def __init__(self, server, point: int, when=None):
        self.server, self.point, self.when = server, point, when
        self.steps, self.killed, self.proc = 0, False, None
        self._started = threading.Event()

    def __call__(self, method: str, path: str) -> None:
        if self.when is not None and not self.when(method, path):
            return
        self._started.wait(60)  # the process object exists before its first step is judged
        self.steps += 1
        if self.steps == self.point and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()  # dead before the sandbox answers: the answer never reaches it
            self.killed = True

    def start(self, launch) -> subprocess.Popen:
        self.server.sandbox.on_step = self
        self.proc = launch()
        self._started.set()
        return self.proc

    def finish(self, timeout: float = 600) -> subprocess.Popen:
        self.proc.communicate(timeout=timeout)  # reads its output: a full pipe must not stall it
        self.server.sandbox.on_step = None
        return self.proc


def in_scope_date() -> str:
    """An expiry whose 14-day grace period ended today (UTC, as the bot sees it)."""
    return (datetime.now(timezone.utc).date() - timedelta(days=14)).isoformat()


def request_text(n: int = 1, **overrides) -> str:
    values = {"ticket": str(512000 + n), "email": f"admin{n}@customer{n}.example.com", "users": str(100 + n),
              "expired": in_scope_date(), "tick": True}
    values.update(overrides)
    return fill_template(values["ticket"], values["email"], values["users"], values["expired"], values["tick"])


@dataclass
class Bot:
    """The bot as CI runs it: `python -m bot --config FILE run`, in its own process."""

    url: str
    smtp_port: int
    workdir: Path
    private_key: Path
    public_key: Path

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.yaml"

    def write_config(self, requests: dict | None = None, zendesk: bool = False, **smtp) -> None:
        config = yaml.safe_load(resources.default_config().read_text())
        # Timeouts only guard against a hang: a loaded machine can stall a loopback answer for seconds, and
        # no test here waits for one to fire (the mailer's own tests set theirs).
        config["gitlab"].update(url=self.url, project=PROJECT, timeout_seconds=HANG_SECONDS)
        config["requests"].update(requests or {})
        if zendesk:  # the sandbox's Zendesk, at the same address
            config["zendesk"].update(enabled=True, url=self.url, email="bot@example.com", timeout_seconds=HANG_SECONDS)
        config["smtp"].update({"host": "127.0.0.1", "port": self.smtp_port, "security": "none", "username": None,
                               "timeout_seconds": HANG_SECONDS, **smtp})
        self.config_path.write_text(yaml.safe_dump(config))

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items()  # hermetic: nothing of the caller's CI or secrets
               if k != "CI" and not k.startswith(("LICENSE_", "GITLAB_", "SMTP_", "SLACK_", "CI_", "TRIGGER_",
                                                  "ZENDESK_"))}
        env.update(PYTHONPATH=str(ROOT), GITLAB_TOKEN="bot-token", LICENSE_PRIVATE_KEY_FILE=str(self.private_key),
                   ZENDESK_API_TOKEN="zendesk-token")
        return env

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "bot", "--config", str(self.config_path), "run", *args]

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:  # a hang guard only
        return subprocess.run(self.command(*args), capture_output=True, text=True, env=self.env(), timeout=timeout)

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(self.command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=self.env())


def client(url: str, token: str = "alice-token"):
    return gitlab.Gitlab(url, private_token=token, retry_transient_errors=True).projects.get(PROJECT)


def mail(url: str) -> list[dict]:
    with urllib.request.urlopen(f"{url}/sandbox/mail", timeout=60) as response:
        entries = json.load(response)
    for entry in entries:
        msg = message_from_bytes(base64.b64decode(entry["raw"]), policy=email_policy.default)
        entry["message"] = msg
        attachment = next(msg.iter_attachments(), None)
        entry["key"] = attachment.get_content().decode() if attachment else None
    return entries


def api_calls(url: str) -> int:
    with urllib.request.urlopen(f"{url}/sandbox/requests", timeout=60) as response:
        return json.load(response)["total"]


def post(url: str, path: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{url}{path}", method="POST", data=b""), timeout=60).read()


def status_notes(issue) -> list:
    return [n for n in issue.notes.list(get_all=True) if status_mod.is_status_note(n.body)
            and n.author["username"] == "license-bot"]


def license_keys(issue) -> set[str]:
    """Every distinct license key recorded in the issue's status notes."""
    return {status_mod.key_text(n.body) for n in status_notes(issue) if status_mod.key_text(n.body)}


def file(url: str, n: int, token: str = "alice-token", **fields):
    """Request n filed as the token's user (alice by default), with request_text's fields."""
    return client(url, token).issues.create({"title": f"Emergency license {n}",
                                             "description": request_text(n, **fields)})
