"""`darkroom trace`: where each delivered rendition comes from, and whether its bytes are
still the ones its run recorded."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group
from rich.filesize import decimal
from rich.table import Table
from rich.text import Text

from darkroom.cli.connection import api_call, studio
from darkroom.cli.view import console, recipe_summary

if TYPE_CHECKING:
    from darkroom.lineage import FileLineage, RenditionCheck, Trace

# Exit statuses: a rendition tampered with or gone; else one that could not be read.
TAMPERED_EXIT = 1
UNVERIFIED_EXIT = 4
NOT_RECORDED = "not recorded"

_VERDICT_STYLE = {
    "ok": "green",
    "tampered": "bold red",
    "missing": "bold red",
    "unverified": "yellow",
    "not recorded": "dim",
}


def trace(
    ctx: typer.Context,
    job_id: str,
    file: Annotated[str | None, typer.Argument(help="One file of the job.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Everything, machine-readable.")] = False,
    originals: Annotated[
        bool,
        typer.Option(
            "--originals",
            help="Also download and hash each delivered file's RAW original (as large "
            "as the shoot).",
        ),
    ] = False,
) -> None:
    """A job's lineage: each file's original (S3 version, SHA-256), recipe and software,
    then each delivered rendition, its bytes hashed and checked against its run's
    manifest (with --originals, each RAW original too). Exits 1 when anything checked
    was tampered with or is missing, 4 when something could not be read whole (run it
    again)."""
    client = studio(ctx)
    traced = api_call(lambda: client.trace(job_id, file, originals=originals))
    if as_json:
        print(json.dumps(traced.as_json(), indent=2, sort_keys=True))
    else:
        console.print(render(traced, detailed=file is not None))
    raise typer.Exit(exit_status(traced))


def exit_status(traced: Trace) -> int:
    if traced.failed:
        return TAMPERED_EXIT
    return UNVERIFIED_EXIT if traced.unverified else 0


def render(traced: Trace, *, detailed: bool = False) -> Group:
    """The lineage as tables: the runs, then a row per rendition (one file: every digest
    whole, and where its time went)."""
    parts: list[Any] = [Text(f"job {traced.job_id}: {traced.status}", style="bold")]
    for run, head in traced.runs.items():
        parts.append(_run_line(run, head))
    if detailed:
        for lineage in traced.files:
            parts.append(_file_grid(lineage))
            if lineage.renditions:
                parts.append(_renditions_only(lineage))
    else:
        parts.append(_renditions_table(traced.files))
    counts = ", ".join(f"{n} {verdict}" for verdict, n in traced.counts.items() if n)
    originals = sum(1 for f in traced.files if f.original is not None)
    checked = sum(traced.counts.values()) - originals
    what = _count(checked, "rendition")
    if originals:
        what += f" and {_count(originals, 'original')}"
    parts.append(Text(f"{what}: {counts or 'none delivered'}"))
    return Group(*parts)


def _run_line(run: str, head: dict[str, Any]) -> Text:
    if "problem" in head:
        return Text(f"run {run}: {head['problem']}", style="yellow")
    resolved = head.get("recipe_resolved")
    recipe = recipe_summary(resolved) if resolved else f"{NOT_RECORDED} (resolved)"
    digest = _short(head.get("recipe_sha256"))
    return Text(
        f"run {run}, finished {head.get('finished_at') or '-'}: recipe {digest}: {recipe}",
        overflow="fold",
    )


def _file_grid(lineage: FileLineage) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_row("file", Text(lineage.name, style="bold"))
    grid.add_row("status", lineage.status)
    grid.add_row("delivered run", lineage.run or "nothing delivered")
    if lineage.run is None:
        return grid
    grid.add_row("original version", lineage.original_version or _version_note(lineage))
    grid.add_row("original sha256", lineage.original_sha256 or NOT_RECORDED)
    if lineage.sidecar:
        grid.add_row("sidecar", f"{lineage.sidecar} (version {lineage.sidecar_version or '-'})")
    grid.add_row("recipe sha256", _recipe_text(lineage, whole=True))
    grid.add_row("software", _software(lineage.software))
    timings = ", ".join(f"{step} {seconds:.3f} s" for step, seconds in lineage.timings.items())
    grid.add_row("timings", timings or NOT_RECORDED)
    if lineage.problem:
        grid.add_row("problem", Text(lineage.problem, style="yellow"))
    return grid


def _renditions_table(files: list[FileLineage]) -> Table:
    """A row per rendition, its file's lineage on the first (digests shortened)."""
    table = Table(show_header=True, header_style="bold")
    for column in ("file", "original", "recipe", "software"):
        table.add_column(column, overflow="fold")
    _rendition_columns(table)
    for lineage in files:
        head = [lineage.name, _original(lineage), _recipe_text(lineage, whole=False), ""]
        if lineage.run is not None:
            head[3] = _software(lineage.software)
        if not lineage.renditions:
            table.add_row(*head, "-", "", "", "", Text(_undelivered(lineage), style="dim"))
        for n, check in enumerate(_checks(lineage)):
            row = head if n == 0 else [""] * len(head)
            table.add_row(*row, *_rendition_row(check, whole=False))
    return table


