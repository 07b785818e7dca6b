"""`license-bot demo`: the whole workflow on this machine, without a GitLab account.

Starts the sandbox (GitLab, Zendesk) and its mail sink on free ports, makes a throwaway key pair,
opens two customer tickets in Zendesk, files from the real template a correct request as alice, one
whose email is not its ticket's requester, and a broken one as mallory; runs the same `license-bot run`
the pipeline runs, and shows what a person would look at, the internal note on the ticket included.
Exits 0 only if the outcome is right.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from datetime import date, datetime, timedelta, timezone
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path

import gitlab
import yaml

from . import keys, messages, resources
from . import license as lic_mod
from . import status as status_mod
from .sandbox import SandboxServer


def fill_template(ticket: str, email: str, users: str, expired: str, tick: bool = True) -> str:
    text = resources.issue_template().read_text(encoding="utf-8")
    for heading, value in [("### Zendesk ticket\n", ticket), ("### Customer email\n", email),
                           ("### User count\n", users), ("### License expiration date\n", expired)]:
        text = text.replace(heading, f"{heading}{value}\n", 1)
    return text.replace("- [ ]", "- [x]") if tick else text


def readable(note_body: str) -> str:
    """A status note as a person reads it: no hidden state, the key shortened."""
    body = note_body.replace(status_mod.MARKER, "")
    body = body.split("<!-- license-bot:state")[0]
    key = status_mod.key_text(body)
    if key:
        lines = key.splitlines()
        body = body.replace(key, "\n".join(lines[:2] + ["…"] + lines[-1:]))
    return body.strip()


def _zendesk(url: str, method: str, path: str, body: dict | bytes | None = None) -> dict:
    """A call to the sandbox's Zendesk as its agent (what a support engineer's Zendesk would hold)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else None
    auth = base64.b64encode(b"bot@example.com/token:zendesk-token").decode()
    request = urllib.request.Request(f"{url}{path}", method=method, data=data, headers={
        "Authorization": f"Basic {auth}",
        "Content-Type": "application/octet-stream" if isinstance(body, bytes) else "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"{}")


def _ticket(url: str, requester: str) -> int:
    """A customer's ticket with the two screenshots the checklist asks for."""
    tokens = [_zendesk(url, "POST", f"/api/v2/uploads?filename={name}", b"\x89PNG screenshot")["upload"]["token"]
              for name in ("dashboard.png", "subscription.png")]
    return _zendesk(url, "POST", "/api/v2/tickets", {"ticket": {
        "subject": "Our GitLab is read-only", "status": "open", "organization_id": 1,
        "requester": {"name": requester.split("@")[0], "email": requester},
        "comment": {"body": "Screenshots attached.", "uploads": tokens}}})["ticket"]["id"]


def _softhsm_token(work: Path) -> dict | None:
    """A fresh SoftHSM2 token in the demo's folder, if SoftHSM2 and python-pkcs11 are installed."""
    import glob
    import importlib.util
    import shutil

    module = next(iter(glob.glob("/usr/lib/softhsm/libsofthsm2.so") + glob.glob("/usr/lib/*/softhsm/libsofthsm2.so")),
                  None)
    if not module or not shutil.which("softhsm2-util") or importlib.util.find_spec("pkcs11") is None:
        return None
    (work / "tokens").mkdir()
    conf = work / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {work / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {"SOFTHSM2_CONF": str(conf), "LICENSE_SIGNER_PIN": "demo-pin-1234"}
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "demo", "--pin", env["LICENSE_SIGNER_PIN"],
                    "--so-pin", "demo-so-pin"], env={**os.environ, **env}, check=True, capture_output=True)
    return {"module": module, "env": env}


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def main(today: date | None = None) -> int:
    """The demo in a throwaway folder, removed at the end whatever happens: it holds a signing key (a SoftHSM
    token whose PIN is in this file, or a PEM private key) that must not outlive the demo."""
    import shutil

    work = Path(tempfile.mkdtemp(prefix="license-bot-demo-"))
    try:
        return _demo(today or datetime.now(timezone.utc).date(), work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _demo(today: date, work: Path) -> int:
    token_env = _softhsm_token(work)  # the signing key in a token where SoftHSM is installed, else a file
    if token_env is None:
        private_path, public_path = keys.write_pair(keys.generate(2048), work / "keys")
    with SandboxServer() as server:
        config = yaml.safe_load(resources.default_config().read_text())
        config["gitlab"].update(url=server.url, project="support/internal-requests")
        config["smtp"].update(host="127.0.0.1", port=server.smtp_port, security="none", username=None)
        config["zendesk"].update(enabled=True, url=server.url, email="bot@example.com")
        if token_env is not None:
            config["license"].update(signer="pkcs11", pkcs11={"module": token_env["module"], "token_label": "demo",
                                                              "key_label": "license-key"})
        config_path = work / "config.yaml"
        config_path.write_text(yaml.safe_dump(config))
        if token_env is not None:
            public_path = work / "license_key.pub"
            subprocess.run([sys.executable, "-m", "bot", "--config", str(config_path), "keygen", "--pkcs11", "--out",
                            str(work)], env={**os.environ, **token_env["env"]}, check=True, capture_output=True)
            print("Signing key: made inside a SoftHSM2 token (PKCS#11); it never leaves the token.")
        else:
            print("Signing key: a throwaway PEM file (install SoftHSM2 to see it held in a PKCS#11 token).")
        print(f"Sandbox GitLab and Zendesk at {server.url}, mail sink at 127.0.0.1:{server.smtp_port}, "
              f"files in {work} (removed at the end)\n")

        acme, other = _ticket(server.url, "jane.doe@example.com"), _ticket(server.url, "ops@globex.example")
        print(f"Zendesk tickets {acme} (from jane.doe@example.com) and {other} (from ops@globex.example).")
        expired = (today - timedelta(days=14)).isoformat()  # its grace period ended today: in scope
        alice = gitlab.Gitlab(server.url, private_token="alice-token").projects.get("support/internal-requests")
        good = alice.issues.create({"title": "Emergency license for ACME",
                                    "description": fill_template(str(acme), "jane.doe@example.com", "250", expired)})
        typo = alice.issues.create({"title": "Emergency license for Globex",
                                    "description": fill_template(str(other), "opps@globex.example", "80", expired)})
        mallory = gitlab.Gitlab(server.url, private_token="mallory-token").projects.get("support/internal-requests")
        bad = mallory.issues.create({"title": "license pls",
                                     "description": fill_template("777", "me@gitlab.com", "lots", "11/12/2026",
                                                                  tick=False)})
        print(f"Filed #{good.iid} as alice (a correct request), #{typo.iid} as alice (a typo in the email), and "
              f"#{bad.iid} as mallory (a broken one).\n")

        print("$ license-bot run", flush=True)
        # As CI runs it: its own process, with only the bot's secrets (none of the caller's).
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("LICENSE_", "SMTP_", "SLACK_", "GITLAB_", "ZENDESK_"))}
        env.update(GITLAB_TOKEN="bot-token", ZENDESK_API_TOKEN="zendesk-token")
        env.update(token_env["env"] if token_env else {"LICENSE_PRIVATE_KEY_FILE": str(private_path)})
        code = subprocess.run([sys.executable, "-m", "bot", "--config", str(config_path), "run", "--report",
                               str(work / "report.json")], env=env, check=False).returncode
        print(f"(exit {code})\n")

        bot = gitlab.Gitlab(server.url, private_token="bot-token").projects.get("support/internal-requests")
        outcome = {}
        for iid in (good.iid, typo.iid, bad.iid):
            issue = bot.issues.get(iid)
            note = next((n for n in issue.notes.list(get_all=True) if status_mod.is_status_note(n.body)), None)
            outcome[iid] = (issue, note)
            print(f"Issue #{iid}: {issue.title!r}, {issue.state}, labels {', '.join(issue.labels)}")
            print(_indent(readable(note.body)) if note else "    (no status note)")
            print()

        with urllib.request.urlopen(f"{server.url}/sandbox/mail") as response:
            mail = json.load(response)
        public_key = keys.load_public_key(public_path)
        decoded = None
        for entry in mail:
            msg = message_from_bytes(base64.b64decode(entry["raw"]), policy=email_policy.default)
            attachment = next(msg.iter_attachments(), None)
            print(f"Email to {', '.join(entry['to'])}: {entry['subject']!r}, "
                  f"attachment {attachment.get_filename() if attachment else None}")
            if attachment:
                decoded = lic_mod.decode(attachment.get_content(), public_key)
                print(f"    decoded with the public key: {decoded.licensee}, plan {decoded.plan}, "
                      f"{decoded.user_count} users, trial {decoded.trial}, {decoded.issued_at} to {decoded.expires_at}")
        print()
        notes = [c for c in _zendesk(server.url, "GET", f"/api/v2/tickets/{acme}/comments")["comments"]
                 if not c["public"]]
        tags = _zendesk(server.url, "GET", f"/api/v2/tickets/{acme}/tags")["tags"]
        for note in notes:
            files = ", ".join(a["file_name"] for a in note["attachments"])
            print(f"Internal note on Zendesk ticket {acme} (attached: {files}):\n{_indent(note['body'])}")
        print(f"Tags on ticket {acme}: {', '.join(tags) or '(none)'}\n")
        # What the bot has done, from the record and the requests (shown last, below the checks).
        shown = subprocess.run([sys.executable, "-m", "bot", "--config", str(config_path), "report"],
                               env={**env, "LICENSE_PUBLIC_KEY_FILE": str(public_path)}, check=False,
                               capture_output=True, text=True)

    good_issue, good_note = outcome[good.iid]
    bad_issue, bad_note = outcome[bad.iid]
    typo_issue, typo_note = outcome[typo.iid]
    checks = {
        "alice's request is closed as [Success]": good_issue.state == "closed"
        and good_issue.title == messages.success_title("jane.doe@example.com", 250),
        "it holds the license in its status note": bool(good_note and status_mod.key_text(good_note.body)),
        "mallory's request stays open, marked failed": bad_issue.state == "opened"
        and "license-request::failed" in bad_issue.labels and bool(bad_note),
        "the request whose email is not the ticket's requester is refused": typo_issue.state == "opened"
        and bool(typo_note) and "neither the ticket's requester" in typo_note.body,
        "exactly one email, to jane.doe@example.com": len(mail) == 1 and mail[0]["to"] == ["jane.doe@example.com"],
        "one internal note with the license file, and the tag, on ticket "
        f"{acme}": len(notes) == 1 and notes[0]["attachments"][0]["file_name"].endswith(".gitlab-license")
        and "emergency_license_issued" in tags,
        "its license decodes for 250 users of jane.doe@example.com": decoded is not None
        and decoded.email == "jane.doe@example.com" and decoded.user_count == 250,
        "the run exited 0": code == 0,
        "the report counts that one license and the two failed requests": shown.returncode == 0
        and "Licenses made: 1" in shown.stdout and "every entry signed and chained" in shown.stdout,
    }
    for what, ok in checks.items():
        print(f"{'✓' if ok else '✗'} {what}")
    print(f"\n$ license-bot report\n{shown.stdout}{shown.stderr}", end="")
    return 0 if all(checks.values()) else 1
