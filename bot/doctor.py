"""`license-bot doctor` (read-only) and `license-bot setup` (applies what doctor would fix).

One line per check: ✓, ✗ with the fix, or – when it could not be checked because something it
depends on failed (so one broken setting shows as exactly one ✗).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import yaml
from cryptography.hazmat.primitives.asymmetric import padding

from . import keys, resources
from .config import SECRET_VARIABLES, Config, Secrets
from .errors import BotError
from .gitlab.tracker import GitLabTracker
from .mailer import MailError, SmtpMailer

TEMPLATE_PATH = f".gitlab/issue_templates/{resources.ISSUE_TEMPLATE}"
ROLES = {10: "Guest", 15: "Planner", 20: "Reporter", 30: "Developer", 40: "Maintainer", 50: "Owner"}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: not checked
    detail: str
    fix: str = ""
    warn: bool = False  # works now, but will not for long, or not safely: said, not counted as a problem

    def line(self) -> str:
        """One plain sentence (two with the fix), each said once."""
        detail = self.detail.rstrip(". ")
        if self.ok is None:
            return f"– {self.name}: not checked, because {detail}."
        if self.ok and self.warn:
            return f"⚠ {self.name}: {detail}." + (f" {_sentence(self.fix)}" if self.fix else "")
        if self.ok:
            return f"✓ {self.name}: {detail}."
        return f"✗ {self.name}: {detail}." + (f" Fix: {_sentence(self.fix)}" if self.fix else "")


def _sentence(text: str) -> str:
    text = text.rstrip(". ")
    return text[:1].upper() + text[1:] + "."


def lines(checks: list[Check]) -> list[str]:
    """The report: checks that could not run for the same reason are named together, once."""
    out: list[str] = []
    skipped: dict[str, list[str]] = {}
    for c in checks:
        if c.ok is None and c.detail.startswith("needs "):
            if c.detail not in skipped:
                skipped[c.detail] = []
                out.append(c.detail)  # placeholder, filled below
            skipped[c.detail].append(c.name)
        else:
            out.append(c.line())
    for why, names in skipped.items():
        out[out.index(why)] = f"– not checked, because they need {why[6:]}: {', '.join(names)}."
    return out


def labels_wanted(config: Config) -> dict[str, tuple[str, str]]:
    """Every label the bot uses: name -> (colour, description)."""
    r = config.requests
    return {
        r.label: ("#1f75cb", "An emergency license request (License Bot)"),
        r.processing_label: ("#e9be74", "License Bot is working on it, or retrying its email"),
        r.success_label: ("#108548", "License made and emailed; the issue holds a copy"),
        r.failed_label: ("#dd2b0e", "Not processed, or not delivered: the status note says why and what to do"),
        r.override_label: ("#6e49cb", "Waives the scope and duplicate rules (recorded as warnings)"),
    }


def check(config: Config, secrets: Secrets, environ: Mapping[str, str] | None = None,
          ci_file: Path | None = None, today: date | None = None) -> list[Check]:
    env = os.environ if environ is None else environ
    today = today or datetime.now(timezone.utc).date()
    gitlab_checks, tracker = _gitlab_checks(config, secrets, today)
    return [*gitlab_checks, _key_check(config, secrets, env), *_record_checks(config, secrets, tracker),
            _smtp_check(config, secrets),
            _slack_check(config, secrets), *_zendesk_checks(config, secrets), *_ci_checks(env, ci_file),
            *_schedule_checks(env, tracker)]


def _gitlab_checks(config: Config, secrets: Secrets, today: date) -> tuple[list[Check], GitLabTracker | None]:
    where = f"{config.gitlab.url or '(gitlab.url not set)'} {config.gitlab.project or ''}".strip()
    first = "GitLab reachable, token valid"
    try:
        tracker = GitLabTracker(config, secrets.gitlab_token, max_retries=1)
        me = tracker.me()
    except BotError as exc:
        fix = ("create a personal access token with the api scope for the bot's own user (README, \"The token\") "
               "and set GITLAB_TOKEN"
               if "token" in str(exc).lower() else "check gitlab.url (or GITLAB_URL) and the network")
        return ([Check(first, False, str(exc), fix)]
                + [Check(n, None, "needs GitLab, which could not be reached") for n in _GITLAB_PROBES], None)
    results = [Check(first, True, f"{where} answers; the token is @{me['username']}'s")]
    for name, probe in _GITLAB_PROBES.items():
        try:
            results.append(probe(name, tracker, me, config, today))
        except BotError as exc:
            results.append(Check(name, False, str(exc), _gitlab_fix(exc)))
    return results, tracker


def _gitlab_fix(exc: BotError) -> str:
    """What to do when GitLab refused or failed one check, by what its answer means."""
    status = getattr(exc, "status", None)
    if status == 401:
        return "make a new project access token with the api scope and set GITLAB_TOKEN (README, Rotating the token)"
    if status == 403:
        return "give the token's user at least the Reporter role in the tracker (Maintainer for setup)"
    if status == 404:
        return "check gitlab.project is the tracker's full path, and that the token's user is a member of it"
    return "GitLab did not answer this check: run license-bot doctor again; if it persists, check GitLab's status page"


def _key_fix(problem: str) -> str:
    """The one thing to set for a signing key that does not load, by what went wrong."""
    if "PIN" in problem:
        return ("check the PIN by logging in once by hand (pkcs11-tool --login --test), then set LICENSE_SIGNER_PIN "
                "(README, The signing key in a token)")
    if "license.pkcs11." in problem or "token" in problem:
        return "set license.pkcs11.module, token_label and key_label to the token's library and labels"
    if "PASSPHRASE" in problem:
        return "set LICENSE_PRIVATE_KEY_PASSPHRASE to the key's passphrase (masked, protected, scope license-bot)"
    if "no signing key" in problem:
        return ("set LICENSE_PRIVATE_KEY_FILE to the PEM private key's path (in CI, a protected file variable with "
                "environment scope license-bot)")
    return ("point LICENSE_PRIVATE_KEY_FILE at the PEM private key of the pair GitLab trusts (license-bot keygen "
            "makes a throwaway pair for tests)")


def _version(name, tracker, me, config, today) -> Check:
    info = tracker.version()
    text = str(info.get("version") or "unknown")
    numbers = tuple(int(n) for n in re.findall(r"\d+", text)[:2]) or (0, 0)
    # `-ee` / `enterprise: true` name the EE codebase, not a paid tier: EE without a license is Free.
    # Only an administrator may read the license (GET /license), so for most tokens the tier is unknown.
    free_rules = ("scoped labels do not replace each other and issues keep one assignee: the bot removes old "
                  "state labels itself and assigns the author first")
    if not (info.get("enterprise") or text.endswith("-ee")):
        notes = [f"GitLab {text} (Community Edition)", free_rules]
    elif plan := tracker.license_plan():
        notes = [f"GitLab {text} (Enterprise Edition, licensed: {plan})"]
    else:
        notes = [f"GitLab {text} (Enterprise Edition; its tier is unknown: only an administrator may read the "
                 "license, and EE without one is Free)", "if it is Free, " + free_rules]
    if numbers < (16, 6):
        notes.append("its issue search does not index HTML comments: the bot lists requests without searching")
    if numbers < (17, 4):
        notes.append("uploads cannot be downloaded through the API before 17.4: find --download uses the record's copy")
    return Check(name, True, "; ".join(notes))


def _token(name, tracker, me, config, today) -> Check:
    info = tracker.token_info()
    if info is None:
        return Check(name, None, "GitLab does not say this token's scopes and expiry")
    scopes = info.get("scopes") or []
    expires = date.fromisoformat(info["expires_at"]) if info.get("expires_at") else None
    fix = "make a new personal access token with the api scope for the bot's user and replace GITLAB_TOKEN"
    if "api" not in scopes:
        return Check(name, False, f"the token has scopes {', '.join(scopes) or 'none'}, not api", fix)
    if info.get("revoked") or info.get("active") is False or (expires and expires <= today):
        return Check(name, False, f"the token expired on {expires}" if expires else "the token was revoked", fix)
    if expires is None:
        return Check(name, True, "scope api; the token never expires")
    days = (expires - today).days
    if days <= 14:
        return Check(name, True, f"scope api; the token expires on {expires}, in {days} day{'s' if days != 1 else ''}",
                     "renew it now (README, \"Rotating the token\"): every run fails once it expires", warn=True)
    return Check(name, True, f"scope api; the token expires on {expires}, in {days} days")


def _groups(name, tracker, me, config, today) -> Check:
    r = config.requests
    groups = sorted({*r.requester_groups, *r.approver_groups})
    for group in groups:
        tracker.member_level(group, me["id"])  # reads the group, then a member: each raises with the fix
    return Check(name, True, f"the bot can read the members of {', '.join(groups)}" if groups else "none configured")


def _role(name, tracker, me, config, today) -> Check:
    level = tracker.my_level()
    role = ROLES.get(level, str(level)) if level else "not a member"
    return Check(name, level >= 20, f"@{me['username']} is {role}",
                 "give the token's user at least the Reporter role in the tracker")


def _private(name, tracker, me, config, today) -> Check:
    visibility = tracker.project_info().get("visibility")
    return Check(name, visibility != "public", f"visibility {visibility}",
                 "make the tracker private: an upload in a public project is readable by anyone with its link")


def _labels(name, tracker, me, config, today) -> Check:
    missing = sorted(set(labels_wanted(config)) - tracker.label_names())
    return Check(name, not missing, "all present" if not missing else "missing " + ", ".join(missing),
                 "run license-bot setup (it creates them)")


def _template(name, tracker, me, config, today) -> Check:
    branch = tracker.project_info().get("default_branch") or "main"
    current = tracker.file_text(TEMPLATE_PATH, branch)
    ok = current == resources.issue_template().read_text(encoding="utf-8")
    state = "matches templates/" if ok else ("is missing" if current is None else "differs from templates/")
    return Check(name, ok, f"{TEMPLATE_PATH} on {branch} {state}", "run license-bot setup (it commits the template)")


_GITLAB_PROBES = {"GitLab version": _version, "token": _token, "role in the tracker": _role,
                  "tracker is private": _private, "requester and approver groups": _groups, "labels": _labels,
                  "issue template": _template}


def _key_check(config: Config, secrets: Secrets, env: Mapping[str, str]) -> Check:
    """The signer: it loads (module, token, key, PIN), and a probe signature recovers with the public key
    engineers check licenses with. In CI, a file key is a warning: every maintainer can read it."""
    from .signer import SignerError

    name = "signing key"
    try:
        signer = keys.signer_from(config, secrets)
    except (BotError, SignerError) as exc:  # the message says what to set
        return Check(name, False, str(exc), _key_fix(str(exc)))
    kind = (f"a key in the PKCS#11 token {config.license.pkcs11.token_label!r}" if config.license.signer == "pkcs11"
            else f"a {signer.public_key().key_size}-bit RSA key from {secrets.private_key_source}")
    path = secrets.public_key_file or config.license.public_key_file
    if not path:
        return Check(name, False, f"{kind} signs, but no public key is configured to check licenses with",
                     "set LICENSE_PUBLIC_KEY_FILE or license.public_key_file")
    try:
        public = keys.load_public_key(path)
        probe = hashlib.sha256(b"license-bot doctor probe").digest()[:16]
        recovered = public.recover_data_from_signature(signer.sign_raw(probe), padding.PKCS1v15(), None)
    except (BotError, SignerError) as exc:
        return Check(name, False, str(exc), "point LICENSE_PUBLIC_KEY_FILE at the public half of the signing key")
    except Exception:  # noqa: BLE001 - a signature that does not recover: the wrong pair
        recovered = None
    if recovered != probe:
        return Check(name, False, f"{kind} does not match the public key in {path}: licenses it signs would not "
                                  "check out", "use the matching pair")
    if config.license.signer == "file" and env.get("GITLAB_CI") == "true":
        return Check(name, True, f"{kind} signs, and its signatures check out with {path}. But the key is a file: "
                                 "every maintainer of this project can read the signing key",
                     "Hold it in an HSM or key service and set license.signer: pkcs11 (README, \"The signing key in "
                     "a token\")", warn=True)
    return Check(name, True, f"{kind} signs, and its signatures check out with {path}")


def _record_checks(config: Config, secrets: Secrets, tracker: GitLabTracker | None) -> list[Check]:
    """The record of issued licenses: every entry signed and chained (which entry, and what is wrong), and
    every issue holding a key confidential."""
    from .record import Record

    names = ("record of issued licenses", "license keys confidential", "trusted keys")
    if tracker is None:
        return [Check(n, None, "needs GitLab, which could not be reached") for n in names]
    path = secrets.public_key_file or config.license.public_key_file
    try:
        trusted = keys.trusted_keys(config, keys.load_public_key(path) if path else None)
    except BotError as exc:
        if "trusted_public_keys" in str(exc):
            return [Check(names[2], False, str(exc), "fix the path, or remove the entry if that key signed nothing"),
                    *(Check(n, None, "a trusted key cannot be read") for n in names[:2])]
        trusted, why = None, str(exc)
    else:
        why = "no public key is configured (LICENSE_PUBLIC_KEY_FILE or license.public_key_file)"
    if not path or trusted is None:
        return [Check(n, None, why) for n in names]
    record = Record(tracker, [key for _, key in trusted])
    try:
        entries, problems, old = record.entries(), record.problems(), record.unchained()
        exposed = record.exposed()
    except BotError as exc:
        return [Check(n, False, str(exc), _gitlab_fix(exc)) for n in names]
    if problems:
        first = Check(names[0], False, f"{len(problems)} problem{'s' if len(problems) != 1 else ''}: "
                      + "; ".join(p.line() for p in problems),
                      "until it is repaired every new request is held for a person. Restore each entry's description "
                      "from its issue's history (Edited > Compare with previous version), or, if an entry is gone, "
                      "find its license in the requests' status notes and decide by hand")
    elif not entries and tracker.labelled(config.requests.success_label):
        first = Check(names[0], True, f"the record (issues opened by @{tracker.me()['username']}) is empty, yet "
                      f"issues are labelled {config.requests.success_label}: if the bot's token was changed to another "
                      "user, the licenses the old user recorded are not seen, and could be made again",
                      "list the old user in requests.record_authors (README, \"The token\")", warn=True)
    else:
        legacy = (f"; {len(old)} older unsigned entries on the old record issue #{record.audit().legacy_iid} are "
                  "checked by their keys only and are moved into the chain by the next run that makes a license"
                  if old else "")
        first = Check(names[0], True, f"{len(entries)} license{'s' if len(entries) != 1 else ''}, every entry signed "
                                      f"and chained{legacy}")
    if exposed:
        second = Check(names[1], False, "not confidential: " + ", ".join(i.ref for i in exposed)
                       + ": any Guest can read the license keys there",
                       "the next run with a request to process makes them confidential again; to close the gap now, "
                       "set each one confidential (issue sidebar > Confidentiality)")
    else:
        second = Check(names[1], True, "every record entry and every request holding a key is confidential")
    return [first, second, _trusted_keys_check(names[2], trusted, entries, problems)]


def _trusted_keys_check(name: str, trusted, entries, problems) -> Check:
    """Each trusted key with the record entries it verifies (an old, unsigned entry counts for the key its license
    decodes with), and a warning for every entry no trusted key verifies: after a rotation, the sign that an
    earlier key is missing from license.trusted_public_keys."""
    def counted(kid: str) -> str:
        n = sum(1 for r in entries if (r.entry_key or r.license_key) == kid)
        return f"{n} record entr{'ies' if n != 1 else 'y'}"
    listed = "; ".join(f"{label} {keys.key_id(key)}: {counted(keys.key_id(key))}" for label, key in trusted)
    unverified = [p for p in problems if "no signature by a trusted key" in p.what]
    if unverified:
        return Check(name, True, f"{listed}. {len(unverified)} entr{'ies' if len(unverified) != 1 else 'y'} verify "
                                 "with no trusted key: " + ", ".join(p.where for p in unverified)
                     + "; every new request is held for a person meanwhile",
                     "if the signing key was rotated, list the earlier key's public file in "
                     "license.trusted_public_keys (README, \"Rotating the key\"); otherwise the entry was edited: "
                     "restore it from its history", warn=True)
    return Check(name, True, listed)


def _smtp_check(config: Config, secrets: Secrets) -> Check:
    c = config.smtp
    how = {"none": "without encryption", "starttls": "with STARTTLS", "ssl": "over TLS"}[c.security]
    login = f", logging in as {c.username}" if c.username else ", without logging in"
    try:
        client = SmtpMailer(c, secrets.smtp_password).connect()
        client.quit()
    except MailError as exc:
        return Check("mail server", False, str(exc),
                     "set smtp.security, smtp.username (with SMTP_PASSWORD) and smtp.from to what this server accepts "
                     "(README, Mail and Slack)" if exc.config else "check smtp.host and smtp.port")
    if c.security == "none" and crosses_network(c.host):
        return Check("mail server", True, f"{c.host}:{c.port} accepts a connection {how}{login}; no mail was sent. "
                                          "License keys would cross the network in plain text",
                     "Set smtp.security to starttls or ssl, unless the server is a relay on this machine", warn=True)
    return Check("mail server", True, f"{c.host}:{c.port} accepts a connection {how}{login}; no mail was sent")


def crosses_network(host: str) -> bool:
    """Whether mail to this host leaves the machine: any of its addresses is not a loopback one."""
    import ipaddress
    import socket

    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return True
    return not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def _zendesk_checks(config: Config, secrets: Secrets) -> list[Check]:
    """Zendesk reachable, the token valid, the API user an agent (it reads tickets and writes internal notes)."""
    if not config.zendesk.enabled:
        return [Check("Zendesk", True, "disabled (zendesk.enabled: false): the ticket is not checked and the license "
                                       "is not left on it")]
    from .zendesk import ZendeskClient, ZendeskError, unusable_role

    try:
        me = ZendeskClient(config.zendesk, secrets.zendesk_api_token).me()
    except ZendeskError as exc:
        return [Check("Zendesk", False, str(exc),
                      "set zendesk.url to the account (https://SUBDOMAIN.zendesk.com), zendesk.email to an agent and "
                      "ZENDESK_API_TOKEN to that agent's API token" if exc.config
                      else "check zendesk.url and the network")]
    why = unusable_role(me)
    if why:
        return [Check("Zendesk", False, f"{config.zendesk.url} answers, but {me.get('email')} {why}",
                      "set zendesk.email to an agent whose role may add private comments and edit tags, and its "
                      "API token")]
    return [Check("Zendesk", True, f"{config.zendesk.url} answers; {me.get('email')} is an {me.get('role')}")]


def _slack_check(config: Config, secrets: Secrets) -> Check:
    if not config.slack.enabled:
        return Check("Slack", True, "disabled (slack.enabled: false): post the ticket URL in the channel by hand")
    if not secrets.slack_webhook_url:
        return Check("Slack", False, "slack.enabled is true but SLACK_WEBHOOK_URL is not set",
                     "store the incoming webhook URL as the masked variable SLACK_WEBHOOK_URL")
    return Check("Slack", True, f"webhook configured for {config.slack.channel} (nothing was posted)")


def _secrets_check(env: Mapping[str, str]) -> Check:
    """In a pipeline, secrets belong to protected refs only (a protected variable reaches no other ref), and to the
    bot's environment (an environment-scoped one reaches no other job). A secret seen anywhere else is one that any
    Developer who can push a branch can send away."""
    present = [name for name in SECRET_VARIABLES if env.get(name)]
    ref = env.get("CI_COMMIT_REF_NAME") or "this ref"
    if not present:
        return Check("secrets protected", True, "no secret reaches this job")
    names = ", ".join(present)
    if env.get("CI_COMMIT_REF_PROTECTED") != "true":
        return Check("secrets protected", True, f"{names} reach this job on {ref}, which is not a protected branch: "
                                                "every Developer who can push a branch can read them",
                     "In Settings > CI/CD > Variables make each of them Protected and scope it to the license-bot "
                     "environment (README, Operator guide)", warn=True)
    if not env.get("CI_ENVIRONMENT_NAME"):
        return Check("secrets protected", True, f"{names} reach a job outside any environment on {ref}: every job "
                                                "of a protected-branch pipeline sees them, tests included",
                     "Scope each of them to the license-bot environment", warn=True)
    return Check("secrets protected", True, f"{names} reach this job on the protected {ref}, in the "
                                            f"{env['CI_ENVIRONMENT_NAME']} environment")


def _ci_checks(env: Mapping[str, str], ci_file: Path | None) -> list[Check]:
    checks = []
    if env.get("GITLAB_CI") == "true":
        source = env.get("CI_PIPELINE_SOURCE", "")
        ok = source in ("schedule", "trigger", "web", "api", "push", "merge_request_event")
        checks.append(Check("CI", ok, f"running in GitLab CI, pipeline source {source or '(not set)'}",
                            "run the bot from schedule, trigger, web or api pipelines"))
        checks.append(_secrets_check(env))
    else:
        checks.append(Check("CI", None, "this is not a GitLab CI job"))
    path = ci_file or Path(env.get("CI_PROJECT_DIR", ".")) / ".gitlab-ci.yml"
    if not path.exists():
        checks.append(Check("pipeline serialised", None, f"there is no {path}"))
        return checks
    try:
        pipeline = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        return [*checks, Check("pipeline serialised", False, f"{path} is not valid YAML: {exc}", "fix the file")]
    jobs = {name: job for name, job in pipeline.items() if isinstance(job, dict)}
    runs = [name for name, job in jobs.items() if re.search(r"(license-bot|-m bot) run\b", " ".join(
            map(str, job.get("script", [])))) and "--dry-run" not in " ".join(map(str, job.get("script", [])))]

    def group(name: str) -> str | None:
        job = jobs.get(name, {})
        parent = job.get("extends")
        return job.get("resource_group") or (group(parent) if isinstance(parent, str) else None)
    unserialised = [name for name in runs if not group(name)]
    if not runs:
        return [*checks, Check("pipeline serialised", False, f"no job in {path} runs `license-bot run`",
                               "add the process-requests job from this project's .gitlab-ci.yml")]
    return [*checks, Check("pipeline serialised", not unserialised,
                           f"jobs {', '.join(runs)} " + ("have a resource_group" if not unserialised
                                                        else f"lack a resource_group: {', '.join(unserialised)}"),
                           "add `resource_group: license-bot` so two runs never overlap")]


def _schedule_checks(env: Mapping[str, str], tracker: GitLabTracker | None) -> list[Check]:
    """In a pipeline: the schedule that runs the bot is active and its owner active (GitLab deactivates a
    schedule whose owner is blocked or removed, and the bot then silently stops)."""
    if env.get("GITLAB_CI") != "true" or not env.get("CI_PROJECT_ID"):
        return []
    name = "schedule"
    if tracker is None:
        return [Check(name, None, "needs GitLab")]
    try:
        schedules = tracker.pipeline_schedules(env["CI_PROJECT_ID"])
    except BotError as exc:
        return [Check(name, False, str(exc), f"give the token's user the Reporter role in the bot's project "
                                             f"{env['CI_PROJECT_ID']}, which runs the schedule (a project access "
                                             "token of the tracker cannot reach another project: README, \"The "
                                             "token\")")]
    good = [s for s in schedules if s.get("active") and (s.get("owner") or {}).get("state", "active") == "active"]
    if good:
        owner = (good[0].get("owner") or {}).get("username", "?")
        return [Check(name, True, f"{good[0].get('description') or 'a schedule'} runs {good[0].get('cron')}, owned by "
                                  f"@{owner} (active)")]
    why = "no pipeline schedule" if not schedules else "no active schedule with an active owner"
    return [Check(name, False, f"{why} in project {env['CI_PROJECT_ID']}",
                  "CI/CD > Schedules: make (or take ownership of) an active schedule, every 10 minutes")]


def setup(config: Config, secrets: Secrets) -> list[str]:
    """Create the missing labels and commit the issue template; returns what was changed."""
    tracker = GitLabTracker(config, secrets.gitlab_token)
    changes = []
    existing = tracker.label_names()
    for name, (colour, description) in labels_wanted(config).items():
        if name not in existing and tracker.create_label(name, colour, description):
            changes.append(f"created label {name}")
    branch = tracker.project_info().get("default_branch") or "main"
    expected = resources.issue_template().read_text(encoding="utf-8")
    current = tracker.file_text(TEMPLATE_PATH, branch)
    if current != expected:
        tracker.write_file(TEMPLATE_PATH, expected, branch, "Install the Emergency License Request template "
                                                              "(license-bot setup)", create=current is None)
        changes.append(f"{'committed' if current is None else 'updated'} {TEMPLATE_PATH} on {branch}")
    return changes
