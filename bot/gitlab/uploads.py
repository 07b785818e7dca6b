"""Project uploads: the license file attached to a request."""

from __future__ import annotations

from ..tracker import Upload
from .connection import Connection


class Uploads:
    def __init__(self, connection: Connection):
        self.connection = connection

    def upload(self, filename: str, data: bytes) -> Upload:
        c = self.connection
        # Not project.upload(): for a project addressed by path it encodes the path twice (%252F).
        result = c.call(lambda: c.gl.http_post(f"{c.project_path}/uploads", files={"file": (filename, data)},
                                               max_retries=c.max_retries), f"upload {filename}")
        return Upload.from_api(result)
