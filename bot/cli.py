"""The `license-bot` command line: parses arguments, wires adapters, prints results.

Every BotError becomes one line on stderr and exit 1; nothing a user sees carries a secret.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from . import __version__, files, keys, terminal
from . import config as config_mod
from . import license as lic_mod
from .errors import BotError


class _Terminal:
    """Every text a command shows, on standard output or error, goes through here and only here: it is
    scrubbed of every secret of this environment (and of any URL's user-info) on its way out."""

    def __init__(self) -> None:
        self._scrubber: Callable[[str], str] | None = None

    def reset(self) -> None:
        self._scrubber = None

    def scrub(self, text: str) -> str:
        if self._scrubber is None:
            from .scrub import Scrubber

            try:
                self._scrubber = Scrubber(config_mod.secrets_from_env().values())
            except Exception:  # noqa: BLE001 - if even the secrets cannot be read, say nothing specific
                return "(details withheld: the secrets could not be read to scrub them)"
        return self._scrubber(text)

    def __call__(self, text: str = "", *, err: bool = False, end: str = "\n") -> None:
        stream = sys.stderr if err else sys.stdout
        stream.write(self.scrub(str(text)) + end)
        stream.flush()


say = _Terminal()


def _route_library_output() -> None:
    """What libraries print by themselves (urllib3's retry warnings name URLs; Python warnings) takes the same
    way out as everything else: logging's last-resort handler and warnings' printer both write through `say`."""
    import logging
    import warnings

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            say(f"license-bot: {record.levelname.lower()}: {record.getMessage()}", err=True)

    logging.lastResort = Handler(logging.WARNING)
    warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: say(
        f"license-bot: {category.__name__}: {message}", err=True)


class _Scrubbed:
    """A stream whose every write goes through the terminal's scrubber, for code that prints for itself."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(say.scrub(text))

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def utc_today() -> date:
    return datetime.now(timezone.utc).date()


def _date_arg(text: str) -> date:
    try:
        value = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None
    if not date(2000, 1, 1) <= value <= date(2099, 12, 31):
        raise argparse.ArgumentTypeError(f"{text} is outside 2000-01-01 to 2099-12-31")
    return value


def _users_arg(text: str) -> int:
    try:
        if len(text) > 20:
            raise ValueError
        value = int(text.replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of users, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"the user count must be at least 1, got {value}")
    return value


# --- commands --------------------------------------------------------------------------------------

def _new_file(path: str, force: bool, what: str) -> Path:
    """A file this command may write: never a folder, never an existing file unless --force."""
    return files.check_target(path, what, force=force)


def _write(out: Path, text: str, what: str, force: bool) -> None:
    files.write(out, text, what, force=force)


def cmd_keygen(args: argparse.Namespace) -> int:
    if args.pkcs11:
        return _keygen_in_token(args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise BotError(f"--out {args.out}: is a file; give a folder for license_key and license_key.pub")
    try:
        private_path, public_path = keys.write_pair(keys.generate(args.bits), args.out, force=args.force)
    except OSError as exc:
        raise BotError(f"--out {args.out}: cannot write there ({exc.strerror})") from None
    say(f"wrote {private_path} (private, mode 0600: keep it secret) and {public_path} (public)")
    say(_rotation_steps(args, public_path, f"LICENSE_PRIVATE_KEY_FILE to {private_path.resolve()} (in CI: replace "
                                           "the protected file variable's content with this file's)"))
    return 0


def _rotation_steps(args: argparse.Namespace, public_path: Path, signing: str) -> str:
    """The exact configuration change that makes the new pair sign while the earlier key's licenses and record
    entries still count (README, Operator guide, "Rotating the key")."""
    try:
        config = config_mod.load(args.config)
        secrets = config_mod.secrets_from_env()
    except BotError:
        config, secrets = None, None
    old = (secrets.public_key_file or config.license.public_key_file) if config else None
    if not old and secrets and config and config.license.signer == "file" and secrets.private_key_pem:
        # No public key file is configured, but the current signing key is at hand: keep its public half.
        with contextlib.suppress(BotError):
            kept = public_path.with_name("previous_license_key.pub")
            _write(_new_file(str(kept), False, "--out"), keys.public_pem(keys.private_key_from(secrets)).decode(),
                   "--out", False)
            old = str(kept)
            say(f"wrote {kept}: the public half of the current signing key (LICENSE_PRIVATE_KEY), to keep")
    earlier = [*(config.license.trusted_public_keys if config else ()), *([str(Path(old).resolve())] if old else [])]
    listed = "".join(f"\n    - {path}" for path in earlier) or "\n    - /path/to/the/current/license_key.pub"
    where = f" ({config.source})" if config else ""
    keep = ("" if old else "\n  (no public key is configured now: if a key signed licenses before, list its public "
                           "key file there instead of the placeholder; if none did, leave trusted_public_keys empty)")
    return (f"To rotate to this key pair, change the configuration{where} to:\n"
            f"license:\n  public_key_file: {public_path.resolve()}\n  trusted_public_keys:{listed}{keep}\n"
            f"and set {signing}; unset LICENSE_PUBLIC_KEY_FILE or point it at the new public key. Then run "
            "`license-bot doctor`: *signing key* checks the new pair, *trusted keys* counts the record entries each "
            "key verifies.")


def _keygen_in_token(args: argparse.Namespace) -> int:
    """A non-extractable key pair made inside the configured token; only the public half is written."""
    from .signer import generate_in_token

    config = config_mod.load(args.config)
    p = config.license.pkcs11
    if config.license.signer != "pkcs11":
        raise BotError("keygen --pkcs11: set license.signer to pkcs11 and license.pkcs11.module, token_label and "
                       "key_label in the config first")
    try:  # as the file keygen does
        Path(args.out).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BotError(f"--out {args.out}: cannot make the folder ({exc.strerror})") from None
    public_path = _new_file(str(Path(args.out) / "license_key.pub"), args.force, "--out")
    public = generate_in_token(p.module, p.token_label, p.key_label, config_mod.secrets_from_env().signer_pin,
                               args.bits, keys.refused_pins_file(config))
    _write(public_path, keys.public_pem(public).decode("ascii"), "--out", args.force)
    say(f"made a {args.bits}-bit key pair {p.key_label!r} inside the token {p.token_label!r} (its private half never "
        f"leaves it) and wrote its public half to {public_path}")
    say(_rotation_steps(args, public_path, f"license.pkcs11.key_label to {p.key_label!r} (already so in the "
                                           "configuration this pair was made from)"))
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from . import policy

    config = config_mod.load(args.config)
    out = _new_file(args.output, args.force, "--output") if args.output else None
    # The same rules as a request: an address that can receive it, a user count in range.
    problems = policy.check_email(args.email, config.policy) if "\n" not in args.email and "\r" not in args.email \
        else [policy.FieldError("email", "the address has a line break in it")]
    problems += policy.check_user_count(args.users, config.policy)
    if problems:
        raise BotError("; ".join(f"--{'users' if p.field == 'user_count' else p.field}: {p.message}"
                                 for p in problems).replace("`", "'"))
    signer = keys.signer_from(config, config_mod.secrets_from_env(), args.private_key, flag="--private-key")
    today = args.date or utc_today()
    lic = lic_mod.build_trial(args.email, args.users, today, config.license.terms)
    late = lic_mod.preflight(lic, utc_today())  # judged today, whatever --date says: never an expired key
    if late:
        raise BotError("GitLab would refuse this license today: " + "; ".join(late))
    text = lic_mod.sign(lic, signer, today, boundary=lic_mod.DEFAULT_BOUNDARY if args.boundary else None)
    if out:
        _write(out, text, "--output", args.force)
        say(f"wrote {out}: {describe(lic)}", err=True)
    else:
        say(text, end="")
    return 0


def describe(lic: lic_mod.License) -> str:
    return (f"{lic.plan} {'trial ' if lic.trial else ''}license for {lic.user_count} users, "
            f"{lic.email}, {lic.issued_at} to {lic.expires_at}")


def cmd_inspect(args: argparse.Namespace) -> int:
    if args.public_key:
        trusted = [(f"--public-key {path}", keys.load_public_key(path)) for path in args.public_key]
    else:  # the configured keys: the current one and every earlier one a rotation keeps
        config = config_mod.load(args.config)
        trusted = keys.trusted_keys(config, _public_key(config, config_mod.secrets_from_env()))
    text = files.read_bytes(args.file, files.KEY_BYTES, "the license file").decode("utf-8", errors="replace")
    lic, signed_by = _decode_with_any(text, trusted)
    today = args.today or utc_today()
    problems = lic_mod.preflight(lic, today)
    if args.json:
        say(json.dumps({"license": lic.to_payload(), "accepted_today": not problems, "problems": problems,
                        "signed_by": signed_by}, indent=2, ensure_ascii=False))
        return 0
    rows = [
        ("Licensee", ", ".join(f"{k}: {v}" for k, v in lic.licensee.items())),
        ("Plan", str(lic.plan)),
        ("Users", str(lic.user_count)),
        ("Trial", "yes" if lic.trial else "no"),
        ("Starts", str(lic.issued_at)),
        ("Expires", str(lic.expires_at)),
        ("Blocks changes", str(lic.block_changes_at)),
        ("Fingerprint", lic_mod.fingerprint(text)),
        ("Signed by", signed_by),
        (f"GitLab accepts it on {today}", "yes" if not problems else "no: " + "; ".join(problems)),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        say(f"{key + ':':<{width + 1}} {value}")
    return 0


def _decode_with_any(text: str, trusted) -> tuple[lic_mod.License, str]:
    """The license and which trusted key it decodes with; the first key's error when none does (one key: its
    own message, unchanged)."""
    first = None
    for name, key in trusted:
        try:
            return lic_mod.decode(text, key), f"{keys.key_id(key)} ({name})"
        except lic_mod.LicenseError as exc:
            first = first or exc
    if len(trusted) > 1 and first and "wrong public key" in str(first):
        raise lic_mod.LicenseError(f"the key was not signed by any of the {len(trusted)} trusted keys (the current "
                                   "one and license.trusted_public_keys), or the key block is damaged") from None
    raise first


def _read_description(path: str) -> str:
    """A request as GitLab would hold it: at most its 1,048,576 characters (a file, or - for standard input)."""
    try:
        data = files.read_bytes(path, files.DESCRIPTION_BYTES, "the request")
    except files.FileError as exc:
        if "larger than" not in str(exc):
            raise
        data = b"x" * (files.DESCRIPTION_CHARS + 1)  # more than GitLab would ever hold: say so below
    text = data.decode("utf-8", errors="replace")
    if len(text) > files.DESCRIPTION_CHARS:
        raise BotError(f"the request {path} is longer than the {files.DESCRIPTION_CHARS:,} characters GitLab "
                       "allows in an issue description; is it the right file?")
    return text


def cmd_check_request(args: argparse.Namespace) -> int:
    from . import messages, policy, request

    config = config_mod.load(args.config)
    parsed = request.parse(_read_description(args.file), config.tickets.base_url)
    verdict = policy.evaluate(parsed, args.today or utc_today(), config.policy, config.tickets,
                              policy.Facts(author=args.author))
    if args.json:
        say(json.dumps({
            "valid": verdict.ok,
            "request": verdict.request.to_json() if verdict.request else None,
            "errors": [{"field": e.field, "message": e.message} for e in verdict.errors],
            "warnings": [{"field": w.field, "message": w.message} for w in verdict.warnings],
        }, indent=2, ensure_ascii=False))
    else:
        say(_offline_verdict(verdict, config, messages))
    return 0 if verdict.ok else 1


OFFLINE_ACTORS = {  # check-request's headings: what each can do about a request not yet filed
    "requester": "The requester: fix the description, then check it again.",
    "customer": "The customer: ask them on the ticket for what is missing, then tick the box.",
    "approver": "An approver decides (the override label); nothing to fix in the description.",
    "support": "Someone who may request files it.",
    "licensing": "The licensing team: a renewal case, not an emergency license (or fix the date if it is wrong).",
    "operator": "The bot's operator fixes this; nothing in the description can.",
}


def _offline_verdict(verdict, config, messages) -> str:
    """check-request's verdict in plain words, true for a check made here: no one is told the bot will recheck."""
    lines = []
    if verdict.ok:
        r = verdict.request
        lines.append(f"valid: a {config.license.terms.duration_days}-day {config.license.terms.plan} trial for "
                     f"{r.user_count} users would be sent to {r.email} (ticket {r.ticket_url})")
    else:
        from .actions import grouped

        n = len(verdict.errors)
        lines.append(f"not valid: {n} problem{'s' if n != 1 else ''}, by who can act:")
        for actor, problems in grouped(verdict.errors):
            lines.append(OFFLINE_ACTORS[actor])
            lines += [f"- {messages.FIELD_NAMES[e.field]}: {messages.plain(e.message)}" for e in problems]
    if verdict.warnings:
        lines.append("warnings:")
        lines += [f"- {messages.FIELD_NAMES[w.field]}: {messages.plain(w.message)}" for w in verdict.warnings]
    lines.append("Not checked here (offline): whether the author may request, and whether the ticket or the email "
                 "already has a license; the bot checks those when it runs.")
    return "\n".join(lines)


