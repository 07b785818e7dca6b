"""The sandbox's route table: handlers register here with `@route`, and the HTTP handler dispatches."""

from __future__ import annotations

import re

ROUTES: list[tuple[str, re.Pattern, str]] = []


def route(method: str, pattern: str):
    def register(func):
        ROUTES.append((method, re.compile("^" + pattern + "$"), func.__name__))
        return func
    return register
