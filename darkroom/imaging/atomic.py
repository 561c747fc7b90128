"""Files written so that they are either absent or complete, never half-written."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

Writer = Callable[[BinaryIO], None]


_umask_lock = threading.Lock()


def _umask() -> int:
    # Read by setting it, the only portable way, and set straight back; under a lock, as
    # renditions are saved from several threads and one must not read another's 022.
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def save_atomic(dest: Path, write: Writer) -> int:
    """Write `dest` through `write` (a temporary file beside it, renamed over it); its size.

    The file gets the permissions an ordinary write would give it (0666 less the umask):
    mkstemp makes its file 0600, which would keep renditions from the rest of a studio."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        size = tmp.stat().st_size
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return size


def write_atomic(dest: Path, data: bytes) -> int:
    """Write `data` to `dest` as save_atomic does; its size."""

    def write(fh: BinaryIO) -> None:
        fh.write(data)

    return save_atomic(dest, write)
