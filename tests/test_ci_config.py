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
    assert "-m bot run --report report.json" in " ".join(job["script"])
    assert job["artifacts"]["paths"] == ["report.json"] and job["artifacts"]["when"] == "always"
    assert job["allow_failure"] == {"exit_codes": [2]}


def test_tests_run_on_pushes_and_merge_requests():
    assert _sources(CI["test"]) == {"push", "merge_request_event"}
    assert CI["test"]["script"] == ["bash .ci/run"]


def test_the_dry_run_is_manual_and_writes_nothing():
    job = CI["dry-run"]
    assert all(rule.get("when") == "manual" for rule in job["rules"])
    assert "--dry-run" in " ".join(job["script"]) and job["extends"] == ".bot"


def test_the_python_image_is_pinned_by_digest():
    """Finding 20.2: a tag can be re-pointed at another image; a digest cannot."""
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-[\w-]+@sha256:[0-9a-f]{64}", CI["default"]["image"])
    assert CI["variables"]["PIP_CACHE_DIR"] and CI["cache"]["paths"] == [".cache/pip"]


# --- Finding 20.1: secrets only where the bot runs ------------------------------------------------------------------
#
# An evaluator of the `rules:if` expressions this file uses, as GitLab evaluates them (doc/ci/jobs/job_rules.md,
# "CI/CD variable expressions", in gitlabhq/gitlabhq): `$VAR` alone is true when set and not empty; `==`/`!=` compare
# strings, an unset variable compares equal only to another unset one (null); `=~`/`!~` match a /regex/ and an unset
# variable matches nothing; `&&` binds tighter than `||`. The first rule that matches decides; `when: never` drops the
# job; no match drops it. Anything else it meets is an error, so a rule it cannot read fails the test, never passes it.

_TOKEN = re.compile(r"\s*(\$\w+|\"[^\"]*\"|'[^']*'|/(?:\\/|[^/])*/|==|!=|=~|!~|&&|\|\||\(|\))")


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    while pos < len(text.rstrip()):
        match = _TOKEN.match(text, pos)
        assert match, f"cannot read rule {text!r} at {text[pos:]!r}"
        out.append(match.group(1))
        pos = match.end()
    return out


def _holds(text: str, env: dict[str, str | None]) -> bool:
    tokens = _tokens(text)

    def value(tok: str):
        if tok.startswith("$"):
            return env.get(tok[1:])
        if tok[0] in "\"'":
            return tok[1:-1]
        raise AssertionError(f"unexpected {tok!r} in {text!r}")

    def atom(i: int) -> tuple[bool, int]:
        if tokens[i] == "(":
            result, i = either(i + 1)
            assert tokens[i] == ")", text
            return result, i + 1
        if i + 1 < len(tokens) and tokens[i + 1] in ("==", "!=", "=~", "!~"):
            left, op, right = value(tokens[i]), tokens[i + 1], tokens[i + 2]
            if op in ("==", "!="):
                return (left == value(right)) == (op == "=="), i + 3
            assert right.startswith("/") and right.endswith("/"), text
            found = left is not None and re.search(right[1:-1], left) is not None
            return found == (op == "=~"), i + 3
        return bool(value(tokens[i])), i + 1

    def both(i: int) -> tuple[bool, int]:
        result, i = atom(i)
        while i < len(tokens) and tokens[i] == "&&":
            right, i = atom(i + 1)
            result = result and right
        return result, i

    def either(i: int) -> tuple[bool, int]:
        result, i = both(i)
        while i < len(tokens) and tokens[i] == "||":
            right, i = both(i + 1)
            result = result or right
        return result, i

    result, end = either(0)
    assert end == len(tokens), f"trailing tokens in {text!r}"
    return result


def _resolved(name: str) -> dict:
    """A job with its `extends` merged in, as GitLab does: hashes deep-merged, everything else replaced."""
    job = CI[name]
    parents = job.get("extends", [])
    merged: dict = {}
    for parent in [parents] if isinstance(parents, str) else parents:
        merged = _merge(merged, _resolved(parent))
    return _merge(merged, {k: v for k, v in job.items() if k != "extends"})


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _runs(job: dict, env: dict) -> bool:
    assert "only" not in job and "except" not in job, "only/except: use rules, which this test reads"
    for rule in job.get("rules", [{}]):
        assert set(rule) <= {"if", "when"}, f"a rule this test cannot judge: {rule}"
        if "if" not in rule or _holds(rule["if"], env):
            return rule.get("when", "on_success") != "never"
    return False


JOBS = [name for name in CI if not name.startswith(".") and isinstance(CI[name], dict) and "script" in _resolved(name)]
SOURCES = ("push", "merge_request_event", "schedule", "trigger", "web", "api", "pipeline", "parent_pipeline",
           "external", "chat", "webide", "external_pull_request_event", "ondemand_dast_scan")