def _trigger_payload(environ) -> str | None:
    """The webhook event of a `trigger` pipeline: a file variable holds its path."""
    if environ.get("CI_PIPELINE_SOURCE") != "trigger" or not environ.get("TRIGGER_PAYLOAD"):
        return None
    value = environ["TRIGGER_PAYLOAD"]
    if len(value) >= 4096 or not Path(value).is_file():
        return value
    # An issue event carries the description (up to 1,048,576 characters, each up to 6 bytes as a JSON
    # escape) and little else of any size.
    return files.read_bytes(value, 8 * files.MB, "TRIGGER_PAYLOAD").decode("utf-8", errors="replace")


def cmd_run(args: argparse.Namespace) -> int:
    import os

    from . import runner
    from .gitlab.tracker import GitLabTracker
    from .mailer import SmtpMailer
    from .scrub import Scrubber
    from .slack import SlackWebhook

    report = _new_file(args.report, args.force, "--report") if args.report else None  # before any work, not after
    if report is not None and not os.access(report.parent, os.W_OK):
        raise BotError(f"--report {args.report}: the folder {report.parent} is not writable")
    summary = runner.Summary()
    scrub = Scrubber()
    try:
        config = config_mod.load(args.config)
        config_mod.require_gitlab(config)
        secrets = config_mod.secrets_from_env()
        scrub = Scrubber(secrets.values())
        signer = keys.signer_from(config, secrets, args.private_key, flag="--private-key")
        keys.trusted_keys(config, None)  # an unreadable earlier key stops the run here, never midway
        if config.slack.enabled and not secrets.slack_webhook_url:
            raise config_mod.ConfigError("slack.enabled is true but SLACK_WEBHOOK_URL is not set")
        payload = None if args.issue is not None else _trigger_payload(os.environ)
        tracker = GitLabTracker(config, secrets.gitlab_token)
        mailer = SmtpMailer(config.smtp, secrets.smtp_password)
        notifier = (SlackWebhook(secrets.slack_webhook_url, config.slack.channel, config.slack.timeout_seconds)
                    if config.slack.enabled else None)
        zendesk = _zendesk(config, secrets)
        if args.dry_run:
            from . import dryrun

            tracker, mailer = dryrun.DryRunTracker(tracker, say), dryrun.DryRunMailer(say)
            notifier = dryrun.DryRunNotifier(say) if notifier else None
        ctx = runner.Context(config=config, tracker=tracker, mailer=mailer, signer=signer,
                             now=datetime.now(timezone.utc), notifier=notifier, scrub=scrub, zendesk=zendesk)
        summary = runner.run(ctx, issue_iid=args.issue, trigger_payload=payload, say=say, dry_run=args.dry_run)
    except BotError as exc:
        summary.error = scrub(str(exc))
    finally:
        if report is not None:
            _write(report, scrub(say.scrub(summary.to_json())) + "\n", "--report", args.force)
    if summary.error:
        # A run that could not work prints its error and no summary line: "found 0" would read as a quiet day.
        say(f"license-bot: error: {summary.error}", err=True)
        return summary.exit_code
    say(("dry run, nothing written: " if args.dry_run else "") + summary.line(args.dry_run))
    return summary.exit_code


