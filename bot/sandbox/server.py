"""The sandbox as a server: the HTTP API and the SMTP mail sink, started together on loopback."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer

from .api import Handler
from .model import Sandbox


class SandboxServer:
    """The HTTP API and the SMTP sink, started together on loopback."""

    def __init__(self, port: int = 0, smtp_port: int = 0, state_file: str | None = None, *,
                 search_rules: str = "v3", edition: str = "premium", search_rate_limit: int = 30):
        from .. import mailsink

        self.sandbox = Sandbox(state_file, search_rules=search_rules, edition=edition,
                               search_rate_limit=search_rate_limit)
        handler = type("BoundHandler", (Handler,), {"sandbox": self.sandbox})
        self.http = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.http.daemon_threads = True
        self.port = self.http.server_address[1]
        self.sandbox.base_url = f"http://127.0.0.1:{self.port}"
        self.smtp_port = smtp_port or mailsink.free_port()
        self._inbox = mailsink.Inbox(on_message=self.sandbox.add_mail)
        self._smtp = None
        self.http.smtp_switch = self.smtp_switch  # type: ignore[attr-defined]
        self.http.smtp_refused = self._inbox.refuse  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def smtp_switch(self, up: bool) -> None:
        from .. import mailsink

        if up and self._smtp is None:
            self._smtp = mailsink.start(self._inbox, port=self.smtp_port)
        elif not up and self._smtp is not None:
            self._smtp.stop()
            self._smtp = None

    def start(self) -> SandboxServer:
        self.smtp_switch(True)
        self._thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()
        self.smtp_switch(False)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
