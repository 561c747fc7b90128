"""Memory and ZIP64 of the "download all" ZIP writer (darkroom.archive), without S3.

Peak RSS: for each entry count, a fresh process streams that many generated entries
through write_zip into a MultipartWriter whose parts are counted and dropped (S3's
side is not what is measured), and reports its peak RSS over its RSS before writing.

ZIP64 (--zip64 DIR): writes a real archive over 4 GiB to DIR (an entry of 4.5 GiB
streamed with its size declared, then small entries whose headers sit past 4 GiB),
checks it with zipfile and with `unzip -t` where installed, and deletes it.

    .venv/bin/python -m benchmarks.archive_memory [--counts 50 500 5000] [--entry-kib 1024]
    .venv/bin/python -m benchmarks.archive_memory --zip64 /tmp
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from darkroom.archive import MIB, Entry, MultipartWriter, Source, write_zip
from darkroom.aws.objects import Objects

_CHUNK = b"\x5a" * (1024 * 1024)


class _DroppedParts(Objects):
    """A multipart upload whose parts are counted, not kept."""

    def __init__(self) -> None:
        self.parts = 0

    def start_parts(self, bucket: str, key: str, content_type: str) -> str:
        return "upload"

    def put_part(self, *args: Any, **kwargs: Any) -> str:
        self.parts += 1
        return f"etag-{self.parts}"

    def complete_parts(self, *args: Any, **kwargs: Any) -> None:
        pass


@dataclass(frozen=True)
class _Generated:
    """`size` bytes from one shared chunk: the source itself allocates nothing."""

    size: int
    modified: datetime | None = None

    @property
    def chunks(self) -> Iterator[bytes]:
        left = self.size
        while left:
            step = min(left, len(_CHUNK))
            yield _CHUNK[:step] if step < len(_CHUNK) else _CHUNK
            left -= step


def _entry(name: str, size: int) -> Entry:
    def open_() -> AbstractContextManager[Source]:
        return nullcontext(_Generated(size))

    return Entry(name, open_)


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def measure(count: int, entry_bytes: int) -> dict[str, Any]:
    """In this process: stream `count` entries; the peak RSS it took, in MiB."""
    before = _rss_kib()
    started = time.monotonic()
    parts = _DroppedParts()
    with MultipartWriter(parts, "bucket", "key") as out:
        write_zip(out, (_entry(f"IMG_{i:05d}.jpg", entry_bytes) for i in range(count)))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "entries": count,
        "archive_mib": round(out.size / MIB, 1),
        "parts": parts.parts,
        "seconds": round(time.monotonic() - started, 2),
        "rss_before_mib": round(before / 1024, 1),
        "peak_rss_mib": round(peak / 1024, 1),
        "growth_mib": round((peak - before) / 1024, 1),
    }


class _FileSink:
    """An unseekable writer over a file on disk, as zipfile sees an upload."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("wb")
        self._size = 0

    def write(self, data: bytes) -> int:
        self._size += self._file.write(data)
        return len(data)

    def tell(self) -> int:
        return self._size

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def zip64_check(directory: Path) -> dict[str, Any]:
    path = directory / "zip64-check.zip"
    big = 4 * 1024 * MIB + 512 * MIB
    sink = _FileSink(path)
    try:
        started = time.monotonic()
        write_zip(
            sink, [_entry("big.jpg", big), *(_entry(f"after-{i}.jpg", 1000) for i in range(3))]
        )
        sink.close()
        written = time.monotonic() - started
        with zipfile.ZipFile(path) as archive:
            infos = {i.filename: i for i in archive.infolist()}
            assert infos["big.jpg"].file_size == big
            assert all(i.header_offset > 0xFFFFFFFF for n, i in infos.items() if n != "big.jpg")
            with archive.open("after-2.jpg") as small:
                assert small.read() == _CHUNK[:1000]
        unzip = "not installed"
        if shutil.which("unzip"):
            result = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True)
            assert result.returncode == 0, result.stdout + result.stderr
            unzip = result.stdout.strip().splitlines()[-1]
        return {
            "archive_bytes": path.stat().st_size,
            "write_seconds": round(written, 1),
            "unzip_t": unzip,
        }
    finally:
        path.unlink(missing_ok=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[50, 500, 5000])
    parser.add_argument("--entry-kib", type=int, default=1024)
    parser.add_argument("--zip64", type=Path, help="write and check a >4 GiB archive here")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one, args.entry_kib * 1024)))
        return 0
    if args.zip64:
        print(json.dumps(zip64_check(args.zip64)))
        return 0
    for count in args.counts:
        # A process per count: ru_maxrss is a high-water mark.
        command = [sys.executable, "-m", "benchmarks.archive_memory", "--one", str(count)]
        command += ["--entry-kib", str(args.entry_kib)]
        print(subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
