"""The one rule for every file the bot reads or writes.

Reads are bounded: `/dev/zero` or a multi-gigabyte file named by mistake is refused with a message
after reading one byte past the limit, never read until the process is killed. Writes go to a fresh
file made by `mkstemp` (O_EXCL, mode 0600) in the target's folder and are then renamed over the target,
so a reader never sees half a file, and a symlink planted at the target is replaced, never followed.
Nothing existing is replaced unless the caller says `force`. Errors name the path and the problem,
never the file's contents.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
import tempfile
from pathlib import Path

from .errors import BotError

KB, MB = 1024, 1024 * 1024
# GitLab refuses an issue description longer than 1,048,576 characters (Issuable::DESCRIPTION_LENGTH_MAX =
# 1.megabyte, validated as a length; app/models/concerns/issuable.rb); UTF-8 needs up to 4 bytes a character.
DESCRIPTION_CHARS = 1_048_576
DESCRIPTION_BYTES = 4 * DESCRIPTION_CHARS
KEY_BYTES = 64 * KB       # a 4096-bit PEM key is about 3.3 KB; a .gitlab-license about 2 KB
CONFIG_BYTES = 256 * KB   # the shipped config.yaml is under 10 KB


class FileError(BotError):
    pass


def read_bytes(path: str | Path, limit: int, what: str) -> bytes:
    """At most `limit` bytes of the file (`-`: standard input); more is an error, not a longer read."""
    try:
        if str(path) == "-":
            data = sys.stdin.buffer.read(limit + 1)
        else:
            with open(path, "rb") as fh:
                data = fh.read(limit + 1)
    except OSError as exc:
        raise FileError(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise FileError(f"{what} {path} is larger than {_size(limit)}; is it the right file?")
    return data


def read_text(path: str | Path, limit: int, what: str, *, max_chars: int | None = None) -> str:
    """The file as UTF-8 text, bounded like read_bytes; invalid bytes are an error naming their offset."""
    data = read_bytes(path, limit, what)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileError(f"{what} {path} is not UTF-8 text (byte {exc.start:,}); save it as UTF-8") from None
    if max_chars is not None and len(text) > max_chars:
        raise FileError(f"{what} {path} has {len(text):,} characters, more than the {max_chars:,} allowed")
    return text


def _size(n: int) -> str:
    return f"{n // MB} MB" if n >= MB and n % MB == 0 else f"{n // KB} KB"


def check_target(path: str | Path, what: str, *, force: bool) -> Path:
    """A file this command may write: never a folder, never an existing file (or link) unless `force`."""
    out = Path(path)
    if out.is_dir() and not out.is_symlink():
        raise FileError(f"{what} {path}: is a folder; give a file name")
    if (out.exists() or out.is_symlink()) and not force:
        raise FileError(f"{what} {path}: exists already; choose another name, or add --force to replace it")
    if not out.parent.is_dir():
        raise FileError(f"{what} {path}: the folder {out.parent} does not exist")
    return out


def write(path: str | Path, data: bytes | str, what: str, *, force: bool, mode: int = 0o644) -> Path:
    """Write `data` to `path` through a fresh temporary file in its folder and an atomic rename.

    Without `force`, an existing file or symlink at `path` is an error and is left alone (the final step is
    a hard link, which fails on anything already there, even a dangling symlink); with it, the rename
    replaces the link itself, never what it points to."""
    out = check_target(path, what, force=force)
    blob = data.encode("utf-8") if isinstance(data, str) else data
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        if force:
            os.replace(tmp, out)
        else:
            _link_new(tmp, out)
        tmp = None
    except FileExistsError:
        raise FileError(f"{what} {path}: exists already; choose another name, or add --force to replace it") from None
    except OSError as exc:
        raise FileError(f"{what} {path}: cannot write it ({exc.strerror})") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return out


def _link_new(tmp: str, out: Path) -> None:
    """Publish `tmp` as `out` only if nothing is there: link(2) never follows or replaces the target."""
    try:
        os.link(tmp, out, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        # A file system without hard links: reserve the name with O_EXCL|O_NOFOLLOW, then rename over it.
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        os.close(fd)
        os.replace(tmp, out)
    else:
        os.unlink(tmp)


def is_regular(path: str | Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False
