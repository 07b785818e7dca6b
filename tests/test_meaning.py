"""Server answers in words (issue 18, "Notes"): raw replies such as `Zendesk answered 503: {"error": "Service
Unavailable"}` reached notes and the terminal. What the server means is said, and its code kept."""

from __future__ import annotations

import pytest

from bot import meaning


@pytest.mark.parametrize("code, says", [
    (503, "Zendesk is down or overloaded for now (503)"),
    (500, "Zendesk failed on its side (500)"),
    (429, "Zendesk is limiting how often it may be asked; it answers again later (429)"),
    (422, "Zendesk refused it as invalid (422)"),
    (None, "Zendesk did not answer"),
])
def test_an_http_answer_is_said_in_words_with_its_code(code, says):
    assert meaning.http("Zendesk", code) == says


@pytest.mark.parametrize("code, text, says", [
    (550, "5.1.1 <gone@example.com>: Recipient address rejected: User unknown in virtual mailbox table",
     "the address does not exist (550 5.1.1)"),
    (552, "5.2.2 Mailbox full", "the mailbox is full (552 5.2.2)"),
    (554, "5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
     "the server refuses mail from this sender (policy or spam filter) (554 5.7.1)"),
    (451, "4.3.0 Try again later", "the server refused it for now (a temporary problem; it may work later) "
                                   "(451 4.3.0)"),
    (550, "Mailbox unavailable", "the mailbox is unavailable (550)"),
])
def test_a_mail_servers_reply_is_said_in_words_with_its_codes(code, text, says):
    assert meaning.smtp(code, text) == says


def test_a_zendesk_error_body_never_reaches_the_message(sandbox):
    # Through the real adapter and the sandbox's Zendesk: a 503 whose JSON body says {"error": "injected 503"}.
    import json
    import urllib.request

    from bot.config import ZendeskConfig
    from bot.zendesk import ZendeskClient, ZendeskError

    config = ZendeskConfig(enabled=True, url=sandbox.url, email="bot@example.com", timeout_seconds=5)
    fault = {"method": "PUT", "path": "tags", "status": 503, "times": 1}
    urllib.request.urlopen(urllib.request.Request(f"{sandbox.url}/sandbox/zendesk/fail", method="POST",
                                                  data=json.dumps(fault).encode()), timeout=10).read()
    with pytest.raises(ZendeskError) as caught:
        ZendeskClient(config, "zendesk-token").add_tag(512000, "emergency_license_issued")
    assert str(caught.value) == "could not tag ticket 512000: Zendesk is down or overloaded for now (503)"
    assert caught.value.transient


@pytest.mark.parametrize("code, text, says", [
    (404, "no_service", "Slack does not have it (404, no_service)"),
    (502, "<html><body>Bad gateway</body></html>", "Slack is down or overloaded for now (502)"),
])
def test_a_slack_error_keeps_slacks_error_name_and_never_a_page(code, text, says):
    # Over real HTTP on loopback: a webhook that answers as Slack (a short error name) or a proxy (a page) does.
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from bot.slack import SlackError, SlackWebhook

    class Answer(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(code)
            self.end_headers()
            self.wfile.write(text.encode())

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(SlackError) as caught:
            SlackWebhook(f"http://127.0.0.1:{server.server_address[1]}/services/T/B/secret", "#c", 5).post("hi")
    finally:
        server.shutdown()
        server.server_close()
    assert str(caught.value) == says
