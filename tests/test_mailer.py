"""Emailing a license through a real SMTP server on loopback."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot import mailsink as smtp_server
from bot.license import DEFAULT_BOUNDARY, TrialTerms, build_trial, decode, encode, file_name, license_id
from bot.mailer import Delivery, MailError, SmtpMailer, build_message, message_id

from .fakes import NOW
from .smtp_helpers import SilentServer, self_signed

PASSWORD = "smtp-PASSWORD-s3cret"


@pytest.fixture
def delivery(private_key):
    lic = build_trial("jane.doe@example.com", 250, NOW.date(), TrialTerms())
    key = encode(lic, private_key, boundary=DEFAULT_BOUNDARY)
    return Delivery(license=lic, key_text=key, license_id=license_id(key), file_name=file_name(lic),
                    ticket_url="https://gitlab.zendesk.com/agent/tickets/512345", ticket_id=512345)


def smtp_config(config, port, **changes):
    return replace(config.smtp, host="127.0.0.1", port=port, sender="GitLab Support <support@example.com>",
                   reply_to="support+licenses@example.com",
                   **{"security": "none", "username": None, "timeout_seconds": 3, **changes})


@pytest.fixture
def plain_server():
    inbox = smtp_server.Inbox(refuse={"gone@example.com": "550 5.1.1 no such user",
                                      "busy@example.com": "450 4.2.1 mailbox busy, try later"})
    controller = smtp_server.start(inbox)
    yield inbox, controller.port
    controller.stop()


def test_message_headers_bodies_and_attachment(config, delivery, plain_server, private_key):
    inbox, port = plain_server
    cfg = smtp_config(config, port)
    SmtpMailer(cfg, None).send(build_message(delivery, cfg, NOW, 10))
    (msg,) = inbox.messages
    assert msg["From"] == "GitLab Support <support@example.com>"
    assert msg["Reply-To"] == "support+licenses@example.com"
    assert msg["To"] == "jane.doe@example.com"
    assert msg["Subject"] == "Your 10-day GitLab Ultimate trial license (ticket #512345)"
    assert msg["Message-ID"] == f"<license-{delivery.license_id}@example.com>"
    assert inbox.envelopes[0].rcpt_tos == ["jane.doe@example.com"]

    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    for body in (text, html):
        assert "Admin Area &gt; Settings &gt; General" in body or "Admin Area > Settings > General" in body
        assert "Add License" in body and "2026-12-07" in body and "trial" in body
        assert "512345" in body and "250 users" in body
    assert "<strong>10-day GitLab Ultimate trial license for 250 users</strong>" in html

    (attachment,) = list(msg.iter_attachments())
    assert attachment.get_filename() == "GitLabSupportEmergencyTrial.gitlab-license"
    assert decode(attachment.get_content(), private_key.public_key()) == delivery.license


def test_html_body_is_escaped(config, delivery):
    evil = replace(delivery, ticket_url="https://gitlab.zendesk.com/agent/tickets/1\"><script>x</script>")
    html = build_message(evil, smtp_config(config, 25), NOW, 10).get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_message_id_is_stable_for_a_license(config, delivery):
    cfg = smtp_config(config, 25)
    assert build_message(delivery, cfg, NOW, 10)["Message-ID"] == build_message(delivery, cfg, NOW, 10)["Message-ID"]
    assert message_id("abc", "Support <help@support.example.org>") == "<license-abc@support.example.org>"


@pytest.mark.parametrize("recipient,permanent,says", [
    ("gone@example.com", True, "the address does not exist (550 5.1.1)"),  # refused: permanent
    ("busy@example.com", False, "refused it for now (a temporary problem; it may work later) (450 4.2.1)"),  # 4xx
])
def test_a_refused_recipient_is_classified_by_its_reply(config, delivery, plain_server, recipient, permanent, says):
    inbox, port = plain_server
    cfg = smtp_config(config, port)
    lic = replace(delivery.license, licensee={**delivery.license.licensee, "Email": recipient})
    with pytest.raises(MailError) as info:
        SmtpMailer(cfg, None).send(build_message(replace(delivery, license=lic), cfg, NOW, 10))
    assert info.value.permanent is permanent and says in str(info.value)
    assert inbox.messages == []


def test_starttls_with_login(config, delivery, tmp_path):
    cert, key = self_signed(tmp_path)
    inbox = smtp_server.Inbox()
    controller = smtp_server.start(inbox, tls=(cert, key), credentials=("bot", PASSWORD))
    try:
        cfg = smtp_config(config, controller.port, security="starttls", username="bot", ca_file=str(cert))
        SmtpMailer(cfg, PASSWORD).send(build_message(delivery, cfg, NOW, 10))
        assert len(inbox.messages) == 1
        with pytest.raises(MailError) as info:
            SmtpMailer(cfg, "wrong-password").send(build_message(delivery, cfg, NOW, 10))
        assert "refused the login for bot" in str(info.value) and "wrong-password" not in str(info.value)
        # Without the CA the self-signed certificate is not trusted: TLS is verified, not just used.
        untrusted = replace(cfg, ca_file=None)
        with pytest.raises(MailError, match="TLS failed"):
            SmtpMailer(untrusted, PASSWORD).send(build_message(delivery, untrusted, NOW, 10))
        # A server that requires STARTTLS refuses mail sent in the clear.
        clear = replace(cfg, security="none", username=None)
        with pytest.raises(MailError):
            SmtpMailer(clear, None).send(build_message(delivery, clear, NOW, 10))
        assert len(inbox.messages) == 1
    finally:
        controller.stop()


def test_implicit_tls(config, delivery, tmp_path):
    cert, key = self_signed(tmp_path)
    inbox = smtp_server.Inbox()
    controller = smtp_server.start(inbox, tls=(cert, key), implicit_tls=True)
    try:
        cfg = smtp_config(config, controller.port, security="ssl", ca_file=str(cert))
        SmtpMailer(cfg, None).send(build_message(delivery, cfg, NOW, 10))
        assert len(inbox.messages) == 1
    finally:
        controller.stop()


def test_missing_password_is_named(config, delivery, plain_server):
    _, port = plain_server
    cfg = smtp_config(config, port, username="bot")
    with pytest.raises(MailError, match="SMTP_PASSWORD is not"):
        SmtpMailer(cfg, None).send(build_message(delivery, cfg, NOW, 10))


@pytest.mark.parametrize("mode,says", [("drop", "could not reach the mail server"), ("hang", "timed out after 1s")])
def test_dropped_or_silent_connections_are_transient(config, delivery, mode, says):
    server = SilentServer(mode)
    try:
        cfg = smtp_config(config, server.port, timeout_seconds=1)
        with pytest.raises(MailError) as info:
            SmtpMailer(cfg, None).send(build_message(delivery, cfg, NOW, 10))
        assert not info.value.permanent and says in str(info.value)
    finally:
        server.close()


def test_connection_refused_is_transient(config, delivery):
    cfg = smtp_config(config, smtp_server.free_port())
    with pytest.raises(MailError) as info:
        SmtpMailer(cfg, None).send(build_message(delivery, cfg, NOW, 10))
    assert not info.value.permanent and "refused" in str(info.value)