def _need_sandbox_extra(command: str) -> None:
    """The sandbox's own dependencies are an extra: production never installs them."""
    import importlib.util

    missing = [name for name in ("aiosmtpd", "snowballstemmer") if importlib.util.find_spec(name) is None]
    if missing:
        raise BotError(f"{command} needs the sandbox extra ({', '.join(missing)} is not installed): "
                       "pip install 'license-bot[sandbox]', or from a clone pip install '.[sandbox]'")


def cmd_sandbox(args: argparse.Namespace) -> int:
    import signal
    import threading

    _need_sandbox_extra("license-bot sandbox")
    from .sandbox import TOKENS, SandboxServer

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # before anything is said: a SIGTERM then stops it cleanly
    try:
        server = SandboxServer(args.port, args.smtp_port, args.state, search_rules=args.search_rules,
                               edition=args.edition, search_rate_limit=args.search_rate_limit).start()
    except (ValueError, RecursionError) as exc:  # the --state file: not JSON, or not a sandbox's state
        raise BotError(f"--state {args.state}: not a sandbox state file ({_what_is_wrong(exc)}); give a new "
                       "file name to start afresh") from None
    except OSError as exc:
        raise BotError(f"the sandbox cannot listen on 127.0.0.1 port {args.port} or SMTP port {args.smtp_port}: "
                       f"{exc.strerror}; pick free ones with --port and --smtp-port") from None
    say(f"GitLab sandbox at {server.url} (API {server.url}/api/v4), project support/internal-requests")
    say(f"SMTP sink at 127.0.0.1:{server.smtp_port}; mail at {server.url}/sandbox/mail, "
        f"API calls at {server.url}/sandbox/requests")
    say("tokens: " + ", ".join(f"{user}: {token}" for token, user in TOKENS.items()))
    say(f"GitLab {args.edition}, search rules {args.search_rules}, search limit "
        f"{args.search_rate_limit or 'off'}{'/min' if args.search_rate_limit else ''}")
    say(f"state: {args.state or 'in memory'}. Ctrl-C stops it.")
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    server.stop()
    return 0


