
"""A refused recipient gets a real path (issue 18, "What to build", 2), end to end over the sandbox: real HTTP to
the GitLab twin, a real SMTP server that refuses the address with 550 5.1.1, the bot as CI runs it.

Findings: a mail server that refused the address got "add the processing label to retry", which cannot work, and a
new license for a corrected address was blocked by the one-license-per-ticket rule: there was no path at all.

The two paths: (1) the requester corrects the address in the description, and the bot makes the license for the
corrected address: the refused one was never delivered, and the record says so, so one license per ticket still
holds for every other request; (2) a person explicitly asks to send the same license again (the processing label),
e.g. once the customer has fixed their mailbox.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

from bot import config as config_mod
from bot import keys
from bot.gitlab.tracker import GitLabTracker
from bot.record import Record

from .e2e import client, mail, request_text, status_notes

TYPO = "admin1@customer1.exmaple.com"
RIGHT = "admin1@customer1.example.com"


def _refuse(url: str, address: str | None) -> None:
    reply = f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
    body = json.dumps({"address": address, "reply": reply} if address else {}).encode()
    urllib.request.urlopen(urllib.request.Request(f"{url}/sandbox/smtp/refuse", method="POST", data=body,
                                                  headers={"Content-Type": "application/json"}), timeout=10).read()


def _record(bot) -> Record:
    tracker = GitLabTracker(config_mod.load(bot.config_path, environ={}), "bot-token")
    return Record(tracker, keys.load_public_key(str(bot.public_key)))


def _note(sandbox, iid: int) -> str:
    (note,) = status_notes(client(sandbox.url).issues.get(iid))
    return note.body


def test_a_corrected_address_gets_the_license_and_the_refused_one_is_recorded_as_never_delivered(bot, sandbox):
    _refuse(sandbox.url, TYPO)
    issue = client(sandbox.url).issues.create({"title": "Emergency", "description": request_text(1, email=TYPO)})
    first = bot.run()
    assert first.returncode == 0 and "failed: #1" in first.stdout, first.stdout + first.stderr
    assert mail(sandbox.url) == []
    body = _note(sandbox, issue.iid)
    assert "the address does not exist (550 5.1.1)" in body and "If the address is wrong" in body
    assert "Recipient address rejected" not in body  # the server's own words stay out; the code stays in
    (refused,) = _record(bot).for_email(TYPO)
    assert _record(bot).refused(refused.entry.license_id).why == "the address does not exist (550 5.1.1)"
    # find says so too (issue 18): an engineer asked "did it arrive?" must not read "being emailed".
    found = subprocess.run([sys.executable, "-m", "bot", "--config", str(bot.config_path), "find", TYPO],
                           capture_output=True, text=True, timeout=120,
                           env={**bot.env(), "LICENSE_PUBLIC_KEY_FILE": str(bot.public_key)})
    assert "REFUSED by the mail server on 20" in found.stdout, found.stdout + found.stderr
    assert "never delivered: the address does not exist (550 5.1.1)" in " ".join(found.stdout.split())

    assert bot.run().returncode == 0 and mail(sandbox.url) == []  # nothing changed: nothing sent, nothing made

    # The requester edits something else but not the address: the bot says so, and sends nothing.
    issue = client(sandbox.url).issues.get(issue.iid)
    issue.description = issue.description.replace("### Notes\n", "### Notes\nTypo fixed?\n")
    issue.save()
    assert bot.run().returncode == 0 and mail(sandbox.url) == []
    assert f"the mail server refused {TYPO} (the address does not exist (550 5.1.1))" in _note(sandbox, issue.iid)

    # The requester corrects the address: a license for it, emailed once, and the issue closed [Success].
    issue = client(sandbox.url).issues.get(issue.iid)
    issue.description = issue.description.replace(TYPO, RIGHT)
    issue.save()
    done = bot.run()
    assert done.returncode == 0 and "#1 succeeded" in done.stdout, done.stdout + done.stderr
    (sent,) = mail(sandbox.url)
    assert sent["to"] == [RIGHT]
    issue = client(sandbox.url).issues.get(issue.iid)
    assert issue.state == "closed" and issue.title == f"[Success] - Created a license under {RIGHT} for 101 users"
    assert f"License {refused.entry.license_id} for {TYPO} was refused by the mail server" in _note(sandbox, 1)

    record = _record(bot)
    (made,) = record.for_email(RIGHT)
    assert sent["key"] == made.key_text and made.entry.license_id != refused.entry.license_id
    assert record.refused(refused.entry.license_id) and not record.refused(made.entry.license_id)
    assert record.for_issue(issue.iid).entry.license_id == made.entry.license_id

    # One license per ticket still holds: the delivered one counts, the refused one does not count twice.
    other = client(sandbox.url).issues.create({"title": "Again", "description": request_text(
        1, email="someone.else@customer1.example.com")})
    assert bot.run().returncode == 0 and len(mail(sandbox.url)) == 1
    assert f"ticket 512001 already got a license in #{issue.iid}" in _note(sandbox, other.iid)


def test_a_persons_explicit_resend_sends_the_same_license_to_the_same_address(bot, sandbox):
    _refuse(sandbox.url, RIGHT)
    issue = client(sandbox.url).issues.create({"title": "Emergency", "description": request_text(1)})
    assert bot.run().returncode == 0 and mail(sandbox.url) == []
    (refused,) = _record(bot).for_email(RIGHT)
    assert _record(bot).refused(refused.entry.license_id)

    _refuse(sandbox.url, None)  # the customer fixed their mailbox
    issue = client(sandbox.url).issues.get(issue.iid)
    issue.labels = [*issue.labels, "license-request::processing"]  # a person asks for the re-send
    issue.save()
    done = bot.run()
    assert done.returncode == 0 and "#1 succeeded" in done.stdout, done.stdout + done.stderr
    (sent,) = mail(sandbox.url)
    assert sent["to"] == [RIGHT] and sent["key"] == refused.key_text  # the same license, not a second one
    record = _record(bot)
    assert [r.entry.license_id for r in record.for_email(RIGHT)] == [refused.entry.license_id]
    assert not record.refused(refused.entry.license_id)  # delivered after all: it counts again
    assert client(sandbox.url).issues.get(issue.iid).state == "closed"


def test_an_address_refused_before_is_never_tried_again_by_a_correction(config, private_key):
    # A correction that is refused too, then a change back to the first refused address: the bot says both were
    # refused instead of making a third license for an address known to refuse it.
    from dataclasses import replace

    from bot.mailer import MailError

    from .test_processor import NOW, World, filled, outcomes

    world = World(config, private_key)
    refused = MailError("the mail server refused the recipient (x: the address does not exist (550 5.1.1))",
                        permanent=True)
    world.tracker.file(filled(email_="first@example.org"))
    world.mailer.fail = [refused]
    assert outcomes(world.run()) == ["failed"]
    world.tracker.issues[1] = replace(world.issue(), description=filled(email_="second@example.org"), updated_at=NOW)
    world.mailer.fail = [refused]
    assert outcomes(world.run()) == ["failed"]
    world.tracker.issues[1] = replace(world.issue(), description=filled(email_="FIRST@example.org"), updated_at=NOW)
    assert outcomes(world.run()) == ["failed"] and world.mailer.sent == []
    assert "the mail server refused first@example.org (the address does not exist (550 5.1.1))" in world.note().body
    assert len(world.tracker.uploads) == 2  # two licenses made, both refused; no third