BRANCHES = ("main", "feature/x", None)  # the default branch, another branch, none (a tag or merge request pipeline)


def _pipelines():
    for source in SOURCES:
        for branch in BRANCHES:
            yield {"CI_PIPELINE_SOURCE": source, "CI_COMMIT_BRANCH": branch, "CI_DEFAULT_BRANCH": "main",
                   "CI_COMMIT_REF_NAME": branch or "v1.0"}


def _sees_secrets(job: dict) -> bool:
    """Every secret is a protected variable scoped to the license-bot environment (README, Operator guide, step 2):
    a job sees them exactly when it names that environment (doc/ci/environments/_index.md, "Limit the environment
    scope of a CI/CD variable"; doc/ci/variables/_index.md, "Protect a CI/CD variable")."""
    env = job.get("environment")
    return (env.get("name") if isinstance(env, dict) else env) == "license-bot"


def test_the_rule_reader_judges_as_gitlab_does():
    env = {"CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": None, "CI_DEFAULT_BRANCH": "main"}
    assert _holds('$CI_PIPELINE_SOURCE == "push"', env)
    assert not _holds("$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH", env)  # unset is not "main"
    assert _holds("$CI_COMMIT_BRANCH == $UNSET", env)                   # null equals null, as in GitLab
    assert not _holds("$CI_COMMIT_BRANCH =~ /.*/", env)
    assert _holds('$CI_COMMIT_BRANCH || $CI_PIPELINE_SOURCE =~ /^(push|web)$/ && $CI_DEFAULT_BRANCH', env)
    assert not _holds('($CI_COMMIT_BRANCH || $CI_PIPELINE_SOURCE == "web") && $CI_DEFAULT_BRANCH', env)


def test_no_job_that_sees_a_secret_runs_on_another_branch_a_merge_request_or_a_push():
    """Finding 20.1: the bot's jobs ran for web/api/trigger pipelines on any ref, so whoever could push a branch or
    start a pipeline there ran a job holding the SMTP login, the Zendesk token and the Slack webhook."""
    secret_jobs = [name for name in JOBS if _sees_secrets(_resolved(name))]
    assert secret_jobs == ["process-requests", "dry-run"]
    for name in secret_jobs:
        for env in _pipelines():
            wanted = env["CI_COMMIT_BRANCH"] == "main" and env["CI_PIPELINE_SOURCE"] in ("schedule", "trigger", "web",
                                                                                          "api")
            assert _runs(_resolved(name), env) == wanted, (name, env)


def test_the_bots_jobs_declare_the_protected_production_environment():
    """doc/ci/yaml/_index.md, `environment:name` and `environment:deployment_tier`: the environment whose protection
    (Settings > CI/CD > Protected environments) says who may run these jobs, and whose scope holds the secrets."""
    for name in ("process-requests", "dry-run"):
        job = _resolved(name)
        assert job["environment"] == {"name": "license-bot", "deployment_tier": "production"}
        assert "-m bot run" in " ".join(job["script"])


def test_the_tests_run_for_pushes_and_merge_requests_and_see_no_secret():
    """`test` runs whatever .ci/run a branch carries: it must sit outside the environment that holds the secrets,
    and nothing outside that environment may run the bot."""
    test = _resolved("test")
    assert not _sees_secrets(test) and "environment" not in test
    assert any(_runs(test, env) for env in _pipelines() if env["CI_PIPELINE_SOURCE"] == "push")
    for name in JOBS:
        job = _resolved(name)
        if not _sees_secrets(job):
            assert "bot run" not in " ".join(map(str, job["script"])), name


def test_the_report_artifact_is_for_developers_only():
    """Finding 20.6: report.json was readable by every Guest with GitLab's default "Public pipelines". doc/ci/yaml/
    _index.md, `artifacts:access`: `developer` limits downloads to the Developer role and above."""
    assert _resolved("process-requests")["artifacts"]["access"] == "developer"
    assert _resolved("dry-run")["artifacts"]["access"] == "developer"


def test_the_bot_job_installs_the_locked_set_from_its_cache():
    """Finding 20.2: `pip install .` took whatever PyPI served that minute. The job installs requirements.lock
    (hashes checked, wheels cached between runs) and runs the bot with python -I."""
    job = _resolved("process-requests")
    assert job["before_script"] == ["bash .ci/install-bot .venv .cache/wheels"]
    assert job["cache"] == {"key": {"files": ["requirements.lock"]}, "paths": [".cache/wheels"]}
    assert job["script"][0].startswith(".venv/bin/python -I -m bot run")