def _what_is_wrong(exc: Exception) -> str:
    """Where a JSON file goes wrong, without quoting it."""
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc)


def cmd_demo(args: argparse.Namespace) -> int:
    _need_sandbox_extra("license-bot demo")
    from . import demo

    with contextlib.redirect_stdout(_Scrubbed(sys.stdout)):  # the demo prints for itself: same scrubber
        return demo.main()


def _port_arg(text: str) -> int:
    if not text.strip().isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 0 (any free port) to 65535, got {text!r}")
    return int(text)


def _count_arg(text: str) -> int:
    if not text.strip().isdigit() or len(text.strip()) > 12:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(text)


def _ticket_arg(text: str) -> int:
    digits = text.strip().lstrip("#").rstrip("/").rpartition("/")[2]
    if not digits.isdigit():
        raise argparse.ArgumentTypeError(f"expected a ticket number or URL, got {text!r}")
    return int(digits)


def _public_key(config, secrets):
    """The key engineers check licenses with: LICENSE_PUBLIC_KEY_FILE, license.public_key_file, or the
    public half of the signing key when only that is at hand."""
    path = secrets.public_key_file or config.license.public_key_file
    if path:
        return keys.load_public_key(path)
    if secrets.private_key_pem or secrets.private_key_problem:
        return keys.private_key_from(secrets).public_key()
    raise config_mod.ConfigError("checking a license needs the public key: set LICENSE_PUBLIC_KEY_FILE or "
                                 "license.public_key_file")


def _zendesk(config, secrets):
    """The Zendesk client where zendesk.enabled is true; None means no Zendesk call is made."""
    if not config.zendesk.enabled:
        return None
    from .zendesk import ZendeskClient

    return ZendeskClient(config.zendesk, secrets.zendesk_api_token)


