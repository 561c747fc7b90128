"""`darkroom`: run the pipeline locally, or drive a deployed stack."""

from __future__ import annotations

import json
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live

from darkroom.cli.view import job_panel, jobs_table
from darkroom.jobs import Job, JobStatus
from darkroom.studio import Studio, Target, raw_files

app = typer.Typer(no_args_is_help=True, help="darkroom: RAW post-production for studios.")
local_app = typer.Typer(no_args_is_help=True, help="The embedded local cloud.")
app.add_typer(local_app, name="local")
console = Console()
err = Console(stderr=True)

EndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--endpoint-url",
        envvar="DARKROOM_ENDPOINT_URL",
        help="An embedded local cloud's endpoint (from `darkroom local up`).",
    ),
]
ProfileOpt = Annotated[str | None, typer.Option("--profile", help="AWS profile (deployed stack).")]
RegionOpt = Annotated[str | None, typer.Option("--region", help="AWS region.")]
StackOpt = Annotated[str, typer.Option("--stack", help="CloudFormation stack name.")]


def _studio(
    endpoint_url: str | None, profile: str | None, region: str | None, stack: str
) -> Studio:
    if endpoint_url:
        return Studio(Target.local(endpoint_url, region or "us-east-1"))
    return Studio(Target.from_stack(stack, profile, region))


