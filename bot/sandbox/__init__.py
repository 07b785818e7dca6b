"""A GitLab twin on loopback: the subset of REST API v4 that python-gitlab and the bot use, with
GitLab's shapes, status codes and semantics, each behaviour citing the GitLab fact it mirrors.

One module per GitLab concern: `store` (state, seed data, persistence), `permissions` (roles, groups,
membership), `search` (full-text issue search, three generations), `quickactions` (what a new
issue's text and `labels=` may set), `ratelimit` (the search rate limit), `api` (the HTTP routes), and
`server` (the HTTP server with the mail sink).

    license-bot sandbox [--port 8080] [--smtp-port 2525] [--state FILE]
                        [--search-rules v1|v2|v3] [--edition free|premium] [--search-rate-limit N]
"""

from .api import PROJECT_PATH, TOKENS, Sandbox, SandboxServer

__all__ = ["PROJECT_PATH", "TOKENS", "Sandbox", "SandboxServer"]
