"""Issue 20, findings 1 and 3: in a pipeline the secrets stay with the bot, and the CI's own values win.

GitLab facts relied on, from GitLab's documentation (gitlabhq/gitlabhq):
- doc/ci/variables/predefined_variables.md: `GITLAB_CI` is "true" in every job; `CI_SERVER_URL` is the
  instance's base URL; `CI_COMMIT_REF_PROTECTED` is "true" when the job's branch or tag is protected, else "false"
  (the doc fix in gitlab-org/gitlab!26826 says so for tags too).
- doc/ci/variables/_index.md, "Protect a CI/CD variable": a protected variable reaches only pipelines on protected
  branches and tags; pipeline variables outrank project variables, so whoever may set them can set GITLAB_URL.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading

import pytest
import yaml

from bot import config as config_mod

from .e2e import ROOT, client, request_text


class Capture:
    """A local server that records every request it gets: where a redirected token would land."""

    def __init__(self):
        self.requests: list[tuple[str, str, dict]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _any(self):
                outer.requests.append((self.command, self.path, dict(self.headers)))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            do_GET = do_POST = do_PUT = do_DELETE = _any

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def capture():
    server = Capture()
    yield server
    server.close()


def _pipeline_env(bot, sandbox_url, **extra):
    """The variables GitLab sets in a scheduled job on the protected default branch."""
    return {**bot.env(), "GITLAB_CI": "true", "CI": "true", "CI_SERVER_URL": sandbox_url,
            "CI_PROJECT_PATH": "support/internal-requests", "CI_PROJECT_ID": "1", "CI_PIPELINE_SOURCE": "schedule",
            "CI_COMMIT_REF_NAME": "main", "CI_COMMIT_REF_PROTECTED": "true", "CI_ENVIRONMENT_NAME": "license-bot",
            "CI_PROJECT_DIR": str(bot.workdir), **extra}


def _config_without_url(bot):
    """The repository's config as shipped: no gitlab.url, so a pipeline talks to its own GitLab."""
    config = yaml.safe_load(bot.config_path.read_text())
    del config["gitlab"]["url"]
    del config["gitlab"]["project"]
    bot.config_path.write_text(yaml.safe_dump(config))


def _run(bot, env, *args):
    return subprocess.run([sys.executable, "-m", "bot", "--config", str(bot.config_path), *args],
                          capture_output=True, text=True, env=env, timeout=120)


def test_in_a_pipeline_the_token_never_leaves_for_a_gitlab_url_other_than_ci_server_url(bot, sandbox, capture):
    """Finding 20.3: GITLAB_URL beat CI_SERVER_URL, and a capture server received the protected token."""
    _config_without_url(bot)
    client(sandbox.url).issues.create({"title": "Emergency", "description": request_text(1)})
    result = _run(bot, _pipeline_env(bot, sandbox.url, GITLAB_URL=capture.url), "run")
    assert result.returncode == 1
    assert capture.requests == []  # not one request, so never the token
    said = " ".join(result.stderr.split())  # the message as read: stderr wraps at 80 columns in a pipe (issue 18)
    assert f'GITLAB_URL: "{capture.url}" is not this pipeline\'s GitLab (CI_SERVER_URL), {sandbox.url}' in said
    assert "remove the GITLAB_URL variable" in said and "Traceback" not in result.stderr
    assert "bot-token" not in result.stdout + result.stderr
    # Nothing was touched either: the request still waits, unprocessed.
    assert client(sandbox.url).issues.get(1).state == "opened"


def test_in_a_pipeline_gitlab_url_cannot_override_the_repositorys_config_file_either(bot, sandbox, capture):
    result = _run(bot, _pipeline_env(bot, "https://gitlab.example.com", GITLAB_URL=capture.url), "run")
    assert result.returncode == 1 and capture.requests == []
    assert f"is not gitlab.url in {bot.config_path}, {sandbox.url}" in " ".join(result.stderr.split())


def test_in_a_pipeline_the_bot_talks_to_ci_server_url_and_the_ci_project(bot, sandbox):
    """The CI's own values: CI_SERVER_URL and CI_PROJECT_PATH, with GITLAB_URL unset or the same."""
    _config_without_url(bot)
    for env in (_pipeline_env(bot, sandbox.url), _pipeline_env(bot, sandbox.url, GITLAB_URL=sandbox.url + "/")):
        result = _run(bot, env, "run")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().endswith("API calls 2") and result.stdout.startswith("found 0")


