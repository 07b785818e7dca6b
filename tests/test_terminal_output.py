"""The terminal (issue 18, "The terminal"): every command's output fits the width it is shown at (the terminal's
own, 80 in a pipe), wraps with hanging indents and never inside a URL, and works on an ASCII-only output.

Golden files hold each output at 80 and 120 columns; the same text must come out on a real terminal (a pty with
that many columns, no COLUMNS set) and in a pipe (COLUMNS set, or nothing for 80).
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
from pathlib import Path

from bot.terminal import encodable, wrap

from . import golden
from .e2e import ROOT, client, request_text

REQUESTS = ROOT / "tests" / "data" / "requests"


# --- the pure part ------------------------------------------------------------------------------------------------

def test_wrap_hangs_continuation_lines_and_never_splits_a_url():
    # Finding: at 80 columns, lines up to ~300 characters wrapped mid-word, lost their indent, and split URLs and
    # a port number (run, find, doctor, demo).
    url = "http://127.0.0.1:18618/support/internal-requests/-/issues/12345678901234567890"
    text = f"    #12 open request, filed 2026-11-28: failed: see {url} and smtp.example.com:587 now"
    lines = wrap(text, 40).split("\n")
    assert lines[0].startswith("    #12") and all(line.startswith("      ") for line in lines[1:])
    assert url in [line.strip() for line in lines] and any("smtp.example.com:587" in line.split() for line in lines)
    assert " ".join(" ".join(lines).split()) == " ".join(text.split())  # nothing lost, nothing added
    assert all(len(line) <= 40 for line in lines if line.strip() != url)
    assert not re.search(r"\d\n", wrap("host smtp.example.com:587 " * 5, 30))  # a port stays with its host


def test_wrap_leaves_lines_that_fit_and_lines_with_nowhere_to_break():
    key = "A" * 200
    assert wrap(f"short line\n{key}\n  indented fits", 40) == f"short line\n{key}\n  indented fits"


def test_an_ascii_only_output_gets_the_symbols_spelled_out():
    # Finding: with PYTHONIOENCODING=ascii, doctor failed with "internal error (UnicodeEncodeError)".
    assert encodable("✓ a – b … ⚠ c ✗ d", "ascii") == "+ a - b ... ! c x d"
    assert encodable("caf\u00e9 ✓", "ascii") == "caf? +"
    assert encodable("✓ café", "utf-8") == "✓ café"


# --- real processes: a pty and a pipe -----------------------------------------------------------------------------

def _env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS" and k != "CI" and not k.startswith(
        ("LICENSE_", "GITLAB_", "SMTP_", "SLACK_", "CI_", "TRIGGER_", "ZENDESK_"))}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra or {})
    return env


def in_a_pipe(argv: list[str], columns: int | None, env: dict | None = None) -> str:
    extra = {**(env or {}), **({"COLUMNS": str(columns)} if columns else {})}
    result = subprocess.run([sys.executable, "-m", "bot", *argv], capture_output=True, text=True, timeout=120,
                            env=_env(extra), cwd=ROOT)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    return result.stdout + result.stderr


def on_a_terminal(argv: list[str], columns: int, env: dict | None = None) -> str:
    """The command on a real terminal (a pty) COLUMNS wide, as a person at a terminal runs it."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "bot", *argv], stdin=slave, stdout=slave, stderr=slave,
                            env=_env(env), cwd=ROOT, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=120)
    os.close(master)
    text = b"".join(chunks).decode("utf-8").replace("\r\n", "\n")  # the terminal's own line ends
    assert "Traceback" not in text and "internal error" not in text, text
    return text


def fits(text: str, width: int) -> bool:
    """Every line fits, except one that is a single word after its indent (a URL, a key): it cannot break."""
    return all(len(line) <= width or " " not in line.strip() for line in text.splitlines())


def _normalise(text: str) -> str:
    """What differs between runs, not between layouts: same-length placeholders keep the wrapping honest."""
    text = re.sub(r"127\.0\.0\.1:\d{5}", "127.0.0.1:PORT5", text)
    text = re.sub(r"\b20\d\d-\d\d-\d\d\b", "YYYY-MM-DD", text)
    text = re.sub(r"\b\d\d:\d\d UTC\b", "HH:MM UTC", text)
    text = re.sub(r"\b[0-9a-f]{16}\b", "L" * 16, text)
    text = re.sub(r"\b[0-9a-f]{64}\b", "S" * 64, text)
    text = re.sub(r"\b[0-9a-f]{32}\b", "U" * 32, text)  # an upload's secret
    text = re.sub(r"license-bot-demo-\w{8}", "license-bot-demo-TMPDIRXX", text)
    text = re.sub(r"(?m)^(\s*)[A-Za-z0-9+/=]{60}$", lambda m: m.group(1) + "K" * 60, text)  # key lines
    return re.sub(r"(API\s+calls) \d+", r"\1 N", text)


def _same_everywhere(name: str, argv: list[str], env: dict | None = None, prepare=None) -> None:
    for columns in (80, 120):
        outputs = []
        for how in ("pty", "pipe"):
            if prepare:
                prepare()
            text = (on_a_terminal(argv, columns, env) if how == "pty"
                    else in_a_pipe(argv, None if columns == 80 else columns, env))
            assert fits(text, columns), f"{how} at {columns}:\n{text}"
            outputs.append(_normalise(text))
        assert outputs[0] == outputs[1], "a terminal and a pipe of the same width differ"
        golden.check(f"terminal/{name}-{columns}.txt", outputs[0])


