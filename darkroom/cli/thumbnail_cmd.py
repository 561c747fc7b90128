"""`darkroom thumbnail FILE... --out DIR`, and the thumbnail part of `darkroom demo`.

The command runs the very code the thumbnail Lambda runs (darkroom.imaging.thumbnailer),
locally and with no cloud. The demo helpers drop a few images into the local cloud's
input bucket and show the thumbnails the Lambda made of them.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from darkroom import names
from darkroom.formats import files_in, is_image

if TYPE_CHECKING:
    from darkroom.imaging.thumbnailer import ThumbnailSet

# Pillow, the thumbnailer and the settings' models are imported when a command runs:
# `darkroom --help` builds this command's help from the signature alone.

__all__ = ["demo_images", "drop_demo_images", "show_thumbnails", "thumbnail"]

# ThumbnailSettings' defaults (darkroom.settings), written out so that the help needs no
# pydantic; a unit test holds them equal.
DEFAULT_SIZES: tuple[int, ...] = (256, 1024)
DEFAULT_MAX_PIXELS: int = 100_000_000
_DEFAULT_SIZES_TEXT = ",".join(map(str, DEFAULT_SIZES))


def demo_images(dest_dir: Path) -> list[Path]:
    """A few images that each need something done right (darkroom.imaging.fixtures)."""
    from darkroom.imaging.fixtures.images import demo_images as make

    return make(dest_dir)


def _parse_sizes(text: str) -> tuple[int, ...]:
    from darkroom.imaging.thumbnailer import validate_sizes

    try:
        return validate_sizes([int(part) for part in text.split(",") if part.strip()])
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r}: {exc}", param_hint="--sizes") from exc


def _save(result: ThumbnailSet, dest: Path, sizes: Sequence[int]) -> list[Path]:
    """OUT/<file name>/<size>.<ext>, the local mirror of the output bucket's layout."""
    from darkroom.imaging.atomic import write_atomic
    from darkroom.imaging.thumbnailer import OUTPUT_FORMATS

    written = []
    for thumbnail in result.thumbnails:
        path = dest / f"{thumbnail.size}.{thumbnail.format.extension}"
        write_atomic(path, thumbnail.data)
        written.append(path)
    # Like the Lambda: a rerun after the source changed format leaves nothing stale.
    for size in sizes:
        for out in OUTPUT_FORMATS:
            stale = dest / f"{size}.{out.extension}"
            if stale not in written:
                stale.unlink(missing_ok=True)
    return written


def thumbnail(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Images, or folders (their image and RAW files), to thumbnail.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Where thumbnails go: OUT/<file name>/<size>.<ext>."),
    ],
    sizes: Annotated[
        str, typer.Option("--sizes", help="Long edges in pixels, comma-separated.")
    ] = _DEFAULT_SIZES_TEXT,
    max_pixels: Annotated[
        int,
        typer.Option(
            "--max-pixels", min=1, help="Refuse images that need more pixels decoded than this."
        ),
    ] = DEFAULT_MAX_PIXELS,
) -> None:
    """Thumbnail images locally with the thumbnail Lambda's own code (no cloud needed).

    Exits 1 if any file failed, after printing the reason for each.
    """
    from darkroom.cli.develop_cmd import check_given, check_out, nothing_in
    from darkroom.imaging.thumbnailer import ThumbnailError, make_thumbnails

    console, err = Console(), Console(stderr=True)
    wanted = _parse_sizes(sizes)
    check_out(out)
    given = check_given(files)
    failed = 0
    done = 0
    for path in files_in(given, is_image):
        started = time.perf_counter()
        try:
            result = make_thumbnails(path, wanted, max_pixels=max_pixels, name=path.name)
        except ThumbnailError as error:
            failed += 1
            err.print(
                f"[red]✗ {escape(str(path))}: {error.code.value}[/red] ({escape(str(error))})",
                highlight=False,
            )
            continue
        try:
            written = _save(result, out / path.name, wanted)
        except OSError as exc:
            failed += 1
            err.print(f"✗ {path}: cannot write ({exc})", style="red", markup=False)
            continue
        done += 1
        made = ", ".join(
            f"{p.name} {t.width}x{t.height}"
            for p, t in zip(written, result.thumbnails, strict=True)
        )
        console.print(
            f"[green]✓[/green] {escape(f'{path}: {made}')} [dim]({result.source_format} "
            f"{result.source_width}x{result.source_height}, "
            f"{time.perf_counter() - started:.2f}s)[/dim]",
            highlight=False,
        )
        for note in result.notes:
            console.print(f"  [yellow]note:[/yellow] {escape(note)}", highlight=False)
    if done + failed == 0:
        err.print(nothing_in(given, "images", is_image), style="red", markup=False)
        raise typer.Exit(2)
    console.print(f"{done} thumbnailed into {out}/<file name>/, {failed} failed", markup=False)
    if failed:
        raise typer.Exit(1)


