"""What the API accepts beyond the request models' shape: RAW file names, sizes and limits.

A job's files are camera RAWs, and beside them the XMP sidecars Lightroom or darktable
wrote for them (`IMG_0001.xmp`, `IMG_0001.CR3.xmp`): a sidecar must pair with a RAW of the
same job, is small, and is not a file of its own (no renditions, not counted)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from pathlib import PurePosixPath

from darkroom import keys
from darkroom.api.errors import BadRequest, TooLarge
from darkroom.api.models import FileIn
from darkroom.formats import is_raw, not_raw_reason
from darkroom.sidecars import MAX_SIDECAR_BYTES, is_sidecar, pair


def file_name_problem(name: str, *, sidecar_ok: bool = False) -> str | None:
    """Why `name` cannot be a job's RAW file (or, with `sidecar_ok`, its XMP sidecar),
    or None if it can."""
    try:
        keys.validate_file_name(name)
    except ValueError:
        return "must be a single plain file name (no path, no leading dot)"
    if any(unicodedata.category(c).startswith("C") for c in name):
        return "must not contain control or invisible formatting characters"
    if name != name.strip():
        return "must not start or end with whitespace"
    if sidecar_ok and is_sidecar(name):
        return None
    return not_raw_reason(name)


def same_on_every_disk(name: str) -> str:
    """The form in which names that some file system would hold as one file are equal:
    Unicode's canonical caseless match (APFS ignores normalisation and, like NTFS, case).

    Names are kept as the client sent them, not normalised: the client finds its upload
    URLs by the names it declared, and a rendition downloads under its original's name."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", name).casefold())


def check_files(
    files: Sequence[FileIn], *, max_file_bytes: int, max_job_bytes: int, max_files: int
) -> None:
    """Bad names and sizes are 400; more than the limits allow is 413."""
    bad = []
    unpaired = set(pair([f.name for f in files], is_raw)[1])
    for f in files:
        problem = file_name_problem(f.name, sidecar_ok=True)
        if problem:
            bad.append({"name": f.name, "problem": problem})
        elif f.size < 1:
            bad.append({"name": f.name, "problem": "size must be at least 1 byte"})
        elif f.name in unpaired:
            stem = PurePosixPath(f.name).stem
            bad.append(
                {
                    "name": f.name,
                    "problem": f"an XMP sidecar needs its RAW in the same job ({stem}.<raw>)",
                }
            )
        elif is_sidecar(f.name) and f.size > MAX_SIDECAR_BYTES:
            bad.append(
                {"name": f.name, "problem": f"an XMP sidecar is at most {MAX_SIDECAR_BYTES} bytes"}
            )
    if bad:
        raise BadRequest(
            f"{len(bad)} file(s) cannot be accepted: "
            + "; ".join(f"{b['name']!r}: {b['problem']}" for b in bad[:5]),
            files=bad,
        )
    seen: dict[str, str] = {}
    raws = [f for f in files if not is_sidecar(f.name)]
    for f in raws:
        # Renditions are named after the stem, so two files sharing one would overwrite
        # each other's outputs; and stems equal up to case or Unicode normalisation
        # (IMG_1/img_1, café in NFC/NFD) are one file once downloaded to macOS or Windows.
        stem = same_on_every_disk(PurePosixPath(f.name).stem)
        if stem in seen:
            other = seen[stem]
            what = "twice" if other == f.name else f"and {other!r} share a name"
            raise BadRequest(
                f"{f.name!r} {what}: every file needs its own name before the dot, "
                "whatever its case or Unicode form",
                files=[
                    {"name": f.name, "problem": f"same name as {other!r}"},
                    {"name": other, "problem": f"same name as {f.name!r}"},
                ],
            )
        seen[stem] = f.name
    if len(raws) > max_files:
        raise TooLarge(f"{len(raws)} RAW files declared; a job takes at most {max_files}")
    oversize = [f for f in files if f.size > max_file_bytes]
    if oversize:
        raise TooLarge(
            f"{len(oversize)} file(s) larger than {max_file_bytes} bytes: "
            + ", ".join(f.name for f in oversize[:5]),
            files=[{"name": f.name, "size": f.size} for f in oversize],
            max_file_bytes=max_file_bytes,
        )
    total = sum(f.size for f in files)
    if total > max_job_bytes:
        raise TooLarge(
            f"the job declares {total} bytes; a job takes at most {max_job_bytes}",
            max_job_bytes=max_job_bytes,
        )