def cmd_find(args: argparse.Namespace) -> int:
    from . import find
    from .gitlab.tracker import GitLabTracker
    from .record import Record
    from .tracker import TrackerError

    email = args.email.strip()
    if email.count("@") != 1 or not all(email.partition("@")[::2]) or any(c.isspace() for c in email):
        raise BotError(f"find: {args.email!r} is not an email address; give the customer's whole address, "
                       "e.g. jane@example.com")
    config = config_mod.load(args.config)
    config_mod.require_gitlab(config)
    secrets = config_mod.secrets_from_env()
    trusted = keys.trusted_keys(config, _public_key(config, secrets))
    names = {keys.key_id(key): name for name, key in trusted}
    tracker = GitLabTracker(config, secrets.gitlab_token)
    record = Record(tracker, [key for _, key in trusted])
    zendesk = _zendesk(config, secrets)
    try:
        tracker.ensure_can_work()  # a token blind to confidential issues would find "nothing"
        hits = find.search(tracker, record, email, config.tickets.base_url, args.ticket, zendesk, names)
    except TrackerError as exc:
        say(f"license-bot: error: could not search: {exc}", err=True)
        return find.COULD_NOT_SEARCH
    written = find.download(record, hits, Path(args.download), force=args.force) if args.download else []
    damaged = find.damage_lines(record)
    for line in damaged:
        say(line, err=True)
    if args.json:
        say(json.dumps({"email": email, "found": find.to_json(hits), "record_problems": damaged,
                        "downloads": [{"iid": r.entry.issue_iid, "path": str(p), "license_id": r.entry.license_id}
                                      for p, r in written]}, indent=2))
        return find.FOUND if hits else find.COULD_NOT_SEARCH if damaged else find.NOTHING
    for title, kind in (("Licenses", find.LICENSE), ("Not made by the bot", find.NOT_THE_BOTS),
                        ("Open requests", find.OPEN)):
        group = [h for h in hits if h.kind == kind]
        if group:
            say(f"{title} for {email}" + (", newest first:" if kind == find.LICENSE else ":"))
            for hit in group:
                say("\n".join("  " + line for line in hit.lines()))
    for path, r in written:
        say(f"wrote {path}: license {r.entry.license_id} for {r.license.email}, {r.license.user_count} users, "
            f"expires {r.license.expires_at}; it decodes with the public key")
    if not hits and damaged:
        say(f"nothing found for {email} among the record entries that check out, but the record is damaged (above):"
            " a lost entry may be this address's license", err=True)
        return find.COULD_NOT_SEARCH
    if not hits:
        say(f"nothing found for {email}: no license in the bot's record and no open request. If the customer "
            "needs a license, file a new request.")
    return find.FOUND if hits else find.NOTHING


def _report_facts(tracker, record, trusted, since: date, until: date):
    """What `report` computes over, read through the adapters: the record's verified entries, and every request
    filed in the period with its status note (one call per request that has notes)."""
    from . import messages
    from . import report as report_mod
    from . import status as status_mod

    names = {keys.key_id(key): name for name, key in trusted}
    licenses = [report_mod.LicenseRow(
        r.entry.license_id, r.entry.issue_iid, r.entry.issue_url, r.entry.email, r.entry.user_count, r.entry.ticket_id,
        date.fromisoformat(r.entry.made_on), date.fromisoformat(r.entry.expires_on),
        names.get(r.license_key, r.license_key)) for r in record.entries()]
    issues = tracker.requests_since(datetime.combine(since, datetime.min.time(), timezone.utc))
    listed = {i.iid for i in issues}
    # A license of the period whose request was filed before it: read that request too (rare, one call each).
    issues += [tracker.get_issue(iid) for iid in sorted({lic.issue_iid for lic in licenses
                                                         if since <= lic.made_on <= until} - listed)]
    requests = []
    for issue in issues:
        note = tracker.status_note(issue.iid) if issue.user_notes_count else None
        status = status_mod.read(note.body) if note else None
        reasons: tuple[str, ...] = ()
        if status is not None and status.step == status_mod.REJECTED:
            reasons = tuple(dict.fromkeys(messages.FIELD_NAMES.get(f, f) for f, _ in status.errors))
        elif status is not None and status.step == status_mod.HELD:
            reasons = ("held for a person",)
        elif status is not None and status.step == status_mod.UNDELIVERED:
            reasons = ("email not delivered",)
        emailed = datetime.fromisoformat(status.emailed_at) if status and status.emailed_at else None
        requests.append(report_mod.RequestRow(issue.iid, issue.web_url, issue.author_username, issue.created_at,
                                              status.step if status else None, reasons, emailed))
    counts: dict[str, int] = {}
    for r in record.entries():
        kid = r.entry_key or r.license_key
        counts[kid] = counts.get(kid, 0) + 1
    integrity = report_mod.Integrity(len(record.entries()), tuple(p.line() for p in record.problems()),
                                     len(record.unchained()),
                                     tuple((f"{name} {keys.key_id(key)}", counts.get(keys.key_id(key), 0))
                                           for name, key in trusted))
    return licenses, requests, integrity


