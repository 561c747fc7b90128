"""Rich renderings of a job: shared by `demo`, `watch` and `status`."""

from __future__ import annotations

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from darkroom.jobs import FileStatus, Job, JobStatus

_STATUS_STYLE = {
    JobStatus.DONE: "bold green",
    JobStatus.DONE_WITH_ERRORS: "bold yellow",
    JobStatus.FAILED: "bold red",
}
_FILE_STYLE = {FileStatus.DONE: "green", FileStatus.FAILED: "red", FileStatus.PENDING: "dim"}


def job_panel(job: Job | None, job_id: str, state: str | None) -> Panel:
    if job is None:
        return Panel(
            Text(f"job {job_id}: submitted, waiting for the state machine"), title="darkroom"
        )
    head = Table.grid(padding=(0, 2))
    head.add_row("job", job.job_id)
    head.add_row("status", Text(str(job.status), style=_STATUS_STYLE.get(job.status, "bold cyan")))
    head.add_row("state", state or "-")
    head.add_row("worker", job.instance_id or "-")
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


def jobs_table(jobs: list[Job]) -> Table:
    table = Table(show_header=True, header_style="bold")
    for column in ("job", "name", "status", "files", "updated"):
        table.add_column(column)
    for job in jobs:
        table.add_row(
            job.job_id,
            job.name or "",
            Text(str(job.status), style=_STATUS_STYLE.get(job.status, "cyan")),
            f"{job.files_done}/{len(job.files)} ({job.files_failed} failed)",
            job.updated_at or "",
        )
    return table
