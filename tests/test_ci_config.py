"""The deployed pipeline keeps the guarantees the bot relies on."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

CI = yaml.safe_load((Path(__file__).resolve().parent.parent / ".gitlab-ci.yml").read_text())


def _sources(job: dict) -> set[str]:
    found = set()
    for rule in job.get("rules", []):
        condition = rule.get("if", "")
        found |= set(re.findall(r'== "(\w+)"', condition))
        match = re.search(r"=~ /\^\(([\w|]+)\)\$/", condition)
        if match:
            found |= set(match.group(1).split("|"))
    return found


def test_the_bot_runs_only_on_schedule_trigger_web_and_api_one_at_a_time():
    job = {**CI[".bot"], **CI["process-requests"]}
    assert _sources(job) == {"schedule", "trigger", "web", "api"}
    assert job["resource_group"] == "license-bot"
    assert "license-bot run --report report.json" in " ".join(job["script"])
    assert job["artifacts"]["paths"] == ["report.json"] and job["artifacts"]["when"] == "always"
    assert job["allow_failure"] == {"exit_codes": [2]}


def test_tests_run_on_pushes_and_merge_requests():
    assert _sources(CI["test"]) == {"push", "merge_request_event"}
    assert CI["test"]["script"] == ["bash .ci/run"]


def test_the_dry_run_is_manual_and_writes_nothing():
    job = CI["dry-run"]
    assert all(rule.get("when") == "manual" for rule in job["rules"])
    assert "--dry-run" in " ".join(job["script"]) and job["extends"] == ".bot"


def test_the_python_image_is_pinned():
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-[\w-]+", CI["default"]["image"])
    assert CI["variables"]["PIP_CACHE_DIR"] and CI["cache"]["paths"] == [".cache/pip"]