def cmd_report(args: argparse.Namespace) -> int:
    from . import report as report_mod
    from .gitlab.tracker import GitLabTracker
    from .record import Record

    today = args.today or utc_today()
    until = args.until or today
    since = args.since or until - timedelta(days=83)  # twelve whole weeks
    if since > until:
        raise BotError(f"--since {since} is after --until {until}: give the earlier date first")
    out = _new_file(args.output, args.force, "--output") if args.output else None
    config = config_mod.load(args.config)
    config_mod.require_gitlab(config)
    secrets = config_mod.secrets_from_env()
    trusted = keys.trusted_keys(config, _public_key(config, secrets))
    tracker = GitLabTracker(config, secrets.gitlab_token)
    tracker.ensure_can_work()  # a token blind to confidential issues would report nothing
    record = Record(tracker, [key for _, key in trusted])
    licenses, requests, integrity = _report_facts(tracker, record, trusted, since, until)
    built = report_mod.build(licenses, requests, integrity, since=since, until=until, today=today,
                             repeat_window_days=config.report.repeat_window_days,
                             expiring_days=config.report.expiring_days)
    rendered = report_mod.render(built, args.format)
    if out is None:
        say(rendered, end="")
        return 0
    _write(out, rendered, "--output", args.force)
    say(f"wrote {out}: the {args.format} report, {since} to {until}", err=True)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from . import doctor

    config = config_mod.load(args.config)
    checks = doctor.check(config, config_mod.secrets_from_env(), ci_file=args.ci_file)
    say("\n".join(doctor.lines(checks)))
    failed = sum(1 for c in checks if c.ok is False)
    warned = sum(1 for c in checks if c.ok and c.warn)
    summary = f"{failed} problem{'s' if failed != 1 else ''}" if failed else "all checks passed"
    say(summary + (f", {warned} warning{'s' if warned != 1 else ''}" if warned else ""))
    return 1 if failed else 0


def cmd_setup(args: argparse.Namespace) -> int:
    from . import doctor

    config = config_mod.load(args.config)
    config_mod.require_gitlab(config)
    secrets = config_mod.secrets_from_env()
    changes = doctor.setup(config, secrets)
    say("\n".join(f"changed: {c}" for c in changes) if changes else "nothing to change")
    return cmd_doctor(args)


# --- parser ----------------------------------------------------------------------------------------

Command = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistyped command says the documented one line (and where the help is), exit 1:
    exit 2 means "some request waits for a retry" for `run`, which a typo must never look like."""

    def parse_known_args(self, args=None, namespace=None):
        self._given = list(sys.argv[1:] if args is None else args)  # for `error`: what was typed, unknowns too
        return super().parse_known_args(args, namespace)

    def error(self, message: str):
        import difflib

        wrong = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)$", message)
        if wrong:  # a misspelled command: the likely one, not the list of all
            choices = re.findall(r"'([^']*)'", wrong.group(2))
            close = difflib.get_close_matches(wrong.group(1), choices, n=1)
            message = f"no command {wrong.group(1)!r}" + (f"; did you mean {close[0]}?" if close else "")
        unknown = self._unknown_options() if message.startswith("the following arguments are required") else []
        if unknown:  # argparse says only what is missing: `generate --bogus` never named --bogus
            close = difflib.get_close_matches(unknown[0].partition("=")[0], self._option_names(), n=1)
            message = (f"unrecognized arguments: {' '.join(unknown)}" + (f" (did you mean {close[0]}?)" if close
                                                                         else "") + f"; {message}")
        line, hint = f"license-bot: error: {message}", f"(see {self.prog} --help)"
        # One line where it fits; else the hint on a line of its own, whole (a command to copy is never split).
        self.exit(1, f"{line} {hint}\n" if len(line) + 1 + len(hint) <= width() else f"{line}\n  {hint}\n")

    def _option_names(self) -> list[str]:
        return [o for action in self._actions for o in action.option_strings]

    def _unknown_options(self) -> list[str]:
        """The options typed that this parser does not know (argparse's own abbreviations and negative numbers
        are known)."""
        known, out = self._option_names(), []
        for arg in getattr(self, "_given", []):
            if arg == "--":
                break
            name = arg.partition("=")[0]
            if (not arg.startswith("-") or arg == "-" or " " in arg or re.fullmatch(r"-\d+|-\d*\.\d+", arg)
                    or name in known or (self.allow_abbrev and name.startswith("--")
                                         and any(o.startswith(name) for o in known))):
                continue
            out.append(arg)
        return out

    def _print_message(self, message: str, file=None) -> None:  # through the same scrubber as the rest
        if message:
            say(message, err=file is not sys.stdout and file is not None, end="")


class _HelpFormatter(argparse.HelpFormatter):
    """Descriptions and epilogs keep their lines (the exit codes, one a line), each wrapped at the width with
    its continuation under its text."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap

        out = []
        for line in text.splitlines():
            hang = re.match(r"\s*(?:\d\s+)?", line).end()
            out.append(textwrap.fill(line[hang:], width, initial_indent=indent + line[:hang],
                                     subsequent_indent=indent + " " * hang, break_on_hyphens=False,
                                     break_long_words=False) if line else "")
        return "\n".join(out)


