"""Files written whole are written as any other file would be: the umask decides who
reads them, not the temporary file they were written through."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from darkroom.imaging.atomic import write_atomic


@pytest.fixture
def umask() -> Iterator[None]:
    previous = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(previous)


def test_a_file_written_atomically_follows_the_umask(tmp_path: Path, umask: None) -> None:
    path = tmp_path / "out" / "A.jpg"
    write_atomic(path, b"data")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    # Reading the umask left it as it was.
    assert os.umask(0o027) == 0o027
