"""What developing one file gives: its renditions, or a DevelopError with a stable code.

Outside the develop package, which loads numpy and LibRaw: the worker's own process
receives these from its develop processes (unpickling imports this module) and needs
no imaging library itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class DevelopError(Exception):
    """A file that cannot be developed; `code` is stable, the message is for people."""

    def __init__(self, code: str, file: str, reason: str) -> None:
        super().__init__(f"{file}: {reason}")
        self.code = code
        self.file = file
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        # Crosses process boundaries (worker pools) with its fields intact.
        return (type(self), (self.code, self.file, self.reason))


@dataclass(frozen=True)
class RenderedFile:
    rendition: str
    path: Path
    width: int
    height: int
    content_type: str
    size_bytes: int


@dataclass(frozen=True)
class DevelopResult:
    source: str
    # Size of the decoded, upright image every rendition was made from (half the sensor
    # on the half_size fast path).
    width: int
    height: int
    half_size: bool
    renditions: tuple[RenderedFile, ...]
    decode_seconds: float
    render_seconds: float
    # What the recipe came to for this file: linear exposure gain, and the red, green,
    # blue white balance multipliers (green 1).
    exposure_gain: float = 1.0
    white_balance: tuple[float, float, float] = (1.0, 1.0, 1.0)
    # What was decided for this file and why, in words for the run's manifest: the crop,
    # where the white balance came from, lens corrections, noise reduction.
    notes: dict[str, str] = field(default_factory=dict)
    # Name -> version of what developed it (darkroom, LibRaw, rawpy, Pillow).
    software: dict[str, str] = field(default_factory=dict)