EXITS = {  # each command's exit codes, said in its --help
    "keygen": [(0, "the key pair was made"), (1, "it was not (the reason is one line on standard error)")],
    "generate": [(0, "the key was written"),
                 (1, "it was not: a rule refused it, or the key or the file could not be used")],
    "inspect": [(0, "the file decodes with the public key (its last line says whether GitLab accepts it today)"),
                (1, "it does not decode with that key, or a file cannot be read")],
    "check-request": [(0, "the request is valid (offline: membership and duplicates are not checked)"),
                      (1, "it is not (each problem is printed with its fix), or it cannot be read")],
    "run": [(0, "every request reached a recorded outcome (made and sent, or failed with a note)"),
            (2, "some request waits for a retry at the next run, or another run holds the lock"),
            (1, "the bot could not work (configuration, credentials, GitLab unreachable or refusing)")],
    "sandbox": [(0, "stopped with Ctrl-C or SIGTERM"), (1, "it could not start (a port in use, a missing extra)")],
    "find": [(0, "something was found"), (3, "nothing was found (file a new request)"),
             (1, "the search itself failed: fix the token or the network first, never read it as nothing")],
    "doctor": [(0, "no check failed (warnings allowed)"), (1, "at least one check failed (each says its fix)")],
    "setup": [(0, "everything is set up and every check passed"),
              (1, "something could not be set up, or a check failed")],
    "demo": [(0, "the whole workflow worked on the sandbox"), (1, "something was not right (it says what)")],
    "report": [(0, "the report was written"), (1, "it was not: the dates, the record or GitLab (it says which)")],
}


def _unknown(parser: argparse.ArgumentParser, command: str, extra: list[str]) -> None:
    import difflib

    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    options = [o for action in sub._actions for o in action.option_strings]
    close = difflib.get_close_matches(extra[0].partition("=")[0], options, n=1) if extra[0].startswith("-") else []
    sub.error(f"unrecognized arguments: {' '.join(extra)}" + (f"; did you mean {close[0]}?" if close else ""))


def _exit_codes(name: str) -> str:
    return "exit codes:\n" + "\n".join(f"  {code}  {meaning}" for code, meaning in EXITS[name])


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="license-bot", formatter_class=_HelpFormatter,
        description="Emergency 10-day GitLab Ultimate trial licenses from tracker issues.",
        epilog="license-bot COMMAND --help lists a command's options and exit codes. A mistyped command or "
               "option prints one line, license-bot: error: ..., and exits 1.",
    )
    parser.add_argument("--version", action="version", version=f"license-bot {__version__}",
                        help="print the version and exit")
    parser.add_argument("--config", metavar="PATH",
                        help="config file (default: $LICENSE_BOT_CONFIG, else the built-in config.yaml)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, formatter_class=_HelpFormatter,
                           epilog=_exit_codes(name))
        p.set_defaults(func=func)
        return p

    p = add("keygen", cmd_keygen, "write a new signing key pair (license_key, license_key.pub), or make one in "
                                  "the configured PKCS#11 token (--pkcs11)")
    p.add_argument("--out", required=True, metavar="DIR", help="the folder to write license_key and "
                                                                "license_key.pub to (made if missing)")
    p.add_argument("--bits", type=int, choices=(2048, 3072, 4096), default=2048,
                   help="the RSA key size (default: 2048, as GitLab's own license key)")
    p.add_argument("--pkcs11", action="store_true", help="make the pair inside the token (license.pkcs11.*); "
                                                          "write only the public key")
    p.add_argument("--force", action="store_true", help="replace existing key files in --out")

    p = add("generate", cmd_generate, "write an emergency trial license key")
    p.add_argument("--email", required=True, help="the customer's email: the licensee's address in the key")
    p.add_argument("--users", required=True, type=_users_arg, metavar="N",
                   help="the user count, from 1 to policy.max_users")
    p.add_argument("--date", type=_date_arg, metavar="YYYY-MM-DD", help="today's date (default: today, UTC)")
    p.add_argument("--private-key", metavar="PATH", help="default: $LICENSE_PRIVATE_KEY(_FILE)")
    p.add_argument("--output", metavar="FILE", help="default: standard output")
    p.add_argument("--force", action="store_true", help="replace --output if it exists")
    p.add_argument("--no-boundary", dest="boundary", action="store_false",
                   help="leave out the BEGIN/END lines")

    p = add("inspect", cmd_inspect, "decode a license key and say whether GitLab would accept it")
    p.add_argument("file", help="the .gitlab-license file")
    p.add_argument("--public-key", action="append", metavar="PATH",
                   help="the public key to check it with (repeat for several; default: the configured public key "
                        "and license.trusted_public_keys)")
    p.add_argument("--today", type=_date_arg, metavar="YYYY-MM-DD", help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="print the license and the verdict as JSON")

    p = add("check-request", cmd_check_request,
            "check a filled-in request template offline (everything but membership and duplicates)")
    p.add_argument("file", help="the issue description as Markdown, or - for standard input")
    p.add_argument("--author", metavar="USERNAME", help="address the problems to this user")
    p.add_argument("--today", type=_date_arg, metavar="YYYY-MM-DD", help="judge as of this date (default: today, UTC)")
    p.add_argument("--json", action="store_true", help="print the verdict, errors and warnings as JSON")

    p = add("run", cmd_run, "process the open requests in the tracker (the scheduled pipeline's job)")
    p.add_argument("--dry-run", action="store_true", help="print every write it would make, and make none")
    p.add_argument("--issue", type=_count_arg, metavar="IID", help="process only this issue")
    p.add_argument("--report", metavar="FILE", help="write the summary as JSON")
    p.add_argument("--force", action="store_true", help="replace --report FILE if it exists")
    p.add_argument("--private-key", metavar="PATH", help="default: $LICENSE_PRIVATE_KEY(_FILE)")

    p = add("sandbox", cmd_sandbox, "run a small GitLab-compatible tracker and mail sink on loopback")
    p.add_argument("--port", type=_port_arg, default=8080, help="the GitLab (and Zendesk) port (default: 8080)")
    p.add_argument("--smtp-port", type=_port_arg, default=2525, help="the mail sink's port (default: 2525)")
    p.add_argument("--state", metavar="FILE", help="keep everything in this file across restarts")
    p.add_argument("--search-rules", choices=("v1", "v2", "v3"), default="v3",
                   help="GitLab's issue search generation: v1 before 16.6, v2 16.6 on, v3 the newest (default)")
    p.add_argument("--edition", choices=("free", "premium"), default="premium",
                   help="free: scoped labels do not replace each other, one assignee (default: premium)")
    p.add_argument("--search-rate-limit", type=_count_arg, default=30, metavar="N",
                   help="searches per minute per user before 429, as GitLab's default (0: off)")

    p = add("find", cmd_find, "find the license sent to an email, and any open request for it")
    p.add_argument("email", help="the customer's whole email address, e.g. jane@example.com")
    p.add_argument("--ticket", type=_ticket_arg, metavar="ID", help="only this ticket (number or URL)")
    p.add_argument("--download", metavar="DIR", help="write each license file here, checked with the public key")
    p.add_argument("--force", action="store_true", help="replace files that exist in the --download folder")
    p.add_argument("--json", action="store_true", help="print what was found as JSON")

    p = add("report", cmd_report, "what the bot issued, for whom, by whom and how fast, from the record and the "
                                  "requests")
    p.add_argument("--since", type=_date_arg, metavar="YYYY-MM-DD", help="first day (default: 12 weeks before --until)")
    p.add_argument("--until", type=_date_arg, metavar="YYYY-MM-DD", help="last day (default: today, UTC)")
    p.add_argument("--format", choices=("text", "csv", "json", "html"), default="text",
                   help="text (default), csv, json, or html: one self-contained page")
    p.add_argument("--output", metavar="FILE", help="write the report here instead of standard output")
    p.add_argument("--force", action="store_true", help="replace the --output file if it exists")
    p.add_argument("--today", type=_date_arg, metavar="YYYY-MM-DD", help=argparse.SUPPRESS)

    for name, func, text in (("doctor", cmd_doctor, "check the deployment, changing nothing"),
                             ("setup", cmd_setup, "create the labels and install the issue template, then check")):
        p = add(name, func, text)
        p.add_argument("--ci-file", type=Path, metavar="PATH", help="the pipeline file to check "
                       "(default: $CI_PROJECT_DIR/.gitlab-ci.yml, else ./.gitlab-ci.yml)")

    add("demo", cmd_demo, "show the whole workflow on a local sandbox, without a GitLab account")

    return parser


