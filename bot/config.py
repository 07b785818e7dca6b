"""Configuration: config.yaml read into frozen dataclasses, secrets read from the environment.

Every problem names its key path, what was found and what was expected, and all problems are
reported at once, before the bot touches anything.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from . import files, resources
from .errors import BotError
from .license import TrialTerms
from .scrub import Scrubber


class ConfigError(BotError):
    pass


# GitLab's role names and access levels; Guests never request or approve.
ACCESS_LEVELS = {"reporter": 20, "developer": 30, "maintainer": 40, "owner": 50}


@dataclass(frozen=True)
class GitLabConfig:
    url: str
    project: str
    timeout_seconds: int


@dataclass(frozen=True)
class RequestsConfig:
    label: str
    processing_label: str
    success_label: str
    failed_label: str
    override_label: str
    requester_groups: tuple[str, ...]
    requester_users: tuple[str, ...]
    approver_groups: tuple[str, ...] = ("support-managers",)
    approver_users: tuple[str, ...] = ()
    min_access_level: int = 20
    record_authors: tuple[str, ...] = ()  # earlier bot users whose record entries still count (a changed token)
    renewals: str = "the licensing team in #support_licensing-subscription"  # where a renewal case goes

    @property
    def min_access_name(self) -> str:
        return {v: k for k, v in ACCESS_LEVELS.items()}[self.min_access_level].capitalize()

    @property
    def state_labels(self) -> tuple[str, str, str]:
        return (self.processing_label, self.success_label, self.failed_label)


@dataclass(frozen=True)
class Pkcs11Config:
    module: str | None = None      # the vendor's PKCS#11 library
    token_label: str | None = None
    key_label: str | None = None
    refused_pins_file: str | None = None  # where a PIN the token refused is remembered; None: the user's state dir


@dataclass(frozen=True)
class LicenseConfig:
    terms: TrialTerms
    public_key_file: str | None
    signer: str = "file"           # file | pkcs11
    pkcs11: Pkcs11Config = Pkcs11Config()
    trusted_public_keys: tuple[str, ...] = ()  # earlier keys' public files: their licenses and entries still count


@dataclass(frozen=True)
class ScopeConfig:
    grace_period_days: int
    window_days: int


@dataclass(frozen=True)
class PolicyConfig:
    max_users: int
    deny_email_domains: tuple[str, ...]
    email_cooldown_days: int
    scope: ScopeConfig
    cooldown_ignores_subaddress: bool = True  # ops+again@x.com is ops@x.com's mailbox: one cooldown


@dataclass(frozen=True)
class TicketsConfig:
    base_url: str

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or ""


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: str
    username: str | None
    sender: str
    reply_to: str | None
    timeout_seconds: int
    ca_file: str | None = None


@dataclass(frozen=True)
class SlackConfig:
    enabled: bool
    channel: str
    timeout_seconds: int


@dataclass(frozen=True)
class ZendeskConfig:
    enabled: bool = False
    url: str = ""               # the Zendesk account, e.g. https://gitlab.zendesk.com
    email: str | None = None    # the API user (an agent); the token is ZENDESK_API_TOKEN
    timeout_seconds: int = 10
    min_attachments: int = 2    # the two screenshots the checklist asks for
    tag: str = "emergency_license_issued"
    internal_note: bool = True
    max_wait_seconds: int = 300  # one run's total wait for Zendesk's Retry-After and outages; then the next run
    help_center_url: str | None = None  # the customer's view of a ticket, if not {url}/hc/requests/N


# The longest trial `license.duration_days` allows: no license the bot made can run longer (reminders rely on it).
MAX_DURATION_DAYS = 30


@dataclass(frozen=True)
class RemindersConfig:
    enabled: bool = False  # off: a run never reads the record for reminders (an idle run's cost unchanged)
    days_before: int = 2   # the note is posted this many days before the license expires (or later, if missed)


@dataclass(frozen=True)
class RunConfig:
    max_attempts: int
    recheck_minutes: int = 60
    lock_stale_minutes: int = 15


@dataclass(frozen=True)
class Secrets:
    """Values that must never be printed; repr hides them."""

    gitlab_token: str | None = field(default=None, repr=False)
    private_key_pem: bytes | None = field(default=None, repr=False)
    private_key_passphrase: bytes | None = field(default=None, repr=False)
    smtp_password: str | None = field(default=None, repr=False)
    slack_webhook_url: str | None = field(default=None, repr=False)
    zendesk_api_token: str | None = field(default=None, repr=False)
    signer_pin: str | None = field(default=None, repr=False)
    public_key_file: str | None = None
    private_key_source: str = "LICENSE_PRIVATE_KEY"  # the variable the key came from, for messages
    private_key_problem: str | None = None  # why the key variables cannot be used; raised only where a key is needed

    def values(self) -> list[str]:
        """Every secret value, so output can be checked and scrubbed against them."""
        found = [self.gitlab_token, self.smtp_password, self.slack_webhook_url, self.zendesk_api_token,
                 self.signer_pin]
        for blob in (self.private_key_pem, self.private_key_passphrase):
            if blob:
                found.append(blob.decode("utf-8", "replace"))
        return [v for v in found if v]


@dataclass(frozen=True)
class ReportConfig:
    repeat_window_days: int = 90  # two licenses for one customer domain this close together: a repeat customer
    expiring_days: int = 7        # the report lists licenses that expire within this many days


@dataclass(frozen=True)
class Config:
    gitlab: GitLabConfig
    requests: RequestsConfig
    license: LicenseConfig
    policy: PolicyConfig
    tickets: TicketsConfig
    smtp: SmtpConfig
    slack: SlackConfig
    run: RunConfig
    source: str
    zendesk: ZendeskConfig = ZendeskConfig()
    report: ReportConfig = ReportConfig()
    reminders: RemindersConfig = RemindersConfig()


# --- reading ---------------------------------------------------------------------------------------

class _Reader:
    """Walks one mapping, recording a message per bad key so all are reported together."""

    def __init__(self, raw: Any, path: str, errors: list[str], node: Any = None):
        self.path, self.errors, self.node = path, errors, node
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            errors.append(f"{path or 'the file'}: expected a mapping of keys, got {_show(raw, node)}")
            raw = {}
        self.raw = raw
        self.seen: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _node(self, key: str) -> Any:
        """The YAML node of the key's value, for its line and column (None for a dict built in code)."""
        for key_node, value_node in _pairs(self.node):
            if key_node.value == key:
                return value_node
        return None

    def section(self, key: str) -> _Reader:
        self.seen.add(key)
        return _Reader(self.raw.get(key), self._key(key), self.errors, self._node(key))

    def get(self, key: str, default: Any, check, expected: str) -> Any:
        self.seen.add(key)
        value = self.raw.get(key, default)
        if value is None and default is None:
            return None
        if check(value):
            return value
        self.errors.append(f"{self._key(key)}: expected {expected}, got {_show(value, self._node(key))}")
        return default

    def integer(self, key: str, default: int, lo: int, hi: int, what: str) -> int:
        def ok(v):
            return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi
        return self.get(key, default, ok, f"{what} from {lo} to {hi}")

    def text(self, key: str, default: str | None, expected: str = "a non-empty text") -> str | None:
        return self.get(key, default, lambda v: isinstance(v, str) and v.strip() != "", expected)

    def flag(self, key: str, default: bool) -> bool:
        return self.get(key, default, lambda v: isinstance(v, bool), "true or false")

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        return self.get(key, default, lambda v: v in choices, " or ".join(choices))

    def strings(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.get(
            key, list(default),
            lambda v: isinstance(v, list) and all(isinstance(i, str) and i.strip() for i in v),
            "a list of texts",
        )
        return tuple(value)

    def url(self, key: str, default: str | None) -> str | None:
        def ok(v):
            return isinstance(v, str) and urlsplit(v).scheme in ("http", "https") and bool(urlsplit(v).hostname)
        value = self.get(key, default, ok, "an http(s) URL such as https://gitlab.example.com")
        return value.rstrip("/") if value else value

    def done(self) -> None:
        for key in sorted(set(map(str, self.raw)) - self.seen):
            import difflib  # only a config with an unknown key pays for it

            known = ", ".join(sorted(self.seen))
            # A key is named only when it is a typo of a known one: a secret pasted as a key stays unsaid.
            typo = _NAME_RE.fullmatch(key) and difflib.get_close_matches(key, sorted(self.seen), n=1, cutoff=0.6)
            where = next((_at(k) for k, _ in _pairs(self.node) if k.value == key), "")
            if typo:  # the one key meant, not the list of all
                self.errors.append(f"{self._key(key)}: unknown key{where}; did you mean {self._key(typo[0])}?")
            else:
                self.errors.append(f"{self.path or 'the file'}: a key: unknown key{where} (known keys here: {known})")


def _one_address(value: Any) -> bool:
    """One mailbox, and nothing that could start another header line (a CR or LF would add a Bcc:)."""
    from email.utils import getaddresses

    if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
        return False
    addresses = getaddresses([value])
    return len(addresses) == 1 and addresses[0][1].count("@") == 1 and all(addresses[0][1].split("@"))


_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,40}")