def _renditions_only(lineage: FileLineage) -> Table:
    """One file's renditions, every digest whole (its lineage is in the grid above)."""
    table = Table(show_header=True, header_style="bold")
    _rendition_columns(table)
    for check in _checks(lineage):
        table.add_row(*_rendition_row(check, whole=True))
    return table


def _checks(lineage: FileLineage) -> list[RenditionCheck]:
    """The original first (when it was checked), then the renditions made from it."""
    return [*([lineage.original] if lineage.original else []), *lineage.renditions]


def _rendition_columns(table: Table) -> None:
    table.add_column("rendition", no_wrap=True)
    table.add_column("sha256", overflow="fold")
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("dimensions", no_wrap=True)
    table.add_column("verdict", overflow="fold")


def _rendition_row(check: RenditionCheck, whole: bool) -> list[Any]:
    from darkroom import lineage

    digest = check.sha256 if whole else _short(check.sha256)
    size = decimal(check.bytes) if check.bytes is not None else NOT_RECORDED
    dims = f"{check.width}x{check.height}" if check.width and check.height else NOT_RECORDED
    if check.rendition == lineage.ORIGINAL:
        dims = ""  # the RAW's: not what the manifest records
    verdict = Text(str(check.verdict), style=_VERDICT_STYLE[str(check.verdict)])
    if check.reason and check.verdict != "ok":
        verdict.append(f": {check.reason}", style="default")
    if whole and check.verdict == "tampered" and check.served_sha256:
        verdict.append(f" (served sha256 {check.served_sha256})", style="default")
    return [check.rendition, digest or NOT_RECORDED, size, dims, verdict]


def _original(lineage: FileLineage) -> str:
    if lineage.run is None:
        return ""
    version = lineage.original_version or _version_note(lineage)
    return f"version {version}\nsha256 {_short(lineage.original_sha256)}"


def _version_note(lineage: FileLineage) -> str:
    # An unversioned bucket has no version id to record; an old manifest none at all.
    return "none (unversioned)" if lineage.original_sha256 else NOT_RECORDED


def _recipe_text(lineage: FileLineage, *, whole: bool) -> str:
    if lineage.run is None:
        return ""
    if not lineage.recipe_sha256:
        return NOT_RECORDED
    digest = lineage.recipe_sha256 if whole else _short(lineage.recipe_sha256)
    return digest + (" (the run's)" if lineage.recipe else " (not the run's resolved recipe)")


def _software(software: dict[str, str]) -> str:
    if not software:
        return NOT_RECORDED
    return ", ".join(f"{name} {version}" for name, version in software.items())


def _undelivered(lineage: FileLineage) -> str:
    return f"nothing delivered ({lineage.status})"


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}" + ("" if n == 1 else "s")


def _short(digest: str | None) -> str:
    return digest[:12] if digest else NOT_RECORDED
