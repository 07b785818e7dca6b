"""The sandbox: its state with GitLab's permission and issue rules."""

from __future__ import annotations

from .labels import Labels
from .permissions import Permissions
from .quickactions import IssueWrites
from .store import Store


class Sandbox(Store, Permissions, Labels, IssueWrites):
    """The state and the API's semantics; the HTTP handler only routes to it."""
