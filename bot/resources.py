"""Where the shipped config.yaml and templates/ are, in a source checkout or an installed package.

pyproject.toml installs the top-level config.yaml and templates/ as bot/defaults/ and
bot/templates/, so both layouts hold the same single source.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parent


def _first(*candidates: Path) -> Path:
    for path in candidates:
        if path.exists():
            return path
    return candidates[0]


def default_config() -> Path:
    return _first(_PACKAGE / "defaults" / "config.yaml", _CHECKOUT / "config.yaml")


def templates_dir() -> Path:
    return _first(_PACKAGE / "templates", _CHECKOUT / "templates")


ISSUE_TEMPLATE = "Emergency License Request.md"


def issue_template() -> Path:
    """The request template engineers file issues from (installed as .gitlab/issue_templates/...)."""
    return templates_dir() / ISSUE_TEMPLATE
