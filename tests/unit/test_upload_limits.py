"""What a job may declare, and how a large file is cut into parts: pure logic."""

from __future__ import annotations

import pytest

from darkroom import multipart
from darkroom.api.errors import BadRequest, TooLarge
from darkroom.api.models import FileIn
from darkroom.api.validation import check_files
from darkroom.settings import ApiLimits

MIB = 1024**2
GIB = 1024**3
TIB = 1024**4


def _check(files: list[FileIn]) -> None:
    limits = ApiLimits()
    check_files(
        files,
        max_file_bytes=limits.max_file_bytes,
        max_job_bytes=limits.max_job_bytes,
        max_files=limits.max_files_per_job,
    )


def _files(n: int, size: int = 50 * MIB) -> list[FileIn]:
    return [FileIn(name=f"IMG_{i:05d}.CR3", size=size) for i in range(n)]


def test_the_default_limits_match_a_wedding() -> None:
    limits = ApiLimits()
    assert (limits.max_files_per_job, limits.max_job_bytes, limits.max_file_bytes) == (
        5000,
        TIB,
        5 * GIB,
    )
    assert limits.multipart_threshold_bytes == 100 * MIB


def test_five_thousand_files_are_accepted_and_one_more_is_refused_naming_the_limit() -> None:
    _check(_files(5000))
    with pytest.raises(TooLarge, match="5001 RAW files declared; a job takes at most 5000"):
        _check(_files(5001))


def test_a_job_of_one_tebibyte_is_accepted_and_a_byte_more_is_refused() -> None:
    files = _files(256, 4 * GIB)
    assert sum(f.size for f in files) == TIB
    _check(files)
    over = [*files[:-1], FileIn(name="IMG_00255.CR3", size=4 * GIB + 1)]
    with pytest.raises(TooLarge, match=f"a job takes at most {TIB}"):
        _check(over)


def test_a_file_of_five_gibibytes_is_accepted_and_a_byte_more_is_refused_naming_it() -> None:
    _check([FileIn(name="CLIP.dng", size=5 * GIB)])
    with pytest.raises(TooLarge, match=r"CLIP\.dng") as caught:
        _check([FileIn(name="CLIP.dng", size=5 * GIB + 1)])
    assert caught.value.details["max_file_bytes"] == 5 * GIB


def test_the_limits_stay_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DARKROOM_MAX_FILES_PER_JOB", "7000")
    monkeypatch.setenv("DARKROOM_MULTIPART_THRESHOLD_BYTES", str(8 * MIB))
    limits = ApiLimits()
    assert (limits.max_files_per_job, limits.multipart_threshold_bytes) == (7000, 8 * MIB)
    monkeypatch.setenv("DARKROOM_MULTIPART_PART_BYTES", str(4 * MIB))
    with pytest.raises(ValueError, match="multipart_part_bytes"):
        ApiLimits()


@pytest.mark.parametrize("size", [5 * GIB, 5 * GIB - 1, 100 * MIB + 1, 16 * MIB * 10_000 + 1])
def test_a_file_fits_in_at_most_ten_thousand_parts_of_at_least_the_preferred_size(
    size: int,
) -> None:
    part = multipart.part_size(size, 16 * MIB)
    count = multipart.part_count(size, part)
    assert part >= 16 * MIB and part % MIB == 0
    assert count <= multipart.MAX_PARTS
    lengths = [multipart.part_range(n, size, part)[1] for n in range(1, count + 1)]
    assert sum(lengths) == size
    # Every part but the last is full size, so none is under S3's 5 MiB minimum.
    assert set(lengths[:-1]) <= {part} and 0 < lengths[-1] <= part


def test_five_gibibytes_are_320_parts_of_16_mib() -> None:
    assert multipart.part_size(5 * GIB, 16 * MIB) == 16 * MIB
    assert multipart.part_count(5 * GIB, 16 * MIB) == 320


def test_the_largest_object_s3_takes_still_fits_in_ten_thousand_parts() -> None:
    part = multipart.part_size(5 * TIB, 16 * MIB)
    assert multipart.part_count(5 * TIB, part) <= 10_000 and part <= multipart.MAX_PART_BYTES


def test_parts_are_never_under_s3s_five_mib_minimum() -> None:
    assert multipart.part_size(6 * MIB, 1 * MIB) == 5 * MIB
    assert multipart.part_size(6 * MIB, 5 * MIB) == 5 * MIB
    assert [multipart.part_range(n, 6 * MIB, 5 * MIB) for n in (1, 2)] == [
        (0, 5 * MIB),
        (5 * MIB, MIB),
    ]


def test_part_numbers_outside_the_file_and_empty_files_are_errors() -> None:
    with pytest.raises(ValueError):
        multipart.part_range(3, 6 * MIB, 5 * MIB)
    with pytest.raises(ValueError):
        multipart.part_range(0, 6 * MIB, 5 * MIB)
    with pytest.raises(ValueError):
        multipart.part_size(0, 16 * MIB)


def test_sidecars_ride_with_their_raw_and_do_not_count_as_files() -> None:
    files = _files(5000)
    # Lightroom's and darktable's names: neither is a file of its own, nor a stem clash.
    files += [FileIn(name="IMG_00000.xmp", size=4096), FileIn(name="IMG_00001.CR3.xmp", size=90)]
    _check(files)


@pytest.mark.parametrize(
    ("sidecar", "problem"),
    [
        (FileIn(name="LOST.xmp", size=100), "an XMP sidecar needs its RAW in the same job"),
        (FileIn(name="IMG_00000.xmp", size=2 * MIB), "an XMP sidecar is at most 1048576 bytes"),
    ],
)
def test_a_sidecar_without_its_raw_or_too_large_is_refused(sidecar: FileIn, problem: str) -> None:
    with pytest.raises(BadRequest) as caught:
        _check([*_files(2), sidecar])
    assert problem in str(caught.value)
