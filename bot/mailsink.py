"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives: the sandbox's mail sink,
and the tests' mail server."""

from __future__ import annotations

import socket
import ssl
from email import message_from_bytes
from email import policy as email_policy

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """An aiosmtpd handler: keeps messages; refuses recipients it is told to."""

    def __init__(self, refuse: dict[str, str] | None = None, on_message=None):
        self.messages = []
        self.envelopes = []
        self.refuse = refuse or {}
        self.on_message = on_message  # called with (envelope) after a message is kept

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        self.messages.append(message_from_bytes(envelope.content, policy=email_policy.default))
        if self.on_message:
            self.on_message(envelope)
        return "250 Message accepted"


def start(inbox: Inbox, *, port: int | None = None, tls: tuple | None = None,
          implicit_tls: bool = False, credentials: tuple[str, str] | None = None) -> Controller:
    """Start a server; STARTTLS is offered (and required) when `tls` is given and not implicit."""
    port = port or free_port()
    kwargs: dict = {}
    context = None
    if tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
    if context and implicit_tls:
        kwargs["ssl_context"] = context
    elif context:
        kwargs.update(tls_context=context, require_starttls=True)
    if credentials:
        user, password = credentials

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user \
                and auth_data.password.decode() == password
            return AuthResult(success=ok, handled=False)  # handled=False: the server sends the 535
        kwargs.update(authenticator=authenticator, auth_require_tls=bool(tls))
    # ready_timeout is a hang guard: a loaded machine can take seconds to start the server's thread
    controller = Controller(inbox, hostname="127.0.0.1", port=port, ready_timeout=60, **kwargs)
    controller.start()
    return controller
