"""`darkroom upload | status | watch | reprocess | delete`: a studio's jobs, through the
API."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from darkroom.cli.connection import api_call, studio
from darkroom.cli.develop_cmd import load_recipe
from darkroom.cli.view import console, err, jobs_table, panel, transfer_bars

if TYPE_CHECKING:
    from darkroom.cli.studio_client import StudioClient


def read_recipe(path: Path | None) -> dict[str, Any] | None:
    return None if path is None else load_recipe(path).model_dump(mode="json")


def follow(
    client: StudioClient, job_id: str, *, timeout: float, since: str | None = None
) -> dict[str, Any]:
    """Draw the job live until it is finished (under an execution other than `since`)."""
    from rich.live import Live

    with Live(panel(None, job_id), console=console, refresh_per_second=4) as live:
        job = api_call(
            lambda: client.wait(
                job_id,
                timeout=timeout,
                since_execution=since,
                on_update=lambda view: live.update(panel(view, job_id)),
            )
        )
        live.update(panel(job, job_id))
    return job


def exit_code(job: dict[str, Any]) -> int:
    return {"DONE": 0, "DONE_WITH_ERRORS": 3}.get(job["status"], 1)


def upload(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="A folder of RAW files.")],
    job_id: Annotated[
        str | None,
        typer.Option(help="Job id (default: generated); an unsubmitted job's id resumes it."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="A name for the shoot.")] = None,
    recipe: Annotated[Path | None, typer.Option(help="Recipe JSON file.")] = None,
    recursive: Annotated[
        bool,
        typer.Option(
            "--recursive", "-r", help="Take the RAW files in subfolders too (names must differ)."
        ),
    ] = False,
    client_name: Annotated[str | None, typer.Option(help="Who the shoot is for.")] = None,
    client_email: Annotated[
        str | None, typer.Option(help="Where automatic delivery emails the share link.")
    ] = None,
    deliver: Annotated[
        str,
        typer.Option(
            help="auto: email the client a share link when the job first finishes; manual: "
            "`darkroom share` by hand."
        ),
    ] = "manual",
    notify_client_on_reprocess: Annotated[
        bool,
        typer.Option(help="With auto: email the client again when a reprocess updates the link."),
    ] = False,
) -> None:
    """Upload a folder of RAW files through presigned URLs and submit it; prints the job id.

    Interrupted, the same command with --job-id JOB resumes: only the files not yet
    uploaded are sent."""
    from darkroom.cli.studio_client import SameName, shoot_files

    if not directory.is_dir():
        why = "is a file" if directory.exists() else "no such folder"
        err.print(
            f"{directory}: {why}; upload takes a folder of RAW files "
            "(`darkroom develop FILE --out DIR` tries one file on this machine)",
            style="red",
            markup=False,
        )
        raise typer.Exit(2)
    try:
        shoot = shoot_files(directory, recursive=recursive)
    except SameName as exc:
        err.print(str(exc), style="red", markup=False)
        raise typer.Exit(2) from exc
    except OSError as exc:
        err.print(f"{directory}: cannot read ({exc.strerror})", style="red", markup=False)
        raise typer.Exit(1) from exc
    files = shoot.files
    if shoot.skipped:
        shown = ", ".join(f"{entry} ({why})" for entry, why in shoot.skipped[:10])
        more = f", and {len(shoot.skipped) - 10} more" if len(shoot.skipped) > 10 else ""
        err.print(f"{directory}: skipping {shown}{more}", markup=False)
    if not files:
        err.print(f"{directory}: no RAW files found", style="red", markup=False)
        raise typer.Exit(2)
    if deliver not in ("auto", "manual"):
        err.print(f"--deliver {deliver}: use auto or manual", style="red", markup=False)
        raise typer.Exit(2)
    if deliver == "auto" and not client_email:
        err.print("--deliver auto needs --client-email: whom to send the link to", style="red")
        raise typer.Exit(2)
    delivery: dict[str, Any] = {}
    if client_email or client_name:
        delivery["client"] = {"email": client_email, "name": client_name}
        delivery["client"] = {k: v for k, v in delivery["client"].items() if v}
    if deliver == "auto":
        delivery["deliver"] = "auto"
        delivery["notify_client_on_reprocess"] = notify_client_on_reprocess
    client = studio(ctx)
    again = f"darkroom upload {directory}{' --recursive' if recursive else ''}"
    checked = read_recipe(recipe)

    def started(new_id: str, skipped: list[str]) -> None:
        if skipped:
            shown = ", ".join(sorted(skipped)[:10]) + (", ..." if len(skipped) > 10 else "")
            err.print(
                f"job {new_id}: resuming; {len(skipped)} of {len(files)} files were already "
                f"uploaded and are skipped ({shown})",
                markup=False,
            )
        else:
            err.print(
                f"job {new_id}: uploading {len(files)} files (if interrupted, resume with "
                f"`{again} --job-id {new_id}`)",
                markup=False,
            )

    with transfer_bars("uploading") as bars:
        new_id = api_call(
            lambda: client.upload(
                files,
                job_id=job_id,
                name=name,
                recipe=checked,
                transfer=bars,
                on_job=started,
                delivery=delivery,
            )
        )
    print(new_id)


def status(
    ctx: typer.Context,
    job_id: Annotated[str | None, typer.Argument()] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    limit: Annotated[int, typer.Option(help="Recent jobs to list.")] = 20,
    every_file: Annotated[
        bool, typer.Option("--all", help="Every file of the job, not only the first page.")
    ] = False,
) -> None:
    """A job's status and per-file progress (its first files; --all for every one), or
    the recent jobs."""
    client = studio(ctx)
    if job_id is None:
        recent = api_call(lambda: client.jobs(limit))
        if as_json:
            print(json.dumps(recent, indent=2))
        else:
            console.print(jobs_table(recent))
        return
    view = api_call(lambda: client.job(job_id, every_file=every_file))
    if as_json:
        print(json.dumps(view, indent=2))
    else:
        console.print(panel(view, job_id))


def watch(
    ctx: typer.Context,
    job_id: str,
    timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 3600,
) -> None:
    """Follow a job live until it finishes (exit 0 DONE, 3 DONE_WITH_ERRORS, 1 FAILED)."""
    client = studio(ctx)
    # A job that does not exist never finishes: said now, not after the whole timeout.
    if api_call(lambda: client.find(job_id)) is None:
        err.print(
            f"job {job_id} not found; `darkroom status` lists the recent jobs",
            style="red",
            markup=False,
        )
        raise typer.Exit(1)
    raise typer.Exit(exit_code(follow(client, job_id, timeout=timeout)))


def reprocess(
    ctx: typer.Context,
    job_id: str,
    recipe: Annotated[Path | None, typer.Option(help="Recipe JSON for this run.")] = None,
    wait: Annotated[bool, typer.Option(help="Follow the new execution.")] = False,
    files: Annotated[
        list[str] | None,
        typer.Option(
            "--files",
            metavar="favourites|NAME",
            help="Develop only this file (repeat for more; `-` reads names from stdin), "
            "or `favourites`; the others keep what they deliver.",
        ),
    ] = None,
) -> None:
    """Start a new execution for a finished job (refused while one runs)."""
    client = studio(ctx)
    checked = read_recipe(recipe)
    chosen = chosen_files(files)
    previous = api_call(lambda: client.job(job_id)).get("execution_arn")
    arn = api_call(lambda: client.reprocess(job_id, checked, chosen))
    print(arn)
    if wait:
        raise typer.Exit(exit_code(follow(client, job_id, timeout=3600, since=previous)))


def chosen_files(values: list[str] | None) -> str | list[str] | None:
    """--files as the API takes it: "favourites", or the names, one an option; `-` reads
    names from stdin, one a line (as `darkroom favourites` prints them). Never split on
    commas: a file name may hold one."""
    if not values:
        return None
    if values == ["favourites"]:
        return "favourites"
    names: list[str] = []
    for value in values:
        if value == "-":
            names.extend(line.strip() for line in sys.stdin if line.strip())
        else:
            names.append(value)
    if "favourites" in names:
        err.print("--files: favourites stands alone, not beside file names", style="red")
        raise typer.Exit(2)
    return names


def can_ask() -> bool:
    """Whether someone is at the terminal to answer a question."""
    return sys.stdin.isatty()


def delete(
    ctx: typer.Context,
    job_id: str,
    yes: Annotated[
        bool, typer.Option("--yes", help="Erase without asking (required when not a terminal).")
    ] = False,
) -> None:
    """Erase a job for good: every version of its originals, its renditions, its shares
    and its records (refused while it runs)."""
    if not yes:
        if not can_ask():
            err.print(f"refusing to erase job {job_id} without --yes", style="red", markup=False)
            raise typer.Exit(2)
        if not typer.confirm(
            f"Erase job {job_id}: its originals (every version), renditions and share "
            "links, for good?"
        ):
            err.print("nothing erased")
            raise typer.Exit(1)
    client = studio(ctx)
    erased = api_call(lambda: client.delete(job_id))
    console.print(
        f"job {job_id} erased: {erased['object_versions']} object versions, "
        f"{erased['records']} records, {erased['shares']} share links",
        markup=False,
    )
