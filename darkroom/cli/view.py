"""Rich renderings for the cloud commands: a job's panel, the jobs table, transfer bars."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from darkroom.jobs import FileStatus, Job, JobStatus

console = Console()
err = Console(stderr=True)

_STATUS_STYLE = {
    JobStatus.DONE: "bold green",
    JobStatus.DONE_WITH_ERRORS: "bold yellow",
    JobStatus.FAILED: "bold red",
}
_FILE_STYLE = {FileStatus.DONE: "green", FileStatus.FAILED: "red", FileStatus.PENDING: "dim"}


def job_of(view: dict[str, Any]) -> Job | None:
    """The API's view of a job as the panel draws it; None before the pipeline registered it."""
    if view.get("status") not in JobStatus.__members__:
        return None
    files = view.get("files") or {}
    return Job.model_validate({**view, "files": list(files), "progress": files})


def panel(view: dict[str, Any] | None, job_id: str) -> Panel:
    """A job as `demo`, `watch` and `status` show it, from the API's view (None: not yet)."""
    if view is None:
        return Panel(
            Text(f"job {job_id}: submitted, waiting for the state machine"), title="darkroom"
        )
    job = job_of(view)
    if job is None:
        waiting = (
            "waiting for its files" if view["status"] == "CREATED" else "waiting for the pipeline"
        )
        return Panel(Text(f"job {job_id}: {view['status']}, {waiting}"), title="darkroom")
    return _job_panel(job, view.get("state"))


def _job_panel(job: Job, state: str | None) -> Panel:
    head = Table.grid(padding=(0, 2))
    head.add_row("job", job.job_id)
    head.add_row("status", Text(str(job.status), style=_STATUS_STYLE.get(job.status, "bold cyan")))
    head.add_row("state", state or "-")
    head.add_row("instance", job.instance_id or "-")
    head.add_row(
        "files", f"{job.files_done} done, {job.files_failed} failed, {len(job.files)} total"
    )
    if job.error:
        head.add_row("error", Text(f"{job.error}: {job.cause}", style="red"))
    files = Table(show_header=True, header_style="bold", expand=True)
    files.add_column("file")
    files.add_column("status")
    files.add_column("renditions / error", overflow="fold")
    for name in job.files:
        progress = job.progress.get(name)
        status = progress.status if progress else FileStatus.PENDING
        detail = (
            ", ".join(sorted(progress.outputs))
            if progress and progress.outputs
            else (progress.error or "")
            if progress
            else ""
        )
        files.add_row(name, Text(str(status), style=_FILE_STYLE[status]), detail)
    return Panel(Group(head, files), title=f"darkroom job {job.job_id}")


def jobs_table(views: list[dict[str, Any]]) -> Table:
    """The recent jobs, from the API's list."""
    table = Table(show_header=True, header_style="bold")
    for column in ("job", "name", "status", "files", "created"):
        table.add_column(column)
    for view in views:
        table.add_row(
            view["job_id"],
            view.get("name") or "",
            view["status"],
            f"{view['files_done']}/{view['files_total']} ({view['files_failed']} failed)",
            view.get("created_at") or "",
        )
    return table


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
