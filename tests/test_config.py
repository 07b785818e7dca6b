from __future__ import annotations

import pytest
import yaml

from bot import config as config_mod
from bot.config import ConfigError, parse

from .conftest import DATA  # noqa: F401  (keeps the data folder next to the tests)


def _defaults() -> dict:
    return yaml.safe_load(config_mod.resources.default_config().read_text())


def _with(path: str, value) -> dict:
    raw = _defaults()
    node = raw
    *parents, last = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return raw


def _error(raw, env=None) -> str:
    with pytest.raises(ConfigError) as info:
        parse(raw, env or {})
    return str(info.value)


def test_shipped_config_loads_with_the_workflow_defaults():
    cfg = config_mod.load(environ={})
    assert cfg.license.terms.duration_days == 10
    assert cfg.license.terms.plan == "ultimate" and cfg.license.terms.trial is True
    assert cfg.license.terms.backdate_days == 1 and cfg.license.terms.grace_days == 0
    assert cfg.policy.scope.grace_period_days == 14 and cfg.policy.scope.window_days == 3
    assert cfg.policy.max_users == 100_000 and cfg.policy.email_cooldown_days == 30
    assert cfg.policy.deny_email_domains == ("gitlab.com",)
    assert cfg.tickets.base_url == "https://gitlab.zendesk.com"
    assert cfg.requests.state_labels == ("license-request::processing", "license-request::success",
                                         "license-request::failed")


def test_environment_fills_gitlab_url_and_project_when_the_file_leaves_them_out():
    cfg = parse(_defaults(), {"CI_SERVER_URL": "https://ci.example.com", "CI_PROJECT_PATH": "g/p"})
    assert (cfg.gitlab.url, cfg.gitlab.project) == ("https://ci.example.com", "g/p")
    cfg = parse(_defaults(), {"GITLAB_URL": "https://a.example.com", "CI_SERVER_URL": "https://b.example.com"})
    assert cfg.gitlab.url == "https://a.example.com"
    cfg = parse(_with("gitlab.url", "https://file.example.com/"), {"GITLAB_URL": "https://env.example.com"})
    assert cfg.gitlab.url == "https://file.example.com"


def test_mistyped_value_names_path_expectation_and_what_was_found_but_never_the_text():
    # Issue 19: a key file or .env named as the config had every line printed back in the error.
    message = _error(_with("license.duration_days", "ten"))
    assert "license.duration_days: expected a whole number of days from 1 to 30, got a text of 3 characters" in message
    assert '"ten"' not in message


