"""Project labels: what `setup` creates and `doctor` checks (labels are what people see, never evidence)."""

from __future__ import annotations

from ..tracker import TrackerError
from .connection import Connection


class Labels:
    def __init__(self, connection: Connection):
        self.connection = connection

    def label_names(self) -> set[str]:
        conn = self.connection
        return conn.call(lambda: {lb.name for lb in conn.project.labels.list(iterator=True, per_page=100,
                                                                             max_retries=conn.max_retries)},
                         "list the tracker's labels")

    def create_label(self, name: str, color: str, description: str) -> bool:
        """Create a project label; False when it exists already. Creation is atomic: GitLab answers 409,
        or, when two creations race past its uniqueness check, 400 "has already been taken"."""
        conn = self.connection
        data = {"name": name, "color": color, "description": description}
        try:
            return conn.call(lambda: conn.project.labels.create(data, max_retries=conn.max_retries) is not None,
                             f"create label {name}", absent={409: False})
        except TrackerError as exc:
            if exc.status == 400 and "already been taken" in str(exc):
                return False
            raise
