"""Issue 20, finding 2: a reproducible install. requirements.lock pins the bot's runtime and build backend with
hashes; it agrees with pyproject.toml; it installs, with pip's --require-hashes, into a fresh venv that runs."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .e2e import ROOT

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCK = (ROOT / "requirements.lock").read_text()


def locked(text: str) -> list[tuple[str, str, str | None, list[str]]]:
    """(name, version, marker, hashes) for each pin of a requirements file written by .ci/lock."""
    pins = []
    for block in re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2] if text.startswith("#") else text):
        head = block.split("\\", 1)[0].strip()
        if not head or head.startswith("#"):
            continue
        requirement, _, marker = head.partition(";")
        name, _, version = requirement.strip().partition("==")
        pins.append((canonicalize_name(name), version.strip(), marker.strip() or None,
                     re.findall(r"--hash=sha256:([0-9a-f]{64})", block)))
    return pins


def disagreements(pyproject: dict, lock_text: str) -> list[str]:
    """Every way the lock and pyproject.toml disagree, for each Python the bot supports."""
    pins = locked(lock_text)
    problems = [f"{name}=={version} has no sha256 hash" for name, version, _, hashes in pins if not hashes]
    for spec in [*pyproject["project"]["dependencies"], *pyproject["build-system"]["requires"]]:
        wanted = Requirement(spec)
        for python in ("3.10", "3.11", "3.12", "3.13"):
            env = {"python_version": python, "python_full_version": f"{python}.0"}
            found = [v for n, v, m, _ in pins if n == canonicalize_name(wanted.name)
                     and (m is None or Marker(m).evaluate(env))]
            if len(found) != 1:
                problems.append(f"{wanted.name} for Python {python}: {len(found)} pins in the lock")
            elif not wanted.specifier.contains(found[0], prereleases=True):
                problems.append(f"{wanted.name}=={found[0]} in the lock does not satisfy {spec!r} in pyproject.toml")
    return sorted(set(problems))


def test_the_lock_agrees_with_pyproject_and_hashes_every_pin():
    assert disagreements(PYPROJECT, LOCK) == []
    assert all(len(hashes) >= 1 for *_, hashes in locked(LOCK))


def test_a_lock_that_disagrees_with_pyproject_is_caught():
    """The check above can fail: a raised floor, a new dependency, a lost hash."""
    raised = {**PYPROJECT, "project": {**PYPROJECT["project"],
                                       "dependencies": ["jinja2>=99", "left-pad>=1", *PYPROJECT["project"]
                                                        ["dependencies"][1:]]}}
    problems = disagreements(raised, LOCK)
    assert any(p.startswith("jinja2==") and "does not satisfy 'jinja2>=99'" in p for p in problems)
    assert "left-pad for Python 3.12: 0 pins in the lock" in problems
    unhashed = re.sub(r"(jinja2==[\d.]+) \\\n(?:\s+--hash=sha256:\w+(?: \\)?\n)+", r"\1\n", LOCK)
    assert unhashed != LOCK
    assert any(p.startswith("jinja2==") and "no sha256 hash" in p for p in disagreements(PYPROJECT, unhashed))


def test_the_build_backend_is_pinned_and_production_gets_no_sandbox_or_test_package():
    """Finding 20.2: the backend was fetched at build time, and production installed the sandbox's mail sink."""
    backend = PYPROJECT["build-system"]["requires"]
    assert len(backend) == 1 and re.fullmatch(r"setuptools==[\d.]+", backend[0])
    names = {name for name, *_ in locked(LOCK)}
    extras = PYPROJECT["project"]["optional-dependencies"]
    for spec in [*extras["sandbox"], *extras["test"], *extras["hsm"]]:
        assert canonicalize_name(Requirement(spec).name) not in names, spec
    assert {"aiosmtpd", "snowballstemmer"} == {canonicalize_name(Requirement(s).name) for s in extras["sandbox"]}


