"""Rich renderings for the cloud commands: a job's panel, the jobs table, transfer bars."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.filesize import decimal
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from darkroom.api.models import JobView

# The API's models (pydantic) and rich's progress bars are imported when first drawn:
# every command imports this module, and `darkroom --help` should not pay for them.
console = Console()
err = Console(stderr=True)

_STATUS_STYLE = {"DONE": "bold green", "DONE_WITH_ERRORS": "bold yellow", "FAILED": "bold red"}
_FILE_STYLE = {"DONE": "green", "FAILED": "red", "PENDING": "dim"}


def panel(view: dict[str, Any] | None, job_id: str) -> Panel:
    """A job as `demo`, `watch` and `status` show it, from the API's view (None: not yet)."""
    if view is None:
        return Panel(
            Text(f"job {job_id}: submitted, waiting for the state machine"), title="darkroom"
        )
    from darkroom.api.models import JobView

    job = JobView.model_validate(view)
    if not job.is_registered:
        waiting = "waiting for its files" if job.status == "CREATED" else "waiting for the pipeline"
        return Panel(Text(f"job {job_id}: {job.status}, {waiting}"), title="darkroom")
    return _job_panel(job)


def _selection(selection: dict[str, Any]) -> str:
    """A run of some files, in words: 'this run develops 2 files (the favourites); the
    others keep what they deliver'."""
    count = int(selection.get("files", 0))
    why = "the clients' favourites" if selection.get("kind") == "favourites" else "named"
    return (
        f"this run develops {count} file{'s' if count != 1 else ''} ({why}); "
        "the others keep what they deliver"
    )


def _job_panel(job: JobView) -> Panel:
    head = Table.grid(padding=(0, 2))
    head.add_row("job", job.job_id)
    head.add_row("status", Text(job.status, style=_STATUS_STYLE.get(job.status, "bold cyan")))
    head.add_row("state", job.state or "-")
    head.add_row("run", f"{job.run_id or '-'} (attempt {job.attempt})")
    if job.selection:
        head.add_row("only", _selection(job.selection))
    if job.recipe:
        head.add_row("recipe", Text(recipe_summary(job.recipe), overflow="fold"))
    head.add_row("instance", job.instance_id or "-")
    head.add_row(
        "files",
        f"{job.files_done} done, {job.files_failed} failed"
        + (f", {job.files_skipped} skipped (rejected)" if job.files_skipped else "")
        + f", {job.files_total} total",
    )
    if job.error:
        head.add_row("error", Text(f"{job.error}: {job.cause}", style="red"))
    if job.client:
        who = [job.client.get("name"), job.client.get("email")]
        shown = " ".join(part for part in who if part) or "-"
        head.add_row("client", Text(f"{shown}, delivery {job.client['deliver']}"))
    for kind, why in sorted((job.notice_errors or {}).items()):
        # "client", "photographer" (emails) or "webhook-<status>"; Text, never markup:
        # an SES error may hold anything.
        what = f"{kind} email" if kind in ("client", "photographer") else kind
        head.add_row("notice", Text(f"{what} failed: {why}", style="yellow", overflow="fold"))
    delivered = job.delivered
    head.add_row(
        "delivered",
        f"{delivered.files_delivered}"
        + ("" if job.selection else f" of {job.files_total}")
        + " files, last from run "
        f"{delivered.run_id} ({delivered.finished_at or '-'})"
        if delivered
        else "nothing yet",
    )
    if delivered and delivered.archives:
        head.add_row(
            "download all",
            ", ".join(
                f"{rendition} ZIP {decimal(a.bytes)} ({a.files} files)"
                for rendition, a in sorted(delivered.archives.items())
            ),
        )
    files = Table(show_header=True, header_style="bold", expand=True)
    files.add_column("file", overflow="fold")
    files.add_column("status")
    files.add_column("renditions / error", overflow="fold")
    files.add_column("delivered", overflow="fold")
    for name, file in (job.files or {}).items():
        detail = ", ".join(sorted(file.outputs)) if file.outputs else (file.error or "")
        if not file.delivered:
            shown = "-"
        elif file.delivered_run == job.run_id:
            shown = "this run"
        else:
            shown = f"run {file.delivered_run}"
        # File names and errors as Text: a "[red]" in them is the user's, not markup.
        files.add_row(
            Text(name),
            Text(file.status, style=_FILE_STYLE.get(file.status, "dim")),
            Text(detail),
            Text(shown),
        )
    if job.files_next_cursor:
        more = job.files_total - len(job.files or {})
        files.add_row(Text(f"... and {more} more (status --all lists every file)", style="dim"))
    return Panel(Group(head, files), title=f"darkroom job {job.job_id}")


