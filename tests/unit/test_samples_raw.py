"""Real camera RAW files from ../shared/samples/raw: develop, or fail with the right code.

What each file should do comes from the samples' MANIFEST.tsv (its decodes_ok column says
whether LibRaw decodes it and, when not, which LibRaw error it raises), with one rule of
ours on top: the "ODD" files, which LibRaw decodes without error to an empty or garbage
picture because their pixel data was stripped, must fail as blank_frame.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from darkroom.imaging.develop import DevelopError, develop_file
from darkroom.imaging.develop.crop import edge_trim
from darkroom.recipes import parse_recipe

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "samples"
RAW_DIR = SAMPLES / "raw"
MANIFEST = SAMPLES / "MANIFEST.tsv"

# LibRaw's error (as the manifest names it) -> our stable code.
CODE_FOR_LIBRAW_ERROR = {
    "LibRawIOError": "truncated",
    "LibRawFileUnsupportedError": "unsupported_format",
    "LibRawDataError": "decode_failed",
}

pytestmark = pytest.mark.samples
# The renditions a web gallery needs; the default recipe's full-size one would only add
# demosaicing time here.
WEB_THUMB = parse_recipe(
    {"renditions": [{"name": "web", "long_edge": 2048}, {"name": "thumb", "long_edge": 400}]}
)


@dataclass(frozen=True)
class Expectation:
    file: str
    code: str | None  # None: must develop
    # The upright (width, height) the manifest recorded for a half-size decode.
    half_size_wh: tuple[int, int] | None
    note: str


def _expectation(row: dict[str, str]) -> Expectation:
    file = row["file"].removeprefix("raw/")
    decodes = row["decodes_ok"]
    note = row["what_it_tests/camera"]
    if note.startswith("ODD"):
        return Expectation(file, "blank_frame", None, note)
    if decodes.startswith("no"):
        error = decodes.split(":", 2)[1].strip()
        return Expectation(file, CODE_FOR_LIBRAW_ERROR[error], None, note)
    size = re.search(r"-> (\d+)x(\d+)x3", decodes)
    return Expectation(file, None, (int(size[1]), int(size[2])) if size else None, note)


def _expectations() -> list[object]:
    if not RAW_DIR.is_dir() or not MANIFEST.is_file():
        reason = f"RAW samples not present at {RAW_DIR} (they live beside the repo, not in it)"
        return [pytest.param(None, marks=pytest.mark.skip(reason=reason), id="no-samples")]
    with MANIFEST.open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh, delimiter="\t") if r["file"].startswith("raw/")]
    expected = {e.file: e for e in map(_expectation, rows)}
    params: list[object] = []
    for path in sorted(RAW_DIR.iterdir()):
        if path.name not in expected:
            reason = f"{path.name} is not described in {MANIFEST.name}"
            params.append(pytest.param(None, marks=pytest.mark.skip(reason=reason), id=path.name))
        else:
            params.append(pytest.param(expected[path.name], id=path.name))
    return params


def _files_under(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file()] if directory.exists() else []


@pytest.mark.parametrize("expected", _expectations())
def test_sample_develops_or_fails_cleanly(expected: Expectation, tmp_path: Path) -> None:
    src = RAW_DIR / expected.file
    out = tmp_path / "out"
    if expected.code is not None:
        with pytest.raises(DevelopError) as caught:
            develop_file(src, out)
        error = caught.value
        assert error.code == expected.code, f"{error} ({expected.note})"
        assert str(error).startswith(f"{src.name}: ")
        assert _files_under(out) == []
        return

    result = develop_file(src, out, WEB_THUMB)
    assert len(result.renditions) == 2
    if expected.half_size_wh:
        # Same shape as LibRaw's own upright decode: the orientation was applied.
        width, height = expected.half_size_wh
        assert result.width / result.height == pytest.approx(width / height, rel=0.02)
    for index, rendered in enumerate(result.renditions):
        with Image.open(rendered.path) as img:
            pixels = np.asarray(img)
            exif = img.getexif()
        assert exif[0x0112] == 1
        camera = " ".join(exif[tag] for tag in (0x010F, 0x0110) if tag in exif)
        # What we copy of the camera's name must be what exiftool read from the same file.
        assert camera and camera in expected.note
        assert pixels.shape[:2] == (rendered.height, rendered.width)
        assert max(rendered.width, rendered.height) <= max(result.width, result.height)
        # A picture, not a blank or blown-out frame.
        assert 16 < pixels.mean() < 240
        assert pixels.std() > 8
        if index == 0:
            # No border: no edge line of the largest rendition breaks from the picture
            # inside it (smaller ones squeeze a gentle fall-off at the edge into a line).
            box = edge_trim(pixels)
            assert (box.width, box.height) == (rendered.width, rendered.height), box
        # A sane white balance: no channel far from the others over the whole frame.
        red, green, blue = pixels.reshape(-1, 3).mean(axis=0)
        assert 0.6 < red / green < 1.6 and 0.6 < blue / green < 1.6, (red, green, blue)