def test_advisory_floors():
    """Floors above published advisories: aiosmtpd 1.4.5 (CVE-2024-27305, PYSEC-2024-221) and 1.4.6
    (CVE-2024-34083, GHSA-wgjv-9j3q-jhg8); jinja2 3.1.6 (CVE-2025-27516); requests 2.32.4 (CVE-2024-47081)."""
    floors = {Requirement(s).name: Requirement(s).specifier for s in
              [*PYPROJECT["project"]["dependencies"], *PYPROJECT["project"]["optional-dependencies"]["sandbox"]]}
    for name, below, fixed in (("aiosmtpd", "1.4.5", "1.4.6"), ("jinja2", "3.1.5", "3.1.6"),
                               ("requests", "2.32.3", "2.32.4")):
        assert not floors[name].contains(below) and floors[name].contains(fixed), name


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_every_package_the_bot_imports_is_declared():
    """Finding 20.2: `requests` was imported but not declared. Each third-party module imported by the bot comes
    from a distribution it declares: the runtime's for the bot, the sandbox extra's for the sandbox, hsm's for
    the PKCS#11 signer."""
    providers = importlib.metadata.packages_distributions()
    extras = PYPROJECT["project"]["optional-dependencies"]
    declared = {"runtime": PYPROJECT["project"]["dependencies"], "sandbox": extras["sandbox"], "hsm": extras["hsm"],
                "test": [s for s in extras["test"] if not s.startswith("license-bot[")] + extras["sandbox"]}
    declared = {k: {canonicalize_name(Requirement(s).name) for s in v} for k, v in declared.items()}
    for path in sorted([*(ROOT / "bot").rglob("*.py"), *(ROOT / "tests").rglob("*.py"),
                        *(ROOT / "benchmarks").rglob("*.py")]):
        kind = ("test" if path.parts[len(ROOT.parts)] in ("tests", "benchmarks")
                else "sandbox" if "sandbox" in path.parts or path.name == "mailsink.py"
                else "hsm" if path.name == "signer.py" else "runtime")
        # tomli: this file's fallback on Python 3.10 only, declared for it in the test extra
        for module in _imports(path) - set(sys.stdlib_module_names) - {"bot", "tests", "__future__", "tomli"}:
            dists = {canonicalize_name(d) for d in providers.get(module, [])}
            allowed = declared["runtime"] | declared[kind]
            assert dists & allowed, f"{path.relative_to(ROOT)} imports {module} ({dists or 'not installed'}), " \
                                    f"which pyproject.toml does not declare for {kind}"


def test_the_runtime_installs_from_the_lock_with_require_hashes_and_runs_idle(sandbox, key_pair, tmp_path):
    """The scheduled job's own install (.ci/install-bot: pip --require-hashes, wheels only, offline from its cache
    when it can), into a fresh venv, then `run` on an empty tracker: found 0."""
    venv, wheels = tmp_path / "venv", tmp_path / "wheels"
    install = subprocess.run(["bash", str(ROOT / ".ci" / "install-bot"), str(venv), str(wheels)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    python = venv / "bin" / "python"
    frozen = subprocess.run([python, "-I", "-m", "pip", "freeze", "--all", "--exclude", "license-bot", "--exclude",
                             "pip"], capture_output=True, text=True, check=True).stdout
    env = {"python_version": f"{sys.version_info.major}.{sys.version_info.minor}",
           "python_full_version": f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"}
    wanted = {f"{name}=={version}" for name, version, marker, _ in locked(LOCK)
              if (marker is None or Marker(marker).evaluate(env))}
    assert {canonicalize_name(line.split("==")[0]) + "==" + line.split("==")[1]
            for line in frozen.split()} == wanted  # exactly the locked set, nothing more

    config = tmp_path / "config.yaml"
    config.write_text(f"gitlab: {{url: '{sandbox.url}', project: support/internal-requests}}\n")
    run_env = {"PATH": os.environ["PATH"], "GITLAB_TOKEN": "bot-token", "LICENSE_PRIVATE_KEY_FILE": str(key_pair[0])}
    idle = subprocess.run([python, "-I", "-m", "bot", "--config", str(config), "run"], capture_output=True, text=True,
                          env=run_env, timeout=120)
    assert idle.returncode == 0, idle.stderr
    said = " ".join(idle.stdout.split())  # a CI log is 80 columns: the summary wraps there
    assert said.startswith("found 0, succeeded 0") and said.endswith("API calls 2")

    # The sandbox is not in production's set: its commands say which extra to install.
    demo = subprocess.run([python, "-I", "-m", "bot", "demo"], capture_output=True, text=True, env=run_env,
                          timeout=60)
    assert demo.returncode == 1 and "Traceback" not in demo.stderr
    assert "license-bot demo needs the sandbox extra" in demo.stderr and "'license-bot[sandbox]'" in demo.stderr

    # A second install needs no index: the cached wheels suffice (an unreachable index proves it).
    again = subprocess.run(["bash", str(ROOT / ".ci" / "install-bot"), str(tmp_path / "again"), str(wheels)],
                           capture_output=True, text=True, timeout=600,
                           env={**os.environ, "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_FIND_LINKS": "",
                                "PIP_EXTRA_INDEX_URL": ""})
    assert again.returncode == 0, again.stderr[-3000:]
