"""A GitLab twin on loopback: the subset of REST API v4 that python-gitlab and the bot use, with
GitLab's shapes, status codes and semantics, each behaviour citing the GitLab fact it mirrors.

One module per GitLab concern: `store` (state, seed data, JSON shapes, persistence), `permissions`
(roles, groups, membership, visibility), `labels` (project and group labels, label history),
`quickactions` (what creating and editing an issue may set), `search` (full-text issue search, three
generations), `ratelimit` (the search rate limit), `model` (the rules together), `api` (the HTTP
routes), `zendesk` (the Zendesk API subset the bot uses), `routing` (the route table) and `server` (the
HTTP server with the mail sink).

    license-bot sandbox [--port 8080] [--smtp-port 2525] [--state FILE]
                        [--search-rules v1|v2|v3] [--edition free|premium] [--search-rate-limit N]
"""

from .model import Sandbox
from .server import SandboxServer
from .store import PROJECT_PATH, TOKENS

__all__ = ["PROJECT_PATH", "TOKENS", "Sandbox", "SandboxServer"]
