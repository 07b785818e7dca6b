"""Project uploads: the license file attached to a request."""

from __future__ import annotations

from ..tracker import Upload
from .connection import Connection


class Uploads:
    def __init__(self, connection: Connection):
        self.connection = connection

    def upload(self, filename: str, data: bytes) -> Upload:
        conn = self.connection
        # Not project.upload(): for a project addressed by path it encodes the path twice (%252F).
        path, files = f"{conn.project_path}/uploads", {"file": (filename, data)}
        result = conn.call(lambda: conn.gl.http_post(path, files=files, max_retries=conn.max_retries),
                           f"upload {filename}")
        return Upload.from_api(result)
