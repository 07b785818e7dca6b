"""Emailing a license: the message (pure) and the SMTP adapter.

A refused recipient is permanent; connection errors, timeouts and 4xx replies are transient and
retried at the next run. The Message-ID derives from the license id, so a re-send after a crash is
recognisably the same message.
"""

from __future__ import annotations

# smtplib, ssl and email are imported where mail is built or sent: an idle run needs none of them.
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from .config import SmtpConfig
from .errors import BotError

if TYPE_CHECKING:
    import smtplib
    import ssl
    from email.message import EmailMessage

    from .license import License


class MailError(BotError):
    """`permanent`: this recipient will never get it; `config`: no email can go out until an operator
    fixes the mail settings, so the run stops instead of using up each customer's attempts."""

    def __init__(self, message: str, *, permanent: bool, config: bool = False):
        super().__init__(message)
        self.permanent, self.config = permanent, config


@dataclass(frozen=True)
class Delivery:
    """What an email carries, as recorded in the status note."""

    license: License
    key_text: str
    license_id: str
    file_name: str
    ticket_url: str
    ticket_id: int | None
    resend: int = 0  # re-sends a person asked for


def message_id(license_id: str, sender: str, resend: int = 0) -> str:
    """Crash re-sends keep the Message-ID, so the customer sees one email; a re-send a person asked
    for gets a new one, since mail providers drop a second message with an ID they have seen."""
    from email.utils import parseaddr

    domain = parseaddr(sender)[1].rpartition("@")[2] or "license-bot.invalid"
    return f"<license-{license_id}{f'-resend{resend}' if resend else ''}@{domain}>"


def subject(delivery: Delivery, duration_days: int) -> str:
    ticket = f" (ticket #{delivery.ticket_id})" if delivery.ticket_id else ""
    return f"Your {duration_days}-day GitLab Ultimate trial license{ticket}"


def build_message(delivery: Delivery, smtp: SmtpConfig, now: datetime, duration_days: int) -> EmailMessage:
    from email.headerregistry import Address
    from email.message import EmailMessage
    from email.utils import format_datetime

    from markupsafe import Markup, escape

    from . import messages

    lic = delivery.license
    users = f"{lic.user_count} user{'' if lic.user_count == 1 else 's'}"
    # "Reply to this email" only where a reply reaches Support: with a Reply-To; else the ticket.
    ticket = f"your support ticket ({delivery.ticket_url})" if delivery.ticket_url else "your support ticket"
    ticket_html = (Markup('your support ticket (<a href="{0}">{0}</a>)').format(delivery.ticket_url)
                   if delivery.ticket_url else "your support ticket")
    if smtp.reply_to:
        short, long_ = "Reply to this email", f"reply to this email or update {ticket}"
        long_html = Markup("reply to this email or update ") + ticket_html
    else:
        short, long_, long_html = "Update your support ticket", f"update {ticket}", Markup("update ") + ticket_html
    values = {"license": lic, "delivery": delivery, "duration_days": duration_days, "users": users,
              "contact_short": short, "contact_long": long_, "contact_long_html": escape(long_html)}
    msg = EmailMessage()
    msg["From"] = smtp.sender
    msg["To"] = Address(addr_spec=lic.email)
    if smtp.reply_to:
        msg["Reply-To"] = smtp.reply_to
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to a robot
    msg["Subject"] = subject(delivery, duration_days)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id(delivery.license_id, smtp.sender, delivery.resend)
    msg["X-License-Id"] = delivery.license_id
    msg.set_content(messages.render("email.txt.j2", **values))
    msg.add_alternative(messages.render("email.html.j2", **values), subtype="html")
    # Base64 text GitLab reads whatever the line endings; octet-stream keeps mail software off it.
    msg.add_attachment(delivery.key_text.encode("ascii"), maintype="application", subtype="octet-stream",
                       filename=delivery.file_name)
    return msg


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> None: ...
    def check(self) -> None: ...


