"""Issue 21, "Rotating the key erases the record's memory": the operator guide's rotation, step by step, over real
HTTP against the sandbox with the bot as a real process.

Before `license.trusted_public_keys`, the record and `find` verified entries with the one configured key: after
the guide's rotation every earlier entry failed verification, so the same ticket or address could get a second
license at once and `find` found nothing old. These tests follow README, Operator guide, "Rotating the key",
using the configuration change `keygen` prints (parsed and applied as printed, so the printed text is what is
tested).
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from datetime import date, datetime, timezone

import yaml

from bot import config as config_mod
from bot import doctor, keys
from bot import license as lic_mod
from bot import record as record_mod
from bot.signer import FileSigner

from .e2e import client, mail, request_text, status_notes


def _cli(bot, *args):
    env = {k: v for k, v in bot.env().items() if k != "LICENSE_PUBLIC_KEY_FILE"}
    return subprocess.run([sys.executable, "-m", "bot", "--config", str(bot.config_path), *args],
                          capture_output=True, text=True, env=env, timeout=120)


def _file(url, n, **fields):
    return client(url).issues.create({"title": f"Emergency license {n}", "description": request_text(n, **fields)})


def _note(url, iid) -> str:
    return status_notes(client(url, "bot-token").issues.get(iid))[0].body


def _checks(bot) -> dict:  # doctor, with the public key the configuration names (if any)
    config = config_mod.load(bot.config_path, environ={})
    secrets = config_mod.Secrets(gitlab_token="bot-token", private_key_pem=bot.private_key.read_bytes())
    return {c.name: c for c in doctor.check(config, secrets, environ={})}


def _use_config_change(bot, printed: str) -> None:
    """Apply the YAML block `keygen` printed ("license:" up to "and set ...") to the bot's configuration."""
    block = printed[printed.index("license:\n"):printed.index("\nand set ")]
    change = yaml.safe_load(block)["license"]
    config = yaml.safe_load(bot.config_path.read_text())
    config["license"].update(change)
    bot.config_path.write_text(yaml.safe_dump(config))


def _rotate(bot, tmp_path):
    """Rotate from key A (the fixture's) to a new key B as the README says; returns A's public key file."""
    configured = yaml.safe_load(bot.config_path.read_text())["license"]["public_key_file"]
    made = _cli(bot, "keygen", "--out", str(tmp_path / "key-b"))
    assert made.returncode == 0, made.stderr
    # The earlier key is kept by its full path: the configured public key file, else the public half of the
    # signing key (LICENSE_PRIVATE_KEY_FILE), written next to the new pair.
    old_public = (bot.public_key if configured else tmp_path / "key-b" / "previous_license_key.pub").resolve()
    assert f"    - {old_public}" in made.stdout
    _use_config_change(bot, made.stdout)
    bot.private_key, bot.public_key = tmp_path / "key-b" / "license_key", tmp_path / "key-b" / "license_key.pub"
    return old_public


def test_21_after_the_guides_rotation_the_old_licenses_still_count_and_find_says_which_key_signed_them(bot, sandbox,
                                                                                                      tmp_path):
    url = sandbox.url
    config = yaml.safe_load(bot.config_path.read_text())
    config["license"]["public_key_file"] = str(bot.public_key)
    bot.config_path.write_text(yaml.safe_dump(config))
    first = _file(url, 1)  # ticket 512001, admin1@customer1.example.com: a license signed with key A
    assert bot.run().returncode == 0
    key_a = keys.key_id(keys.load_public_key(bot.public_key))
    old_public = _rotate(bot, tmp_path)
    key_b = keys.key_id(keys.load_public_key(bot.public_key))
    assert key_a != key_b and _checks(bot)["signing key"].ok  # the new pair signs and matches its public key

    same_ticket = _file(url, 2, ticket="512001")
    same_address = _file(url, 3, email="admin1@customer1.example.com")
    _file(url, 4)  # a new customer: licensed with key B, its entry chained after the one key A signed
    result = bot.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ticket 512001 already got a license in #{first.iid}" in _note(url, same_ticket.iid)
    assert f"admin1@customer1.example.com already got a license in #{first.iid}" in _note(url, same_address.iid)
    sent = mail(url)
    assert [m["message"]["To"] for m in sent] == ["admin1@customer1.example.com", "admin4@customer4.example.com"]
    assert lic_mod.decode(sent[1]["key"], keys.load_public_key(bot.public_key)).email == "admin4@customer4.example.com"

    found = _cli(bot, "find", "admin1@customer1.example.com")
    assert found.returncode == 0, found.stderr
    assert f"#{first.iid}  license" in found.stdout
    assert f"signed by {key_a}, license.trusted_public_keys[0] ({old_public.resolve()})" in found.stdout
    lic_file = tmp_path / "old.gitlab-license"
    lic_file.write_text(sent[0]["key"])
    shown = _cli(bot, "inspect", str(lic_file))
    assert shown.returncode == 0 and "Signed by:" in shown.stdout and key_a in shown.stdout, shown.stderr

    # The chain continues across the rotation: entry 2 (key B) follows entry 1 (key A).
    checks = _checks(bot)
    assert checks["record of issued licenses"].ok and checks["record of issued licenses"].detail.startswith(
        "2 licenses, every entry signed and chained")
    trusted = checks["trusted keys"]
    assert trusted.ok and not trusted.warn
    assert f"the current signing key {key_b}: 1 record entry" in trusted.detail
    assert f"license.trusted_public_keys[0] ({old_public.resolve()}) {key_a}: 1 record entry" in trusted.detail


