"""`darkroom develop FILE... --out DIR [--recipe FILE]`: try a recipe locally, no cloud.

The very code the worker runs (develop_file, in the same process pool when there are
several files), writing DIR/<rendition>/<stem>.<ext>. Exits 0 when every file developed,
1 when any failed (each named with its reason), 2 when the recipe itself is unusable.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

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
        err.print(f"[red]recipe {path}: cannot read ({exc.strerror})[/red]")
        raise typer.Exit(2) from exc
    except ValueError as exc:
        err.print(f"[red]recipe {path}: not valid JSON ({exc})[/red]")
        raise typer.Exit(2) from exc
    try:
        return parse_recipe(data)
    except RecipeError as exc:
        err.print(f"[red]recipe {path}: {exc}[/red]")
        raise typer.Exit(2) from exc


def develop(
    files: Annotated[
        list[Path], typer.Argument(help="RAW files, or folders (their RAW files), to develop.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Where the renditions go.")],
    recipe: Annotated[
        Path | None, typer.Option("--recipe", help="Recipe JSON (default: the default recipe).")
    ] = None,
) -> None:
    """Develop RAW files on this machine with a recipe, exactly as a job would."""
    from darkroom.imaging.develop import DevelopError, DevelopResult, develop_file
    from darkroom.imaging.develop_processes import DevelopProcesses

    chosen = load_recipe(recipe)
    files = files_in(files, is_raw)
    if not files:
        err.print("[red]no RAW files given[/red]")
        raise typer.Exit(2)
    started = time.perf_counter()
    failures: list[tuple[str, str, str]] = []
    outcomes: dict[Path, DevelopResult | DevelopError] = {}
    for path in files:
        # Only what a job could hold: the API refuses any other file name.
        reason = not_raw_reason(path.name)
        if reason:
            outcomes[path] = DevelopError("unsupported_format", path.name, reason)
    wanted = [path for path in files if path not in outcomes]
    if len(wanted) == 1:
        try:
            outcomes[wanted[0]] = develop_file(wanted[0], out, chosen)
        except DevelopError as exc:
            outcomes[wanted[0]] = exc
    elif wanted:
        with DevelopProcesses() as pool:
            futures = [(path, pool.submit(path, out, chosen)) for path in wanted]
            for path, future in futures:
                try:
                    outcomes[path] = future.result()
                except DevelopError as exc:
                    outcomes[path] = exc
    results = [(path, outcomes[path]) for path in files]
    for path, outcome in results:
        if isinstance(outcome, DevelopError):
            failures.append((path.name, outcome.code, outcome.reason))
            err.print(f"[red]failed[/red] {path}: {outcome.reason} ({outcome.code})")
            continue
        sizes = ", ".join(f"{r.rendition} {r.width}x{r.height}" for r in outcome.renditions)
        seconds = outcome.decode_seconds + outcome.render_seconds
        console.print(f"developed {path.name} in {seconds:.2f}s: {sizes}")
    done = len(files) - len(failures)
    console.print(
        f"{done} of {len(files)} files developed into {out.resolve()} "
        f"in {time.perf_counter() - started:.1f}s"
    )
    if failures:
        err.print(
            f"[red]{len(failures)} failed:[/red] "
            + "; ".join(f"{name} ({code}: {reason})" for name, code, reason in failures)
        )
        raise typer.Exit(1)