def test_a_mistyped_value_in_a_file_is_located_by_line_and_column(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("smtp:\n  host: mail\n  security: tls-please\n")
    with pytest.raises(ConfigError) as err:
        config_mod.load(path, environ={})
    assert "smtp.security: expected starttls or ssl or none, got a text of 10 characters (line 3, column 13)" \
        in str(err.value) and "tls-please" not in str(err.value)


@pytest.mark.parametrize("content", [
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAsecretline1\nsecretline2Zq9\n-----END RSA PRIVATE KEY-----\n",
    "GITLAB_TOKEN=glpat-secret1\nSMTP_PASSWORD=hunter\n",
    "glpat-secret1: 1\n",
    "token: [unclosed 'glpat-secret1\n",
])
def test_a_key_or_env_file_named_as_the_config_is_refused_without_its_contents(tmp_path, content):
    # Issue 19, finding 1: `--config path/to/license_key` printed the private key in the config error.
    path = tmp_path / "not-a-config"
    path.write_text(content)
    with pytest.raises(ConfigError) as err:
        config_mod.load(path, environ={})
    for piece in ("secretline1", "secretline2", "Zq9", "glpat-secret1", "hunter", "MIIE"):
        assert piece not in str(err.value)


def test_a_deep_or_huge_config_is_one_clear_error(tmp_path):
    # Issue 19, findings 4 and 5: a 100,000-level YAML ended in an internal error; /dev/zero read forever.
    deep = tmp_path / "deep.yaml"
    deep.write_text("[" * 100_000)
    with pytest.raises(ConfigError, match="nested too deeply"):
        config_mod.load(deep, environ={})
    nested = tmp_path / "nested.yaml"
    nested.write_text("{a: " * 50_000)
    with pytest.raises(ConfigError, match="nested too deeply"):
        config_mod.load(nested, environ={})
    with pytest.raises(ConfigError, match="is larger than 256 KB"):
        config_mod.load("/dev/zero", environ={})


@pytest.mark.parametrize("path,value,expected", [
    ("license.duration_days", 31, "license.duration_days: expected a whole number of days from 1 to 30, got 31"),
    ("license.duration_days", True, "got True"),
    ("smtp.port", 70000, "smtp.port: expected a port number from 1 to 65535, got 70000"),
    ("smtp.security", "tls", 'smtp.security: expected starttls or ssl or none, got a text of 3 characters'),
    ("license.plan", "gold", 'license.plan: expected starter or premium or ultimate, got a text of 4 characters'),
    ("policy.deny_email_domains", "gitlab.com", 'policy.deny_email_domains: expected a list of texts'),
    ("tickets.base_url", "gitlab.zendesk.com", "tickets.base_url: expected an http(s) URL"),
    ("slack.enabled", "yes", 'slack.enabled: expected true or false, got a text of 3 characters'),
    ("policy.scope.window_days", -1, "policy.scope.window_days: expected a whole number of days from 0 to 90"),
    ("requests.label", "", 'requests.label: expected a non-empty text, got an empty text'),
    ("smtp", "localhost", 'smtp: expected a mapping of keys, got a text of 9 characters'),
])
def test_out_of_range_and_mistyped_values(path, value, expected):
    assert expected in _error(_with(path, value))


def test_unknown_keys_are_named_with_the_known_ones():
    message = _error(_with("license.duraton_days", 10))
    assert "license.duraton_days: unknown key" in message and "duration_days" in message


def test_all_problems_are_reported_at_once():
    raw = _with("license.duration_days", "ten")
    raw["smtp"]["port"] = "x"
    message = _error(raw)
    assert "2 problem(s)" in message and "license.duration_days" in message and "smtp.port" in message


def test_missing_sections_fall_back_to_defaults():
    cfg = parse({"gitlab": {"url": "https://g.example.com", "project": "a/b"}}, {})
    assert cfg.license.terms.duration_days == 10 and cfg.smtp.security == "starttls"


def test_gitlab_settings_are_required_only_where_gitlab_is_used():
    cfg = parse({}, {})
    with pytest.raises(ConfigError, match="gitlab.url: not set.*GITLAB_URL"):
        config_mod.require_gitlab(cfg)


def test_config_file_choice_and_unreadable_or_broken_files(tmp_path):
    custom = tmp_path / "custom.yaml"
    custom.write_text("license:\n  duration_days: 7\n")
    assert config_mod.load(custom, environ={}).license.terms.duration_days == 7
    assert config_mod.load(environ={"LICENSE_BOT_CONFIG": str(custom)}).license.terms.duration_days == 7
    with pytest.raises(ConfigError, match="cannot read the config file"):
        config_mod.load(tmp_path / "missing.yaml", environ={})
    broken = tmp_path / "broken.yaml"
    broken.write_text("license: [\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        config_mod.load(broken, environ={})


def test_secrets_come_from_the_environment_and_hide_from_repr(tmp_path):
    key_file = tmp_path / "k.pem"
    key_file.write_text("-----BEGIN RSA PRIVATE KEY-----\nsecretbits\n-----END RSA PRIVATE KEY-----\n")
    secrets = config_mod.secrets_from_env({"GITLAB_TOKEN": "glpat-SECRET", "LICENSE_PRIVATE_KEY_FILE": str(key_file),
                                           "SMTP_PASSWORD": "hunter2", "SLACK_WEBHOOK_URL": "https://hooks/x"})
    assert secrets.gitlab_token == "glpat-SECRET" and b"secretbits" in secrets.private_key_pem
    shown = repr(secrets)
    for value in ("glpat-SECRET", "secretbits", "hunter2", "hooks/x"):
        assert value not in shown
    # Problems with the private key wait until a command needs it: find and inspect need only the public key.
    from bot import keys
    both = config_mod.secrets_from_env({"LICENSE_PRIVATE_KEY": "x", "LICENSE_PRIVATE_KEY_FILE": str(key_file)})
    with pytest.raises(keys.SigningKeyError, match="not both"):
        keys.private_key_from(both)
    missing = config_mod.secrets_from_env({"LICENSE_PRIVATE_KEY_FILE": str(tmp_path / "nope")})
    with pytest.raises(keys.SigningKeyError, match="cannot read LICENSE_PRIVATE_KEY_FILE"):
        keys.private_key_from(missing)