def _read_recipe(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    from darkroom.recipes import RecipeError, parse_recipe

    try:
        data = json.loads(path.read_text())
        return parse_recipe(data).model_dump(mode="json")
    except (OSError, ValueError, RecipeError) as exc:
        err.print(f"[red]recipe {path}: {exc}[/red]")
        raise typer.Exit(2) from exc


def _watch(studio: Studio, job_id: str, *, timeout: float, since: str | None = None) -> Job:
    state: dict[str, str | None] = {"name": None}

    def render(job: Job | None) -> Any:
        if job is not None and job.execution_arn:
            try:
                state["name"] = studio.current_state(job.execution_arn)
            except Exception:
                pass
        return job_panel(job, job_id, state["name"])

    with Live(render(studio.jobs.find(job_id)), console=console, refresh_per_second=4) as live:
        job = studio.wait(
            job_id,
            timeout=timeout,
            since_execution=since,
            on_update=lambda j: live.update(render(j)),
        )
        live.update(render(job))
    return job


def _exit_code(job: Job) -> int:
    return {JobStatus.DONE: 0, JobStatus.DONE_WITH_ERRORS: 3}.get(job.status, 1)


@app.command()
def demo(
    input_dir: Annotated[
        Path | None,
        typer.Option("--input", help="A folder of RAW files (default: a generated shoot)."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Where the renditions go.")] = Path(
        "darkroom-demo"
    ),
    count: Annotated[int, typer.Option(help="Files in the generated shoot.")] = 4,
    port: Annotated[int, typer.Option(help="Local cloud port (0: any free port).")] = 0,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the job.")] = 600,
) -> None:
    """Start the local cloud, submit a shoot, watch it, download the renditions."""
    from darkroom.local.cloud import LocalCloud, LocalCloudConfig

    t0 = time.perf_counter()
    state_dir = Path(tempfile.mkdtemp(prefix="darkroom-local-"))
    try:
        with LocalCloud(LocalCloudConfig(port=port, state_dir=state_dir)) as cloud:
            console.print(
                f"local cloud on [bold]{cloud.endpoint_url}[/bold] (pool: {', '.join(cloud.instance_ids)})"
            )
            if input_dir is None:
                from darkroom.imaging.fixtures import make_demo_shoot

                shoot_dir = state_dir / "shoot"
                files = make_demo_shoot(shoot_dir, count=count)
                console.print(f"made a shoot of {len(files)} DNG files in {shoot_dir}")
            else:
                files = raw_files(input_dir)
                if not files:
                    err.print(f"[red]{input_dir}: no RAW files found[/red]")
                    raise typer.Exit(2)
            studio = Studio(Target.local(cloud.endpoint_url, cloud.config.region))
            submitted = time.perf_counter()
            job_id = studio.upload(files, name="darkroom demo")
            console.print(f"submitted job [bold]{job_id}[/bold]")
            job = _watch(studio, job_id, timeout=timeout)
            finished = time.perf_counter()
            dest = out / job_id
            paths = studio.download(job_id, dest)
            manifest = studio.manifest(job_id)
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
    develop = sum(float(f.get("develop_seconds", 0)) for f in manifest.get("files", []))
    job_seconds = finished - submitted
    console.print(f"\n{len(paths)} renditions in [bold]{dest.resolve()}[/bold]")
    for sub in sorted({p.parent for p in paths}):
        console.print(f"  {sub}/ ({sum(1 for p in paths if p.parent == sub)} files)")
    console.print(
        f"status {job.status}; job {job_seconds:.1f}s (developing {develop:.1f}s, "
        f"orchestration overhead {job_seconds - develop:.1f}s); demo wall time "
        f"{time.perf_counter() - t0:.1f}s"
    )
    raise typer.Exit(0 if job.status == JobStatus.DONE else 1)


@local_app.command("up")
def local_up(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 4599,
    pool_size: Annotated[int, typer.Option(help="Worker pool instances.")] = 1,
    state_dir: Annotated[Path, typer.Option(help="Logs and instance scratch disks.")] = Path(
        ".darkroom/local"
    ),
) -> None:
    """Run the local cloud until interrupted; the first line is JSON with the endpoints."""
    from darkroom.local.cloud import LocalCloud, LocalCloudConfig

    cloud = LocalCloud(
        LocalCloudConfig(port=port, pool_size=pool_size, state_dir=state_dir)
    ).start()
    print(json.dumps(cloud.endpoints()), flush=True)
    console.print(
        f"darkroom local cloud on {cloud.endpoint_url}\n"
        f"  aws --endpoint-url {cloud.endpoint_url} s3 ls\n"
        f"  export DARKROOM_ENDPOINT_URL={cloud.endpoint_url}   # then: darkroom upload DIR\n"
        f"  AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION={cloud.config.region}\n"
        f"logs in {cloud.state_dir / 'logs'}; Ctrl-C stops it"
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        cloud.stop()


@app.command()
def upload(
    directory: Path,
    job_id: Annotated[str | None, typer.Option(help="Job id (default: generated).")] = None,
    name: Annotated[str | None, typer.Option(help="A name for the shoot.")] = None,
    recipe: Annotated[Path | None, typer.Option(help="Recipe JSON file.")] = None,
    endpoint_url: EndpointOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    stack: StackOpt = "darkroom",
) -> None:
    """Upload a folder of RAW files and submit it as a job; prints the job id."""
    files = raw_files(directory)
    if not files:
        err.print(f"[red]{directory}: no RAW files found[/red]")
        raise typer.Exit(2)
    studio = _studio(endpoint_url, profile, region, stack)
    job_id = studio.upload(
        files,
        job_id=job_id,
        name=name,
        recipe=_read_recipe(recipe),
        on_file=lambda p: err.print(f"uploaded {p.name}"),
    )
    print(job_id)


@app.command()
def status(
    job_id: Annotated[str | None, typer.Argument()] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    endpoint_url: EndpointOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    stack: StackOpt = "darkroom",
) -> None:
    """A job's status and per-file progress, or the recent jobs."""
    studio = _studio(endpoint_url, profile, region, stack)
    if job_id is None:
        recent = studio.jobs.recent()
        if as_json:
            print(json.dumps([j.to_summary() for j in recent], indent=2))
        else:
            console.print(jobs_table(recent))
        return
    job = studio.jobs.find(job_id)
    if job is None:
        err.print(f"[red]job {job_id} not found[/red]")
        raise typer.Exit(1)
    if as_json:
        print(json.dumps(job.to_summary(), indent=2))
    else:
        state = studio.current_state(job.execution_arn) if job.execution_arn else None
        console.print(job_panel(job, job_id, state))


@app.command()
def watch(
    job_id: str,
    timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 3600,
    endpoint_url: EndpointOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    stack: StackOpt = "darkroom",
) -> None:
    """Follow a job live until it finishes (exit 0 DONE, 3 DONE_WITH_ERRORS, 1 FAILED)."""
    job = _watch(_studio(endpoint_url, profile, region, stack), job_id, timeout=timeout)
    raise typer.Exit(_exit_code(job))


@app.command()
def reprocess(
    job_id: str,
    recipe: Annotated[Path | None, typer.Option(help="Recipe JSON for this run.")] = None,
    wait: Annotated[bool, typer.Option(help="Follow the new execution.")] = False,
    endpoint_url: EndpointOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    stack: StackOpt = "darkroom",
) -> None:
    """Start a new execution for a finished job, as an operator would in the console."""
    studio = _studio(endpoint_url, profile, region, stack)
    previous = studio.jobs.get(job_id).execution_arn
    arn = studio.reprocess(job_id, _read_recipe(recipe))
    print(arn)
    if wait:
        job = _watch(studio, job_id, timeout=3600, since=previous)
        raise typer.Exit(_exit_code(job))


@app.command()
def download(
    job_id: str,
    directory: Path,
    endpoint_url: EndpointOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    stack: StackOpt = "darkroom",
) -> None:
    """Download a finished job's renditions into DIRECTORY/<rendition>/."""
    studio = _studio(endpoint_url, profile, region, stack)
    paths = studio.download(job_id, directory)
    console.print(f"{len(paths)} files in {directory.resolve()}")