def test_21_without_the_earlier_key_its_entries_are_never_read_as_no_license_the_same_ticket_is_held(bot, sandbox,
                                                                                                     tmp_path):
    """The rotation as the guide said it before issue 21 (point at the new pair, keep nothing): the bug was a
    second license for the same ticket. Now the unreadable entry holds every request for a person."""
    url = sandbox.url
    first = _file(url, 1)
    assert bot.run().returncode == 0
    _rotate(bot, tmp_path)
    config = yaml.safe_load(bot.config_path.read_text())
    config["license"]["trusted_public_keys"] = []  # the earlier key forgotten
    bot.config_path.write_text(yaml.safe_dump(config))

    again = _file(url, 2, ticket="512001", email="someone.else@customer1.example.com")
    assert f"#{again.iid} failed" in bot.run().stdout
    note = _note(url, again.iid)
    assert "Stopped: a person must look" in note
    assert "the record of issued licenses is damaged" in note and "signed by a key that is no longer trusted" in note
    assert len(mail(url)) == 1  # the first license only
    trusted = _checks(bot)["trusted keys"]
    assert trusted.warn and "1 entry verify with no trusted key" in trusted.detail
    assert "license.trusted_public_keys" in trusted.fix
    assert f"#{first.iid}" in _cli(bot, "find", "admin1@customer1.example.com").stdout  # shown, flagged as not in


def _forged_entry(url, signer: FileSigner, head_description: str) -> str:
    """A record entry chained after the newest one, with its license and signature by `signer`'s key."""
    entry, _, signature = record_mod._parse(head_description)
    prev = hashlib.sha256(entry.payload() + b"\0" + signature.encode()).hexdigest()
    today = datetime.now(timezone.utc).date()
    lic = lic_mod.build_trial("admin9@customer9.example.com", 109, today, config_mod.load(environ={}).license.terms)
    key_text = lic_mod.sign(lic, signer, today, boundary=lic_mod.DEFAULT_BOUNDARY)
    forged = record_mod.Entry(
        license_id=lic_mod.license_id(key_text), sha256=lic_mod.fingerprint(key_text), issue_iid=entry.issue_iid,
        issue_url=entry.issue_url, email=lic.email, user_count=lic.user_count, ticket_id=512009,
        ticket_url="https://gitlab.zendesk.com/agent/tickets/512009", made_on=date.today().isoformat(),
        expires_on=lic.expires_at.isoformat(), file_name=lic_mod.file_name(lic), seq=entry.seq + 1, prev=prev)
    return record_mod.entry_note(forged, key_text, record_mod.sign(forged, signer))


def test_21_an_entry_signed_by_neither_key_holds_the_next_request_for_a_person(bot, sandbox, tmp_path):
    """An entry signed by a key that was never trusted (a third key, opened with the bot's own token: what a
    leaked token could do) is neither a license nor ignored: the record is damaged until a person looks."""
    url = sandbox.url
    _file(url, 1)
    assert bot.run().returncode == 0
    _rotate(bot, tmp_path)
    as_bot = client(url, "bot-token")
    (head,) = [i for i in as_bot.issues.list(author_username="license-bot", state="all", get_all=True)
               if "license-bot:record-entry" in (i.description or "")]
    key_c = FileSigner(keys.generate(2048))
    forged = as_bot.issues.create({"title": "License Bot record: license x", "confidential": True,
                                   "description": _forged_entry(url, key_c, head.description)})

    later = _file(url, 5)
    assert f"#{later.iid} failed" in bot.run().stdout
    note = _note(url, later.iid)
    assert "Stopped: a person must look" in note and f"record entry issue #{forged.iid}" in note
    assert len(mail(url)) == 1
    checks = _checks(bot)
    assert checks["record of issued licenses"].ok is False
    assert checks["trusted keys"].warn and f"record entry issue #{forged.iid}" in checks["trusted keys"].detail
    assert re.search(r"the current signing key SHA256:[0-9a-f]{16}: 0 record entries", checks["trusted keys"].detail)


def test_21_a_trusted_key_that_cannot_be_read_stops_the_run_before_any_request_with_the_field_and_the_fix(bot, sandbox,
                                                                                                       tmp_path):
    """A 3 a.m. typo in license.trusted_public_keys, or the private key listed instead of the public one."""
    _file(sandbox.url, 1)
    for listed, hint in ((str(tmp_path / "missing.pub"), "cannot read the public key"),
                         (str(bot.private_key), "it is a private key: pass the .pub file")):
        config = yaml.safe_load(bot.config_path.read_text())
        config["license"]["trusted_public_keys"] = [listed]
        bot.config_path.write_text(yaml.safe_dump(config))
        result = bot.run()
        assert result.returncode == 1 and "license.trusted_public_keys[0]: " in result.stderr and hint in result.stderr
        assert "Traceback" not in result.stderr and "PRIVATE KEY-----" not in result.stderr + result.stdout
        checks = _checks(bot)
        assert checks["trusted keys"].ok is False and hint in checks["trusted keys"].detail
    assert mail(sandbox.url) == [] and not status_notes(client(sandbox.url, "bot-token").issues.get(1))
