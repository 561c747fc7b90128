"""`darkroom develop FILE... --out DIR [--recipe FILE]`: try a recipe locally, no cloud.

The very code the worker runs (develop_file, in the same process pool when there are
several files), writing DIR/<rendition>/<stem>.<ext>. Exits 0 when every file developed,
1 when any failed (each named with its reason), 2 when the recipe itself is unusable.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from darkroom.formats import files_in, is_raw, not_raw_reason

if TYPE_CHECKING:
    from darkroom.recipes import Recipe

# The recipe's models (pydantic) and the developing code (numpy, LibRaw, Pillow) are
# imported when the command runs, not when `darkroom --help` builds the help.

console = Console()
err = Console(stderr=True)


def load_recipe(path: Path | None) -> Recipe:
    """The recipe in `path` (JSON), or the default; exits 2 naming the bad field."""
    from darkroom.recipes import RecipeError, parse_recipe

    if path is None:
        return parse_recipe(None)
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        err.print(f"recipe {path}: cannot read ({exc.strerror})", style="red", markup=False)
        raise typer.Exit(2) from exc
    except ValueError as exc:
        err.print(f"recipe {path}: not valid JSON ({exc})", style="red", markup=False)
        raise typer.Exit(2) from exc
    try:
        return parse_recipe(data)
    except RecipeError as exc:
        err.print(f"recipe {path}: {exc}", style="red", markup=False)
        raise typer.Exit(2) from exc


def check_out(out: Path) -> None:
    """--out must be a folder (or not exist yet); exits 2 saying so."""
    if out.exists() and not out.is_dir():
        err.print(
            f"--out {out}: is a file; give a folder for the output (it is made if missing)",
            style="red",
            markup=False,
        )
        raise typer.Exit(2)


def check_given(paths: list[Path]) -> list[Path]:
    """The paths given, each there; exits 2 naming those that are not."""
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        err.print(f"{', '.join(missing)}: no such file or folder", style="red", markup=False)
        raise typer.Exit(2)
    return paths


def nothing_in(given: list[Path], what: str, accept: Callable[[str], bool]) -> str:
    """Why no file was taken from what was given: what the folders held instead."""
    folders = [p for p in given if p.is_dir()]
    if not folders:
        return f"no {what} given"
    others = [e for f in folders for e in f.iterdir() if not e.name.startswith(".")]
    subfolders = sum(1 for e in others if e.is_dir())
    files = len(others) - subfolders
    held = []
    if files:
        held.append(f"{files} other file{'s' if files > 1 else ''}")
    if subfolders:
        held.append(f"{subfolders} subfolder{'s' if subfolders > 1 else ''}, not looked into")
    names = ", ".join(str(f) for f in folders)
    return f"{names}: no {what} in {'it' if len(folders) == 1 else 'them'}" + (
        f" ({', '.join(held)}); give the files, or the folder that holds them" if held else ""
    )


def develop(
    files: Annotated[
        list[Path], typer.Argument(help="RAW files, or folders (their RAW files), to develop.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Where the renditions go.")],
    recipe: Annotated[
        Path | None, typer.Option("--recipe", help="Recipe JSON (default: the default recipe).")
    ] = None,
    watermark: Annotated[
        Path | None,
        typer.Option(
            "--watermark",
            metavar="PNG",
            help="The PNG of the studio asset the recipe's watermark names.",
        ),
    ] = None,
) -> None:
    """Develop RAW files on this machine with a recipe, exactly as a job would (an XMP
    sidecar beside a RAW, Lightroom's or darktable's, is honoured as a job honours it)."""
    from darkroom.imaging.develop import DevelopError, DevelopResult, develop_file
    from darkroom.imaging.develop_processes import DevelopProcesses
    from darkroom.sidecars import Sidecar

    check_out(out)
    given = check_given(files)
    chosen = load_recipe(recipe)
    mark = _watermark(chosen, watermark)
    files = files_in(given, is_raw)
    if not files:
        err.print(nothing_in(given, "camera RAW files", is_raw), style="red", markup=False)
        raise typer.Exit(2)
    started = time.perf_counter()
    failures: list[tuple[str, str, str]] = []
    outcomes: dict[Path, DevelopResult | DevelopError] = {}
    for path in files:
        # Only what a job could hold: the API refuses any other file name.
        reason = not_raw_reason(path.name)
        if reason:
            outcomes[path] = DevelopError("unsupported_format", path.name, reason)
        elif not path.is_file():
            # LibRaw would call a folder or a device "truncated RAW data".
            outcomes[path] = DevelopError("not_a_file", path.name, "not a file")
    sidecars: dict[Path, Sidecar] = {}
    skipped: dict[Path, str] = {}
    for path, name in _sidecars([p for p in files if p not in outcomes]).items():
        found = _sidecar(path, name)
        if isinstance(found, DevelopError):
            outcomes[path] = found
        elif isinstance(found, str):
            skipped[path] = found
        else:
            sidecars[path] = found
    wanted = [path for path in files if path not in outcomes and path not in skipped]
    if len(wanted) == 1:
        try:
            outcomes[wanted[0]] = develop_file(
                wanted[0], out, chosen, sidecar=sidecars.get(wanted[0]), watermark=mark
            )
        except DevelopError as exc:
            outcomes[wanted[0]] = exc
    elif wanted:
        with DevelopProcesses() as pool:
            futures = [
                (path, pool.submit(path, out, chosen, sidecars.get(path), watermark=mark))
                for path in wanted
            ]
            for path, future in futures:
                try:
                    outcomes[path] = future.result()
                except DevelopError as exc:
                    outcomes[path] = exc
    for path, why in skipped.items():
        console.print(f"skipped {path.name}: {why}", markup=False)
    results = [(path, outcomes[path]) for path in files if path not in skipped]
    for path, outcome in results:
        if isinstance(outcome, DevelopError):
            failures.append((path.name, outcome.code, outcome.reason))
            err.print(f"[red]failed[/red] {escape(f'{path}: {outcome.reason} ({outcome.code})')}")
            continue
        sizes = ", ".join(f"{r.rendition} {r.width}x{r.height}" for r in outcome.renditions)
        seconds = outcome.decode_seconds + outcome.render_seconds
        console.print(f"developed {path.name} in {seconds:.2f}s: {sizes}", markup=False)
    done = len(files) - len(failures) - len(skipped)
    rejected = f" ({len(skipped)} skipped: rejected in their sidecar)" if skipped else ""
    console.print(
        f"{done} of {len(files)} files developed into {out.resolve()}{rejected} "
        f"in {time.perf_counter() - started:.1f}s",
        markup=False,
    )
    if failures:
        err.print(
            f"[red]{len(failures)} failed:[/red] "
            + escape("; ".join(f"{name} ({code}: {reason})" for name, code, reason in failures))
        )
        raise typer.Exit(1)


def _watermark(recipe: Recipe, path: Path | None) -> Path | None:
    """The PNG for the recipe's watermark, checked before any file is developed; exits 2
    when the two do not go together or the PNG cannot be a watermark."""
    from darkroom.imaging.watermark import WatermarkError, check_asset

    if recipe.watermark is None:
        if path is not None:
            err.print(
                '--watermark: the recipe has no watermark; add "watermark": {"asset": NAME} '
                "to it (and its position, size, opacity if not the defaults)",
                markup=False,
            )
            raise typer.Exit(2)
        return None
    asset = recipe.watermark.asset
    if path is None:
        err.print(
            f"the recipe's watermark names the studio asset {asset!r}: give its PNG with "
            "--watermark FILE",
            markup=False,
        )
        raise typer.Exit(2)
    try:
        check_asset(path.read_bytes()).close()
    except (OSError, WatermarkError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else str(exc)
        err.print(f"--watermark {path}: {why}", markup=False)
        raise typer.Exit(2) from exc
    return path.resolve()


def _sidecars(paths: list[Path]) -> dict[Path, str]:
    """Each RAW's sidecar file name, its folder listed once (not once per RAW: a shoot
    folder holds thousands)."""
    from darkroom.sidecars import pair

    found: dict[Path, str] = {}
    for folder in {p.parent for p in paths}:
        try:
            names = [p.name for p in folder.iterdir() if p.is_file()]
        except OSError:
            continue
        paired, _ = pair(names, is_raw)
        found.update({p: paired[p.name] for p in paths if p.parent == folder and p.name in paired})
    return found


def _sidecar(path: Path, name: str) -> Any:
    """The XMP sidecar `name` beside `path`, read: a Sidecar; a reason (str) when it
    rejects the file; a DevelopError when it cannot be read."""
    from darkroom.imaging.develop_result import DevelopError
    from darkroom.sidecars import MAX_SIDECAR_BYTES, SidecarError, parse_sidecar

    try:
        data = (path.parent / name).read_bytes()[: MAX_SIDECAR_BYTES + 1]
        sidecar = parse_sidecar(data)
    except (OSError, SidecarError) as exc:
        return DevelopError("sidecar_unreadable", path.name, f"{name}: {exc}")
    if sidecar.skips:
        return f"rejected in {name} ({sidecar.source})"
    return sidecar
