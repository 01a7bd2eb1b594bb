"""Outputs appear whole or not at all: write a temporary file beside the target, then rename it.

A failed or interrupted write (including KeyboardInterrupt and SIGTERM) removes the temporary file
and leaves any existing target untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def replacing(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces the target."""
    target = Path(target)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=(suffix or target.suffix) + ".part",
                                dir=target.parent)
    os.close(fd)
    temp_path = Path(temp)
    os.chmod(temp_path, 0o666 & ~_umask())  # mkstemp makes it private; a finished track is an ordinary file
    try:
        yield temp_path
        os.replace(temp_path, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(target: str | os.PathLike, data: bytes) -> None:
    with replacing(target) as temp:
        temp.write_bytes(data)
        _fsync(temp)


def write_text(target: str | os.PathLike, text: str) -> None:
    write_bytes(target, text.encode("utf-8"))


def _fsync(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())