def jobs_table(views: list[dict[str, Any]]) -> Table:
    """The recent jobs, from the API's list."""
    from darkroom.api.models import JobView

    table = Table(show_header=True, header_style="bold")
    # A job id is what the other commands take: shown whole whatever the terminal's
    # width (the name folds or shortens instead).
    table.add_column(
        "job", no_wrap=True, min_width=max((len(v["job_id"]) for v in views), default=3)
    )
    table.add_column("name", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("files")
    table.add_column("created", overflow="fold")
    for job in (JobView.model_validate(view) for view in views):
        table.add_row(
            job.job_id,
            Text(job.name or ""),
            job.status,
            f"{job.files_done}/{job.files_total} ({job.files_failed} failed"
            + (f", {job.files_skipped} skipped)" if job.files_skipped else ")"),
            job.created_at or "",
        )
    return table


def recipe_summary(recipe: dict[str, Any]) -> str:
    """A recipe on one line: its renditions, then what differs from a camera's look."""

    def rendition(r: dict[str, Any]) -> str:
        edge = r.get("long_edge")
        size = "full size" if edge == "full" else f"{edge}px"
        return f"{r.get('name')} {size} {r.get('format', '')} q{r.get('quality', '')}".strip()

    parts = [", ".join(rendition(r) for r in recipe.get("renditions") or [])]
    balance = (recipe.get("white_balance") or {}).get("mode")
    exposure = recipe.get("exposure") or {}
    parts.append(f"white balance {balance or '-'}")
    parts.append(
        f"exposure {exposure.get('mode', '-')}"
        + (f" {exposure['compensation_ev']:+g} EV" if exposure.get("compensation_ev") else "")
    )
    for field, label in (
        ("highlights", "highlights"),
        ("colour_space", "colour"),
        ("lens", "lens"),
        ("noise_reduction", "noise reduction"),
    ):
        if field in recipe:
            parts.append(f"{label} {recipe[field]}")
    watermark = recipe.get("watermark")
    if watermark:
        parts.append(f"watermark {watermark.get('asset')}")
    return "; ".join(parts)


class Bars:
    """A studio_client.Transfer drawn as a rich progress bar (bytes, speed, time left)."""

    def __init__(self, progress: Progress, verb: str) -> None:
        self._progress = progress
        self._verb = verb
        self._task: TaskID | None = None
        self._files = 0
        self._done = 0
        self._lock = threading.Lock()

    def begin(self, total_bytes: int, files: int) -> None:
        self._files = files
        self._task = self._progress.add_task(f"{self._verb} 0/{files}", total=total_bytes)

    def advance(self, nbytes: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, nbytes)

    def file_done(self, name: str) -> None:
        with self._lock:
            self._done += 1
            done = self._done
        if self._task is not None:
            self._progress.update(self._task, description=f"{self._verb} {done}/{self._files}")


@contextmanager
def transfer_bars(verb: str) -> Iterator[Bars]:
    """Bars on stderr, so a command's stdout stays what scripts read (a job id, a link)."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )
    with progress:
        yield Bars(progress, verb)


def shares_table(shares: list[dict[str, Any]]) -> Table:
    """A job's share links as `darkroom shares` lists them (the API's ShareView)."""
    table = Table(show_header=True, header_style="bold")
    columns = ("share", "state", "created", "expires", "password", "views", "downloads", "message")
    for column in columns:
        table.add_column(column, justify="right" if column in ("views", "downloads") else "left")
    style = {"active": "green", "expired": "yellow", "revoked": "red"}
    for share in shares:
        message = share.get("message") or ""
        table.add_row(
            share["share_id"],
            Text(share["state"], style=style.get(share["state"], "")),
            share["created_at"],
            share["expires_at"],
            "yes" if share.get("password") else "",
            str(share["views"]),
            str(share["downloads"]),
            # Text, never markup: the photographer typed it.
            Text(message if len(message) <= 40 else message[:39] + "\u2026"),
        )
    return table
