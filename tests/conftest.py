from __future__ import annotations

import json
import os
import sys
from datetime import date
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import settings

from bot import config as config_mod
from bot import keys

# Property tests draw the same examples on every run and keep no example database: a run cannot fail
# once on examples the next run never draws (CI is not the place to discover; a failure reproduces).
settings.register_profile("license-bot", derandomize=True, database=None, deadline=None)
settings.load_profile("license-bot")

DATA = Path(__file__).parent / "data"
VECTOR = DATA / "license-vector"
TODAY = date(2026, 11, 27)

# The CLI wraps its lines at the terminal's width (80 in a pipe). Tests that read what a command says run it
# wide, so a phrase is one line; tests/test_terminal_output.py reads how it is laid out, at the widths it names.
os.environ["COLUMNS"] = "1000"

# Mutation testing (README, "Mutation testing"): mutmut's coverage pass sets MUTANT_UNDER_TEST=stats, and keeps it
# in-process too. A command run as a child process would try to record into mutmut's state from another directory
# and fail, so children do not inherit it: what they cover is not counted, what the parent covers is.
if os.environ.get("MUTANT_UNDER_TEST") == "stats":
    del os.environ["MUTANT_UNDER_TEST"]


def pytest_ignore_collect(collection_path: Path, config) -> bool | None:
    """MUTATION_TESTS (space-separated test files, .ci/mutation): only those are collected, so a quick mutation run
    (CI's, on the scrubber and the record) is held to the modules' own fast tests instead of every suite."""
    only = os.environ.get("MUTATION_TESTS")
    if not only or collection_path.is_dir() or not collection_path.name.startswith("test_"):
        return None
    return collection_path.name not in {Path(name).name for name in only.split()}



def _under_a_mutant() -> bool:
    return os.environ.get("MUTANT_UNDER_TEST") not in (None, "", "fail", "stats")


def pytest_sessionstart(session) -> None:
    """mutmut forks each mutant's run from the process that ran its coverage pass: a cache that pass filled
    (request's parsed descriptions, its field names) would answer for the mutated code. Each mutant starts empty."""
    if not _under_a_mutant():
        return
    for name, module in list(sys.modules.items()):
        if name == "bot" or name.startswith("bot."):
            for value in list(vars(module).values()):
                if callable(getattr(value, "cache_clear", None)):
                    value.cache_clear()


def pytest_collection_modifyitems(session, config, items) -> None:
    """Under a mutant, mutmut runs the tests that reach it with -x, in no particular order. Fastest first (its own
    timings from the coverage pass, mutmut-stats.json in the mutants/ directory it runs in) so that a mutant a quick
    test kills is not first made to wait for the slow property tests."""
    if not _under_a_mutant():
        return
    try:
        durations = json.loads(Path("mutmut-stats.json").read_text())["duration_by_test"]
    except (OSError, ValueError, KeyError):
        return
    items.sort(key=lambda item: durations.get(item.nodeid, float("inf")))

@pytest.fixture(scope="session")
def vector():
    """The key the real gitlab-license 2.6.0 gem made, with everything needed to remake it."""
    return {
        "payload_json": (VECTOR / "trial-license.json").read_text(),
        "payload": json.loads((VECTOR / "trial-license.json").read_text()),
        "private": serialization.load_pem_private_key((VECTOR / "test-signing-key.pem").read_bytes(), None),
        "public": serialization.load_pem_public_key((VECTOR / "test-signing-key.pub").read_bytes()),
        "aes_key": bytes.fromhex((VECTOR / "aes-key.hex").read_text().strip()),
        "iv": bytes.fromhex((VECTOR / "aes-iv.hex").read_text().strip()),
        "plain": (VECTOR / "trial-license.gitlab-license").read_text(),
        "boundary": (VECTOR / "trial-license.boundary.gitlab-license").read_text(),
        "public_path": VECTOR / "test-signing-key.pub",
        "private_path": VECTOR / "test-signing-key.pem",
    }


@pytest.fixture(scope="session")
def private_key():
    return keys.generate(2048)


@pytest.fixture(scope="session")
def key_files(tmp_path_factory, private_key):
    out = tmp_path_factory.mktemp("keys")
    return keys.write_pair(private_key, out)


@pytest.fixture
def config():
    return config_mod.load(environ={"GITLAB_URL": "https://gitlab.example.com",
                                    "CI_PROJECT_PATH": "support/internal-requests"})


@pytest.fixture
def sandbox():
    """A sandbox GitLab and mail sink on loopback, fresh for each test."""
    from bot.sandbox import SandboxServer

    with SandboxServer() as server:
        yield server


@pytest.fixture(scope="session")
def key_pair(tmp_path_factory):
    return keys.write_pair(keys.generate(2048), tmp_path_factory.mktemp("sandbox-keys"))


@pytest.fixture
def bot(sandbox, tmp_path, key_pair):
    """The bot as CI runs it, configured for the sandbox."""
    from .e2e import Bot

    b = Bot(sandbox.url, sandbox.smtp_port, tmp_path, *key_pair)
    b.write_config()
    return b


@pytest.fixture(params=["free", "premium"])
def twin(request, tmp_path, key_pair):
    """The sandbox on GitLab Free and on Premium, with the bot configured for it: (server, bot)."""
    from bot.sandbox import SandboxServer

    from .e2e import Bot

    with SandboxServer(edition=request.param) as server:
        bot = Bot(server.url, server.smtp_port, tmp_path, *key_pair)
        bot.write_config()
        yield server, bot
