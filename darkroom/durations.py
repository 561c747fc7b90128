"""Durations as people write and read them: "12h", "30d" in, "30 days" out."""

from __future__ import annotations

import re
from typing import Final

_DURATION = re.compile(r"^(\d{1,12})([smhdw]?)$")
_UNIT_SECONDS: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# Largest first: a duration reads in the largest unit that divides it exactly.
_WORDS: Final = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def parse(text: str) -> int:
    """Seconds from "3600", "90m", "12h", "30d" or "2w"; ValueError naming the forms."""
    match = _DURATION.match(text.strip().lower())
    if not match:
        raise ValueError(
            f"{text[:40]!r} is not a duration: use seconds, or a number with s, m, h, d or w "
            "(e.g. 12h, 30d)"
        )
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def words(seconds: int) -> str:
    """3600 -> "1 hour", 2592000 -> "30 days", 5400 -> "90 minutes"."""
    for name, size in _WORDS:
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {name}{'' if count == 1 else 's'}"
    return f"{seconds} seconds"


def approximately(seconds: float) -> str:
    """A time left as people say it: to the minute, in at most two units ("30 days",
    "6 days 23 hours", "2 hours 5 minutes"); a request's own second or two is dropped."""
    rest = int(round(seconds / 60) * 60) if seconds >= 60 else max(int(seconds), 0)
    parts = []
    for name, size in _WORDS:
        if rest >= size:
            count, rest = divmod(rest, size)
            parts.append(f"{count} {name}{'' if count == 1 else 's'}")
        elif parts:
            break  # "1 day 5 minutes" would skip a unit: say "1 day"
        if len(parts) == 2:
            break
    return " ".join(parts) or "0 seconds"