def test_check_request_fits_80_and_120_columns():
    _same_everywhere("check-request", ["check-request", str(REQUESTS / "bad-everything.md"), "--today",
                                       "2026-11-27"])


def test_inspect_fits_80_and_120_columns():
    vector = Path("tests") / "data" / "license-vector"  # relative to ROOT, the cwd: inspect names the key's path
    _same_everywhere("inspect", ["inspect", str(vector / "trial-license.gitlab-license"), "--public-key",
                                 str(vector / "test-signing-key.pub"), "--today", "2026-11-27"])


def test_the_demo_fits_80_and_120_columns():
    _same_everywhere("demo", ["demo"])


def test_doctor_fits_80_and_120_columns(tmp_path):
    # Nothing reachable (port 9 refuses), no key: every line a ✗ with its fix, or a – it could not check.
    config = tmp_path / "config.yaml"
    config.write_text("gitlab:\n  url: http://127.0.0.1:9\n  project: support/internal-requests\n"
                      "smtp:\n  host: 127.0.0.1\n  port: 9\n  security: none\n")
    _same_everywhere("doctor", ["--config", str(config), "doctor", "--ci-file", str(ROOT / ".gitlab-ci.yml")],
                     {"GITLAB_TOKEN": "bot-token"})


def test_run_and_find_fit_80_and_120_columns(bot, sandbox):
    project = client(sandbox.url)
    project.issues.create({"title": "Emergency", "description": request_text(1)})
    project.issues.create({"title": "Emergency", "description": request_text(2, users="lots",
                                                                                expired="11/12/2026")})
    env = {**bot.env(), "LICENSE_PUBLIC_KEY_FILE": str(bot.public_key)}
    env.pop("COLUMNS", None)
    config = ["--config", str(bot.config_path)]
    # The same first run each time: a dry run writes nothing, so every layout reads the same two requests.
    _same_everywhere("run-dry-run", [*config, "run", "--dry-run"], env)
    first = in_a_pipe([*config, "run"], None, env)
    assert first.startswith("2 requests to process\n") and "failed: #2 (each status note" in first
    _same_everywhere("run-again", [*config, "run"], env)  # the failed one is counted, not printed again
    _same_everywhere("find", [*config, "find", "admin2@customer2.example.com"], env)


# --- every command on an ASCII-only output, 60 columns wide -------------------------------------------------------

def test_every_command_works_on_an_ascii_output_at_60_columns(bot, sandbox, tmp_path):
    # Finding: doctor failed with "internal error (UnicodeEncodeError)" on a non-UTF-8 output.
    client(sandbox.url).issues.create({"title": "Emergency", "description": request_text(1)})
    env = {**bot.env(), "LICENSE_PUBLIC_KEY_FILE": str(bot.public_key), "PYTHONIOENCODING": "ascii",
           "COLUMNS": "60"}
    config = ["--config", str(bot.config_path)]
    key = tmp_path / "trial.gitlab-license"
    commands = [
        (["keygen", "--out", str(tmp_path / "keys")], 0),
        ([*config, "generate", "--email", "jane@example.com", "--users", "10", "--output", str(key)], 0),
        (["inspect", str(key), "--public-key", str(bot.public_key)], 0),
        (["check-request", str(REQUESTS / "bad-everything.md"), "--today", "2026-11-27"], 1),
        ([*config, "run", "--dry-run"], 0),
        ([*config, "run"], 0),
        ([*config, "find", "admin1@customer1.example.com"], 0),
        ([*config, "doctor", "--ci-file", str(ROOT / ".gitlab-ci.yml")], 0),
        ([*config, "setup", "--ci-file", str(ROOT / ".gitlab-ci.yml")], 0),
        (["demo"], 0),
        (["frob"], 1),
        *[([name, "--help"], 0) for name in ("keygen", "generate", "inspect", "check-request", "run", "sandbox",
                                             "find", "doctor", "setup", "demo")],
    ]
    for argv, code in commands:
        result = subprocess.run([sys.executable, "-m", "bot", *argv], capture_output=True, timeout=180, env=env,
                                cwd=tmp_path)
        out = result.stdout + result.stderr
        assert result.returncode == code, (argv, out.decode(errors="replace"))
        text = out.decode("ascii")  # nothing but ASCII reached the output
        assert "internal error" not in text and "Traceback" not in text, (argv, text)
        assert fits(text, 60), (argv, text)
    if "✓" in Path(ROOT / "bot" / "doctor.py").read_text():  # the symbols doctor uses, spelled in ASCII
        doctor = subprocess.run([sys.executable, "-m", "bot", *config, "doctor"], capture_output=True, env=env,
                                timeout=120, cwd=tmp_path).stdout.decode("ascii")
        assert doctor.startswith("+ GitLab reachable")


def test_the_sandbox_works_on_an_ascii_output(tmp_path):
    env = _env({"PYTHONIOENCODING": "ascii", "COLUMNS": "60"})
    proc = subprocess.Popen([sys.executable, "-m", "bot", "sandbox", "--port", "0", "--smtp-port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    first = proc.stdout.readline().decode("ascii")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert first.startswith("GitLab sandbox at http://127.0.0.1:") and proc.returncode == 0, err
    assert fits(first + out.decode("ascii") + err.decode("ascii"), 60)