class SmtpMailer:
    def __init__(self, config: SmtpConfig, password: str | None, ca_file: str | None = None):
        self.config, self._password, self.ca_file = config, password, ca_file or config.ca_file

    def _tls(self) -> ssl.SSLContext:
        import ssl

        if not self.ca_file:
            return ssl.create_default_context()
        from . import files

        try:  # read bounded, as every file is: OpenSSL would read /dev/zero for ever
            pem = files.read_bytes(self.ca_file, files.MB, "smtp.ca_file").decode("ascii")
            return ssl.create_default_context(cadata=pem)
        except files.FileError as exc:
            raise MailError(str(exc), permanent=False, config=True) from None
        except (UnicodeDecodeError, ValueError, ssl.SSLError):
            raise MailError(f"smtp.ca_file {self.ca_file}: not PEM certificates (-----BEGIN CERTIFICATE-----)",
                            permanent=False, config=True) from None

    def connect(self) -> smtplib.SMTP:
        """Connect, secure and log in; the caller quits. Used by send, by check and by `doctor`."""
        import smtplib
        import ssl

        c = self.config
        where = f"the mail server {c.host}:{c.port}"
        try:
            if c.security == "ssl":
                client: smtplib.SMTP = smtplib.SMTP_SSL(c.host, c.port, timeout=c.timeout_seconds, context=self._tls())
            else:
                client = smtplib.SMTP(c.host, c.port, timeout=c.timeout_seconds)
            client.ehlo_or_helo_if_needed()
            if c.security == "starttls":
                if not client.has_extn("starttls"):
                    client.close()
                    raise MailError(f"{where} does not offer STARTTLS: set smtp.security to ssl (or none for a "
                                    "local relay)", permanent=False, config=True)
                client.starttls(context=self._tls())
                client.ehlo()
            if c.username:
                if not self._password:
                    client.close()
                    raise MailError(f"smtp.username is set ({c.username}) but SMTP_PASSWORD is not",
                                    permanent=False, config=True)
                if not client.has_extn("auth"):
                    client.close()
                    raise MailError(f"{where} does not offer a login (no AUTH): set smtp.username to null, or "
                                    "use smtp.security starttls or ssl", permanent=False, config=True)
                client.login(c.username, self._password)
            return client
        except MailError:
            raise
        except smtplib.SMTPAuthenticationError as exc:
            raise MailError(f"{where} refused the login for {c.username} ({exc.smtp_code}); check smtp.username "
                            "and SMTP_PASSWORD", permanent=False, config=True) from None
        except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
            raise _transient(exc, c) from None

    def check(self) -> None:
        """Connect, secure and log in, send nothing. A run with work starts with this, so a setting that
        cannot work stops it before any request is touched; a server that is down is not an error here."""
        import smtplib

        try:
            client = self.connect()
        except MailError as exc:
            if exc.config:
                raise
            return
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()

    def send(self, message: EmailMessage) -> None:
        import smtplib

        client = self.connect()
        try:
            client.send_message(message)
        except smtplib.SMTPSenderRefused as exc:
            raise MailError(f"the mail server refused the sender {self.config.sender} ({exc.smtp_code}): check "
                            "smtp.from", permanent=False, config=True) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            permanent = all(code >= 500 for code in codes)
            detail = "; ".join(f"{rcpt}: {code} {text.decode('utf-8', 'replace')}"
                               for rcpt, (code, text) in exc.recipients.items())
            raise MailError(f"the mail server refused the recipient ({detail})", permanent=permanent) from None
        except smtplib.SMTPResponseException as exc:
            text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
            raise MailError(f"the mail server answered {exc.smtp_code} {text}", permanent=False) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise _transient(exc, self.config) from None
        finally:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()


def _transient(exc: BaseException, c: SmtpConfig) -> MailError:
    import smtplib
    import socket
    import ssl

    # smtplib reports a read timeout as SMTPServerDisconnected("... timed out").
    if isinstance(exc, (socket.timeout, TimeoutError)) or "timed out" in str(exc):
        why = f"timed out after {c.timeout_seconds}s"
    elif isinstance(exc, ssl.SSLError):
        why = f"TLS failed ({exc.reason or type(exc).__name__})"
    elif isinstance(exc, smtplib.SMTPServerDisconnected):
        why = "the connection was dropped"
    elif isinstance(exc, ConnectionRefusedError):
        why = "the connection was refused"
    elif isinstance(exc, socket.gaierror):
        why = f"the host name {c.host} does not resolve"
    else:
        why = type(exc).__name__
    return MailError(f"could not reach the mail server {c.host}:{c.port}: {why}", permanent=False)