def test_outside_a_pipeline_gitlab_url_still_chooses_the_gitlab():
    """An engineer's own terminal: GITLAB_URL is how `find` and `doctor` are pointed at a GitLab."""
    config = config_mod.load(environ={"GITLAB_URL": "https://gitlab.example.com", "CI_PROJECT_PATH": "g/p"})
    assert config.gitlab.url == "https://gitlab.example.com"


def test_in_a_pipeline_license_bot_config_may_name_only_a_file_of_the_repository(bot, sandbox, capture, tmp_path):
    """Finding 20.3: LICENSE_BOT_CONFIG set as a pipeline variable chose where the token and the mail went."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    hostile = elsewhere / "config.yaml"
    hostile.write_text(yaml.safe_dump({"gitlab": {"url": capture.url, "project": "support/internal-requests"}}))
    env = _pipeline_env(bot, sandbox.url, LICENSE_BOT_CONFIG=str(hostile), CI_PROJECT_DIR=str(bot.workdir / "repo"))
    result = subprocess.run([sys.executable, "-m", "bot", "run"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1 and capture.requests == []
    assert f"LICENSE_BOT_CONFIG: {hostile} is not a file of this repository" in result.stderr


def test_doctor_in_a_pipeline_warns_while_a_secret_reaches_an_unprotected_ref(bot, sandbox):
    """Finding 20.1: masked but unprotected secrets reached every branch's jobs."""
    env = _pipeline_env(bot, sandbox.url, CI_COMMIT_REF_PROTECTED="false", CI_COMMIT_REF_NAME="feature/x",
                        SMTP_PASSWORD="smtp-secret-value", LICENSE_PUBLIC_KEY_FILE=str(bot.public_key))
    result = _run(bot, env, "doctor", "--ci-file", str(ROOT / ".gitlab-ci.yml"))
    line = next(line for line in result.stdout.splitlines() if "secrets protected" in line)
    assert line.startswith("⚠ secrets protected: GITLAB_TOKEN, LICENSE_PRIVATE_KEY_FILE, SMTP_PASSWORD, "
                           "ZENDESK_API_TOKEN reach this job on feature/x, which is not a protected branch")
    assert "make each of them Protected and scope it to the license-bot environment" in line
    assert "smtp-secret-value" not in result.stdout + result.stderr

    protected = _run(bot, _pipeline_env(bot, sandbox.url, LICENSE_PUBLIC_KEY_FILE=str(bot.public_key)), "doctor",
                     "--ci-file", str(ROOT / ".gitlab-ci.yml"))
    assert "✓ secrets protected: GITLAB_TOKEN, LICENSE_PRIVATE_KEY_FILE, ZENDESK_API_TOKEN reach this job on the " \
           "protected main, in the license-bot environment." in protected.stdout

    outside = _run(bot, _pipeline_env(bot, sandbox.url, CI_ENVIRONMENT_NAME="",
                                      LICENSE_PUBLIC_KEY_FILE=str(bot.public_key)),
                   "doctor", "--ci-file", str(ROOT / ".gitlab-ci.yml"))
    assert "⚠ secrets protected:" in outside.stdout and "reach a job outside any environment" in outside.stdout


def test_a_webhook_event_names_the_project_in_any_case_as_gitlab_resolves_paths(bot, sandbox, tmp_path):
    """Finding 20.7: a gitlab.project cased differently from GitLab's own path silently ignored every webhook.
    GitLab resolves a project path ignoring case (app/models/concerns/routable.rb, find_by_full_path: an exact
    match first, then LOWER(path) = LOWER(?)), so an event on Support/Internal-Requests is on the tracker."""
    issue = client(sandbox.url).issues.create({"title": "Emergency", "description": request_text(1)})
    payload = tmp_path / "TRIGGER_PAYLOAD"
    payload.write_text(json.dumps({"object_kind": "issue", "user": {"username": "alice"},
                                   "project": {"id": 99, "path_with_namespace": "Support/Internal-Requests"},
                                   "object_attributes": {"iid": issue.iid, "action": "open"}}))
    env = {**bot.env(), "CI_PIPELINE_SOURCE": "trigger", "TRIGGER_PAYLOAD": str(payload)}
    result = _run(bot, env, "run")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"issue #{issue.iid} changed by alice")
    assert "found 1, succeeded 1" in result.stdout