def _pairs(node: Any) -> list:
    """A YAML mapping node's (key, value) nodes whose keys are plain scalars."""
    if not isinstance(node, yaml.MappingNode):
        return []
    return [(k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)]


def _at(node: Any) -> str:
    mark = getattr(node, "start_mark", None)
    return f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""


def _show(value: Any, node: Any = None) -> str:
    """What was found, never the text itself: a config file named by mistake may be a key or a .env file,
    and its contents must not reach the terminal. The line and column say where to look."""
    if isinstance(value, str):
        kind = "an empty text" if not value.strip() else f"a text of {len(value):,} characters"
    elif value is None:
        kind = "nothing"
    elif isinstance(value, (bool, int, float)):
        kind = repr(value)
    elif isinstance(value, (list, tuple)):
        kind = f"a list of {len(value)}"
    elif isinstance(value, Mapping):
        kind = "a mapping"
    else:
        kind = f"a {type(value).__name__}"
    return kind + _at(node)


def load(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read the config file: PATH, else $LICENSE_BOT_CONFIG, else the built-in config.yaml."""
    env = os.environ if environ is None else environ
    chosen = path or env.get("LICENSE_BOT_CONFIG")
    source = Path(chosen) if chosen else resources.default_config()
    if not path and chosen and in_pipeline(env):
        _inside_repository(source, env)
    try:
        data = files.read_bytes(source, files.CONFIG_BYTES, "the config file")
    except files.FileError as exc:
        raise ConfigError(str(exc)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        raw = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        # PyYAML quotes the offending text in its problem ("found character '...'"): say what, not the text.
        problem = re.sub(r"'[^'\n]*'|\"[^\"\n]*\"", "…", str(getattr(exc, "problem", None) or "unreadable"))
        raise ConfigError(f"{source}: not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to be a configuration; a config is a few levels of "
                          "keys") from None
    finally:
        loader.dispose()
    return parse(raw, env, str(source), node)


def _inside_repository(source: Path, env: Mapping[str, str]) -> None:
    """In a pipeline, LICENSE_BOT_CONFIG may name only a file of the repository: a pipeline variable pointing it at
    another file (TRIGGER_PAYLOAD's, say: JSON is YAML) would otherwise choose where the token and the mail go."""
    project_dir = env.get("CI_PROJECT_DIR")
    try:
        inside = bool(project_dir) and source.resolve().is_relative_to(Path(project_dir).resolve())
    except OSError:
        inside = False
    if not inside:
        repository = project_dir or "CI_PROJECT_DIR is not set"
        raise ConfigError(f"LICENSE_BOT_CONFIG: {source} is not a file of this repository ({repository}); in a "
                          "pipeline the configuration comes from the repository: commit the file and pass --config, or "
                          "remove the variable")


def parse(raw: Any, environ: Mapping[str, str], source: str = "config", node: Any = None) -> Config:
    errors: list[str] = []
    top = _Reader(raw, "", errors, node)

    g = top.section("gitlab")
    gitlab = GitLabConfig(
        url=_gitlab_url(g.url("url", None), environ, source, errors),
        project=str(g.get("project", None, lambda v: isinstance(v, (str, int)) and not isinstance(v, bool)
                          and str(v).strip(),
                          "a project path such as support/internal-requests, or its id")
                    or environ.get("CI_PROJECT_PATH") or ""),
        timeout_seconds=g.integer("timeout_seconds", 30, 1, 600, "a whole number of seconds"),
    )
    g.done()

    r = top.section("requests")
    requests = RequestsConfig(
        label=r.text("label", "license-request"),
        processing_label=r.text("processing_label", "license-request::processing"),
        success_label=r.text("success_label", "license-request::success"),
        failed_label=r.text("failed_label", "license-request::failed"),
        override_label=r.text("override_label", "license-request-override"),
        requester_groups=r.strings("requester_groups", ("support",)),
        requester_users=r.strings("requester_users", ()),
        approver_groups=r.strings("approver_groups", ("support-managers",)),
        approver_users=r.strings("approver_users", ()),
        min_access_level=ACCESS_LEVELS[r.choice("min_access_level", "reporter", tuple(ACCESS_LEVELS))],
        record_authors=r.strings("record_authors", ()),
        renewals=r.text("renewals", RequestsConfig.renewals),
    )
    r.done()

    lic = top.section("license")
    plan = lic.choice("plan", "ultimate", ("starter", "premium", "ultimate"))
    trial = lic.flag("trial", True)
    duration = lic.integer("duration_days", 10, 1, MAX_DURATION_DAYS, "a whole number of days")
    backdate = lic.integer("backdate_days", 1, 0, 7, "a whole number of days")
    grace = lic.integer("grace_days", 0, 0, 30, "a whole number of days")
    licensee = lic.section("licensee")
    name = licensee.text("name", "Emergency License")
    company = licensee.text("company", "GitLab Support Emergency Trial")
    licensee.done()
    public_key_file = lic.text("public_key_file", None, "a file path")
    trusted_public_keys = lic.strings("trusted_public_keys", ())
    signer = lic.choice("signer", "file", ("file", "pkcs11"))
    h = lic.section("pkcs11")
    pkcs11 = Pkcs11Config(module=h.text("module", None, "the path of the PKCS#11 library"),
                          token_label=h.text("token_label", None, "the token's label"),
                          key_label=h.text("key_label", None, "the key pair's label"),
                          refused_pins_file=h.text("refused_pins_file", None, "a file path"))
    h.done()
    lic.done()
    if signer == "pkcs11":
        errors += [f"license.pkcs11.{name}: expected a value when license.signer is pkcs11, got nothing"
                   for name in ("module", "token_label", "key_label") if not getattr(pkcs11, name)]
    license_config = LicenseConfig(
        terms=TrialTerms(plan=plan, trial=trial, duration_days=duration, backdate_days=backdate,
                         grace_days=grace, licensee_name=name, licensee_company=company),
        public_key_file=public_key_file, signer=signer, pkcs11=pkcs11, trusted_public_keys=trusted_public_keys,
    )

    p = top.section("policy")
    max_users = p.integer("max_users", 100_000, 1, 10_000_000, "a whole number of users")
    deny = tuple(d.lower() for d in p.strings("deny_email_domains", ("gitlab.com",)))
    cooldown = p.integer("email_cooldown_days", 30, 0, 365, "a whole number of days")
    ignores_subaddress = p.flag("cooldown_ignores_subaddress", True)
    s = p.section("scope")
    scope = ScopeConfig(
        grace_period_days=s.integer("grace_period_days", 14, 0, 90, "a whole number of days"),
        window_days=s.integer("window_days", 3, 0, 90, "a whole number of days"),
    )
    s.done()
    p.done()
    policy = PolicyConfig(max_users=max_users, deny_email_domains=deny, email_cooldown_days=cooldown,
                          scope=scope, cooldown_ignores_subaddress=ignores_subaddress)

    t = top.section("tickets")
    tickets = TicketsConfig(base_url=t.url("base_url", "https://gitlab.zendesk.com") or "")
    t.done()

    m = top.section("smtp")
    smtp = SmtpConfig(
        host=m.text("host", "localhost", "a host name"),
        port=m.integer("port", 587, 1, 65535, "a port number"),
        security=m.choice("security", "starttls", ("starttls", "ssl", "none")),
        username=m.text("username", None),
        sender=m.get("from", "GitLab Support <support@example.com>", _one_address,
                     "one address such as 'GitLab Support <support@example.com>'"),
        reply_to=m.get("reply_to", None, _one_address, "one address such as 'support@example.com'"),
        timeout_seconds=m.integer("timeout_seconds", 30, 1, 600, "a whole number of seconds"),
        ca_file=m.text("ca_file", None, "a file path"),
    )
    m.done()

    k = top.section("slack")
    slack = SlackConfig(
        enabled=k.flag("enabled", False),
        channel=k.text("channel", "#support_licensing-subscription"),
        timeout_seconds=k.integer("timeout_seconds", 10, 1, 120, "a whole number of seconds"),
    )
    k.done()

    z = top.section("zendesk")
    zendesk = ZendeskConfig(
        enabled=z.flag("enabled", False),
        url=z.url("url", None) or "",
        email=z.text("email", None, "the API user's email address"),
        timeout_seconds=z.integer("timeout_seconds", 10, 1, 120, "a whole number of seconds"),
        min_attachments=z.integer("min_attachments", 2, 0, 20, "a whole number of attachments"),
        tag=z.text("tag", "emergency_license_issued", "a tag"),
        internal_note=z.flag("internal_note", True),
        max_wait_seconds=z.integer("max_wait_seconds", 300, 0, 3600, "a whole number of seconds"),
        help_center_url=z.url("help_center_url", None),
    )
    z.done()
    if not zendesk.url:  # default: the origin of the ticket links engineers paste
        parts = urlsplit(tickets.base_url)
        zendesk = replace(zendesk, url=f"{parts.scheme}://{parts.netloc}")
    if zendesk.enabled and not zendesk.email:
        errors.append("zendesk.email: expected the API user's email address (an agent), got nothing")

    rem = top.section("reminders")
    reminders = RemindersConfig(enabled=rem.flag("enabled", False),
                                days_before=rem.integer("days_before", 2, 1, 30, "a whole number of days"))
    rem.done()

    u = top.section("run")
    run = RunConfig(max_attempts=u.integer("max_attempts", 5, 1, 100, "a whole number of attempts"),
                    recheck_minutes=u.integer("recheck_minutes", 60, 1, 10080, "a whole number of minutes"),
                    lock_stale_minutes=u.integer("lock_stale_minutes", 15, 1, 1440, "a whole number of minutes"))
    u.done()

    o = top.section("report")
    report = ReportConfig(
        repeat_window_days=o.integer("repeat_window_days", 90, 1, 3650, "a whole number of days"),
        expiring_days=o.integer("expiring_days", 7, 0, 365, "a whole number of days"))
    o.done()
    top.done()

    if errors:
        raise ConfigError(f"{source} has {len(errors)} problem(s):\n  " + "\n  ".join(errors))
    return Config(gitlab=gitlab, requests=requests, license=license_config, policy=policy,
                  tickets=tickets, smtp=smtp, slack=slack, run=run, source=source, zendesk=zendesk,
                  report=report, reminders=reminders)


def in_pipeline(environ: Mapping[str, str]) -> bool:
    return environ.get("GITLAB_CI") == "true"


def _same_url(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()


def _gitlab_url(from_file: str | None, environ: Mapping[str, str], source: str, errors: list[str]) -> str:
    """Where the token goes. In a pipeline the CI's own GitLab (CI_SERVER_URL), or the repository's config file:
    a pipeline variable (anyone who may start a pipeline with variables can set one) never redirects the token."""
    variable = (environ.get("GITLAB_URL") or "").strip()
    if not in_pipeline(environ):
        return from_file or variable.rstrip("/") or (environ.get("CI_SERVER_URL") or "").rstrip("/")
    url = from_file or (environ.get("CI_SERVER_URL") or "").rstrip("/")
    if variable and not _same_url(variable, url):
        where = f"gitlab.url in {source}" if from_file else "this pipeline's GitLab (CI_SERVER_URL)"
        shown = Scrubber()(variable)[:200]  # a variable, not a file's text: shown, without user-info or a token
        errors.append(f'GITLAB_URL: "{shown}" is not {where}, {url or "(not set)"}; in a pipeline the token '
                      "goes only there: remove the GITLAB_URL variable (to use another GitLab, set gitlab.url in the "
                      "repository's config file)")
    return url


# Every variable that holds a secret: the guide asks for each to be protected and scoped to the bot's environment.
SECRET_VARIABLES = ("GITLAB_TOKEN", "LICENSE_PRIVATE_KEY", "LICENSE_PRIVATE_KEY_FILE", "LICENSE_PRIVATE_KEY_PASSPHRASE",
                    "LICENSE_SIGNER_PIN", "SMTP_PASSWORD", "SLACK_WEBHOOK_URL", "ZENDESK_API_TOKEN")


def require_gitlab(config: Config) -> None:
    """The settings every command that talks to GitLab needs."""
    missing = []
    if not config.gitlab.url:
        missing.append("gitlab.url: not set; put it in the config file or set GITLAB_URL (CI sets CI_SERVER_URL)")
    if not config.gitlab.project:
        missing.append("gitlab.project: not set; put it in the config file or set CI_PROJECT_PATH")
    if missing:
        raise ConfigError("\n  ".join(["GitLab is not configured:", *missing]))


def secrets_from_env(environ: Mapping[str, str] | None = None) -> Secrets:
    env = os.environ if environ is None else environ
    pem = env.get("LICENSE_PRIVATE_KEY")
    key_file = env.get("LICENSE_PRIVATE_KEY_FILE")
    # Commands that need no private key (find, inspect) must not fail on these: problems wait until one is needed.
    problem, source = None, "LICENSE_PRIVATE_KEY"
    pem_bytes = pem.encode("utf-8") if pem else None
    if pem and key_file:
        problem, pem_bytes = "set LICENSE_PRIVATE_KEY or LICENSE_PRIVATE_KEY_FILE, not both", None
    elif key_file:
        source = f"LICENSE_PRIVATE_KEY_FILE ({key_file})"
        try:
            pem_bytes = files.read_bytes(key_file, files.KEY_BYTES, "LICENSE_PRIVATE_KEY_FILE")
        except files.FileError as exc:
            problem = str(exc)
    passphrase = env.get("LICENSE_PRIVATE_KEY_PASSPHRASE")
    return Secrets(
        gitlab_token=env.get("GITLAB_TOKEN") or None,
        private_key_pem=pem_bytes,
        private_key_passphrase=passphrase.encode("utf-8") if passphrase else None,
        smtp_password=env.get("SMTP_PASSWORD") or None,
        slack_webhook_url=env.get("SLACK_WEBHOOK_URL") or None,
        zendesk_api_token=env.get("ZENDESK_API_TOKEN") or None,
        signer_pin=env.get("LICENSE_SIGNER_PIN") or None,
        public_key_file=env.get("LICENSE_PUBLIC_KEY_FILE") or None,
        private_key_source=source,
        private_key_problem=problem,
    )
