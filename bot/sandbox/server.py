"""The sandbox as a server: the HTTP API and the SMTP mail sink, started together on loopback."""

from __future__ import annotations

import socket
import threading
from http.server import ThreadingHTTPServer

from .api import Handler
from .model import Sandbox


class SandboxServer:
    """The HTTP API and the SMTP sink, started together on loopback."""

    def __init__(self, port: int = 0, smtp_port: int = 0, state_file: str | None = None, *,
                 search_rules: str = "v3", edition: str = "premium", search_rate_limit: int = 30,
                 enterprise: bool | None = None):
        from .. import mailsink

        self.sandbox = Sandbox(state_file, search_rules=search_rules, edition=edition,
                               search_rate_limit=search_rate_limit, enterprise=enterprise)
        handler = type("BoundHandler", (Handler,), {"sandbox": self.sandbox})
        self.http = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.http.daemon_threads = True
        self.port = self.http.server_address[1]
        self.sandbox.base_url = f"http://127.0.0.1:{self.port}"
        self.smtp_port = smtp_port or mailsink.free_port()
        self._smtp_port_chosen = not smtp_port
        self._inbox = mailsink.Inbox(on_message=self.sandbox.add_mail)
        self._smtp = None
        self._held: socket.socket | None = None  # the SMTP port while the sink is down
        self.http.smtp_switch = self.smtp_switch  # type: ignore[attr-defined]
        self.http.smtp_refused = self._inbox.refuse  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def smtp_switch(self, up: bool) -> None:
        from .. import mailsink

        if up and self._smtp is None:
            self._release()
            for attempt in range(5):
                try:
                    if not _bindable(self.smtp_port):  # aiosmtpd would only say so after its ready timeout
                        raise OSError(f"the SMTP port {self.smtp_port} is in use")
                    self._smtp = mailsink.start(self._inbox, port=self.smtp_port)
                    break
                except OSError:  # the free port was taken by another process before the sink bound it
                    if not self._smtp_port_chosen or attempt == 4:
                        raise
                    self.smtp_port = mailsink.free_port()
            self._smtp_port_chosen = False  # from now on clients know this port: it stays
        elif not up and self._smtp is not None:
            self._smtp.stop()
            self._smtp = None
            self._held = _hold(self.smtp_port)

    def _release(self) -> None:
        if self._held is not None:
            self._held.close()
            self._held = None

    def start(self) -> SandboxServer:
        self.smtp_switch(True)
        # stop() waits for serve_forever's next poll: 0.05 s, not the default 0.5 s, per sandbox a test starts
        self._thread = threading.Thread(target=self.http.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()
        self.smtp_switch(False)
        self._release()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _hold(port: int) -> socket.socket:
    """The port bound and not listening: a connection to it is refused, as by a mail server that is down, and the
    kernel hands it to no other socket's bind to port 0 (mailsink.free_port): another test session running beside
    this one could otherwise start its sink there, and the bot's "down" server would take the mail."""
    held = socket.socket()
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the sink's closed connections may be in TIME_WAIT
    held.bind(("127.0.0.1", port))
    return held


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's server binds
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