# -- the demo ---------------------------------------------------------------------------
def drop_demo_images(
    s3: Any, work_dir: Path, *, bucket: str = names.INPUT_BUCKET, prefix: str = "demo/"
) -> list[str]:
    """Write the demo images to `work_dir`, put them in the input bucket; their keys."""
    from PIL import Image

    uploaded = []
    for path in demo_images(work_dir):
        key = prefix + path.name
        content_type = Image.MIME.get(Image.registered_extensions().get(path.suffix.lower(), ""))
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=path.read_bytes(),
            ContentType=content_type or "application/octet-stream",
        )
        uploaded.append(key)
    return uploaded


def _listing(s3: Any, bucket: str, source_key: str) -> list[dict[str, Any]]:
    from darkroom import keys

    prefix = keys.thumbnail_key(source_key, 0, "x").rsplit("/", 1)[0] + "/"
    response = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return list(response.get("Contents", []))


def show_thumbnails(
    s3: Any,
    source_keys: Sequence[str],
    *,
    sizes: Sequence[int] = DEFAULT_SIZES,
    bucket: str = names.OUTPUT_BUCKET,
    timeout: float = 60.0,
    download_to: Path | None = None,
    console: Console | None = None,
) -> bool:
    """Wait for the thumbnails of `source_keys`, print them as a table; True if all came.

    With `download_to`, each thumbnail is also saved as download_to/<source key>/<file>.
    """
    from PIL import Image

    from darkroom.imaging.atomic import write_atomic

    console = console or Console()
    deadline = time.monotonic() + timeout
    found: dict[str, list[dict[str, Any]]] = {}
    pending = list(source_keys)
    with console.status("waiting for the thumbnail function..."):
        while pending and time.monotonic() < deadline:
            for key in list(pending):
                listing = _listing(s3, bucket, key)
                if len(listing) >= len(set(sizes)):
                    found[key] = listing
                    pending.remove(key)
            if pending:
                time.sleep(0.25)

    table = Table(title=f"thumbnails in s3://{bucket}", show_header=True, header_style="bold")
    for column in ("source", "thumbnail", "pixels", "bytes"):
        table.add_column(column, justify="right" if column == "bytes" else "left")
    for key in source_keys:
        if key not in found:
            table.add_row(escape(key), "[red]none yet[/red]", "", "")
            continue
        for item in sorted(found[key], key=lambda i: i["Size"]):
            data = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            with Image.open(io.BytesIO(data)) as image:
                pixels = f"{image.width}x{image.height} {image.format} {image.mode}"
            if download_to is not None:
                write_atomic(download_to / key / item["Key"].rsplit("/", 1)[1], data)
            table.add_row(escape(key), escape(item["Key"]), pixels, f"{item['Size']:,}")
    console.print(table)
    if download_to is not None and found:
        console.print(f"thumbnails saved under [bold]{escape(str(download_to.resolve()))}[/bold]")
    return not pending
