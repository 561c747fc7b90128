"""Files written so that they are either absent or complete, never half-written."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

Writer = Callable[[BinaryIO], None]


def save_atomic(dest: Path, write: Writer) -> int:
    """Write `dest` through `write` (a temporary file beside it, renamed over it); its size."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
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
