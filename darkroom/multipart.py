"""How a large file is cut into the parts of an S3 multipart upload. Standard library
only: the API plans with it and the client reads parts with it."""

from __future__ import annotations

MIB = 1024**2
# S3's rules: every part but the last at least 5 MiB, at most 5 GiB, at most 10,000 parts.
MIN_PART_BYTES = 5 * MIB
MAX_PART_BYTES = 5 * 1024**3
MAX_PARTS = 10_000


def part_size(size: int, preferred: int) -> int:
    """The part size for a file of `size` bytes: `preferred`, or more (in whole MiB) when
    that many parts would pass 10,000; never under S3's minimum."""
    if size < 1:
        raise ValueError("a file of at least 1 byte")
    fitting = -(-size // MAX_PARTS)
    fitting = -(-fitting // MIB) * MIB
    chosen = max(preferred, fitting, MIN_PART_BYTES)
    if chosen > MAX_PART_BYTES:
        raise ValueError(f"{size} bytes do not fit in {MAX_PARTS} parts of at most 5 GiB")
    return chosen


def part_count(size: int, part_bytes: int) -> int:
    return -(-size // part_bytes)


def part_range(number: int, size: int, part_bytes: int) -> tuple[int, int]:
    """Part `number` (from 1) of a file: its offset and its length."""
    count = part_count(size, part_bytes)
    if not 1 <= number <= count:
        raise ValueError(f"part {number} of a file of {count} parts")
    offset = (number - 1) * part_bytes
    return offset, min(part_bytes, size - offset)
