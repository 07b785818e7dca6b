"""A small Chrome DevTools Protocol client over `--remote-debugging-pipe`: Debian's Chromium, no extra package.

`--window-size` does not lay a page out narrower than about 500 px in headless Chromium, so a test that asks
for 360 px that way measures ~500 px. Device-metrics emulation (`Emulation.setDeviceMetricsOverride`) sets the
layout viewport itself, as DevTools' device mode does; the caller asserts `window.innerWidth` to prove it.
With `--remote-debugging-pipe`, Chromium reads commands from fd 3 and writes replies to fd 4, each a JSON
message ended by a NUL byte (chromium/src content/browser/devtools/devtools_pipe_handler.cc).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    def __init__(self):
        assert CHROMIUM, "Chromium is not installed: apt-get install chromium (bash .ci/run does it)"
        self._tmp = tempfile.TemporaryDirectory()
        to_child, self._write = os.pipe()
        self._read, from_child = os.pipe()

        def fds():  # in the child: its fd 3 reads our commands, its fd 4 carries its replies
            # (copies first: a pipe end may already be 3 or 4, and dup2 onto itself would keep it close-on-exec)
            commands, replies = os.dup(to_child), os.dup(from_child)
            os.dup2(commands, 3)
            os.dup2(replies, 4)

        self._process = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", f"--user-data-dir={self._tmp.name}/profile", "--remote-debugging-pipe",
             "about:blank"],
            # close_fds=False: every other descriptor Python opens is close-on-exec already; closing "all but"
            # would run after preexec_fn and close 3 and 4 too.
            preexec_fn=fds, close_fds=False,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_child)
        os.close(from_child)
        self._buffer = b""
        self._next_id = 0
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def send(self, method: str, session: bool = False, **params) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            while b"\0" not in self._buffer:
                chunk = os.read(self._read, 65536)
                assert chunk, "Chromium closed the DevTools pipe"
                self._buffer += chunk
            raw, _, self._buffer = self._buffer.partition(b"\0")
            reply = json.loads(raw)
            if reply.get("id") == self._next_id:
                assert "error" not in reply, reply["error"]
                return reply["result"]
        raise AssertionError(f"no answer from Chromium to {method}")

    def page(self, method: str, **params) -> dict:
        return self.send(method, session=True, **params)

    def open(self, url: str, width: int, dark: bool) -> None:
        """URL laid out on a device WIDTH px wide (a phone below 600 px), in the colour scheme asked for."""
        self.page("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1,
                  mobile=width < 600)
        self.page("Emulation.setEmulatedMedia",
                  features=[{"name": "prefers-color-scheme", "value": "dark" if dark else "light"}])
        self.page("Page.navigate", url=url)
        deadline = time.monotonic() + 30
        while self.evaluate("document.readyState") != "complete" or self.evaluate("location.href") != url:
            assert time.monotonic() < deadline, f"{url} did not load"
            time.sleep(0.05)

    def evaluate(self, expression: str):
        result = self.page("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def close(self) -> None:
        with contextlib.suppress(AssertionError, OSError):  # it may be gone already
            self.send("Browser.close")
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._write)
        os.close(self._read)
        self._tmp.cleanup()