class _Cleaned:
    """Standard output or error with every write cleaned (bot.terminal): one filter for all the CLI prints, `say`'s
    scrubbed lines and whatever a library or argparse writes alike.

    Once `wrap_at` is set (human-readable output only, never --json or a key), whole lines are wrapped at that
    width with hanging indents; and text is spelled so the stream's encoding can take it (PYTHONIOENCODING=ascii).
    """

    def __init__(self, stream):
        self._stream = stream
        self.wrap_at: int | None = None
        self._pending = ""

    def write(self, text: str) -> int:
        text = terminal.clean(text)
        if self.wrap_at:
            text, _, self._pending = (self._pending + text).rpartition("\n")
            text = terminal.wrap(text, self.wrap_at) + "\n" if _ else ""
        if text:
            self._stream.write(terminal.encodable(text, getattr(self._stream, "encoding", None)))
        return len(text)

    def flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, ""
            self._stream.write(terminal.encodable(terminal.wrap(pending, self.wrap_at or 0),
                                                  getattr(self._stream, "encoding", None)))
        self._stream.flush()

    def __getattr__(self, name):
        return getattr(self._stream, name)


def width() -> int:
    """The terminal's width: $COLUMNS if set, else the terminal's own, else 80 (a pipe, a CI log)."""
    import shutil

    return max(shutil.get_terminal_size((80, 24)).columns, 40)


def main(argv: Sequence[str] | None = None) -> int:
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Cleaned(sys.stdout), _Cleaned(sys.stderr)
    try:
        return _main(argv)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = streams


def _main(argv: Sequence[str] | None) -> int:
    say.reset()  # this invocation's environment: its secrets are the ones to scrub
    _route_library_output()
    sys.stderr.wrap_at = width()
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # said by the command's own parser, so the hint names its --help
        _unknown(parser, args.command, extra)
    if not getattr(args, "json", False) and args.command != "generate":  # JSON and keys are never re-wrapped
        sys.stdout.wrap_at = width()
    try:
        return args.func(args)
    except BotError as exc:
        say(f"license-bot: error: {str(exc)}", err=True)
        return 1
    except KeyboardInterrupt:
        say("license-bot: interrupted", err=True)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last resort: one line, never a traceback, never a secret
        say(f"license-bot: error: internal error ({type(exc).__name__}: {str(exc)[:300]}); please "
            "report it with the command you ran", err=True)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
