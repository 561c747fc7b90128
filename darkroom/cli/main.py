"""`darkroom`: run the pipeline locally, or drive a deployed stack through its API."""

from __future__ import annotations

import json
import re
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.live import Live
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

from darkroom.api.client import ApiCallError, ApiClient, TransferError
from darkroom.cli.develop_cmd import develop as develop_command
from darkroom.cli.develop_cmd import load_recipe
from darkroom.cli.thumbnail_cmd import drop_demo_images, show_thumbnails, thumbnail
from darkroom.cli.view import job_panel
from darkroom.jobs import SHAREABLE, FileProgress, Job, JobStatus
from darkroom.studio import ApiTarget, Studio, StudioClient, Target, raw_files

app = typer.Typer(no_args_is_help=True, help="darkroom: RAW post-production for studios.")
local_app = typer.Typer(no_args_is_help=True, help="The embedded local cloud.")
app.add_typer(local_app, name="local")
console = Console()
err = Console(stderr=True)
T = TypeVar("T")

ApiUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--api-url",
        envvar="DARKROOM_API_URL",
        help="The API's URL (a local cloud's ApiUrl, or a deployed stack's).",
    ),
]
EndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--endpoint-url",
        envvar="DARKROOM_ENDPOINT_URL",
        help="A local cloud's AWS endpoint (from `darkroom local up`); its API is found there.",
    ),
]
ProfileOpt = Annotated[str | None, typer.Option("--profile", help="AWS profile (deployed stack).")]
RegionOpt = Annotated[str | None, typer.Option("--region", help="AWS region.")]
StackOpt = Annotated[str, typer.Option("--stack", help="CloudFormation stack name.")]


def _client(
    api_url: str | None,
    endpoint_url: str | None,
    profile: str | None,
    region: str | None,
    stack: str,
) -> StudioClient:
    try:
        target = ApiTarget.resolve(
            api_url=api_url,
            endpoint_url=endpoint_url,
            stack=stack,
            profile=profile,
            region=region,
        )
    except Exception as exc:
        err.print(f"[red]cannot find the darkroom API: {exc}[/red]")
        raise typer.Exit(1) from exc
    return StudioClient.at(target)


def _api(call: Callable[[], T]) -> T:
    """Run an API call; its error becomes a clear message and exit status 1."""
    try:
        return call()
    except ApiCallError as exc:
        err.print(f"[red]{exc.message}[/red]")
        for problem in exc.details.get("files", [])[:20]:
            err.print(f"  {problem}")
        raise typer.Exit(1) from exc
    except (TransferError, TimeoutError, ValueError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc


def _read_recipe(path: Path | None) -> dict[str, Any] | None:
    return None if path is None else load_recipe(path).model_dump(mode="json")


# -- rendering ------------------------------------------------------------------------
class _Bars:
    """A studio.Transfer drawn as a rich progress bar (bytes, speed, time left)."""

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
def _bars(verb: str) -> Iterator[_Bars]:
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
        yield _Bars(progress, verb)


def _job_of(view: dict[str, Any]) -> Job | None:
    """The job as the panels draw it; None before the pipeline has registered it."""
    if view.get("status") not in JobStatus.__members__:
        return None
    files = view.get("files") or {}
    return Job(
        job_id=view["job_id"],
        status=JobStatus(view["status"]),
        files=tuple(files),
        name=view.get("name"),
        progress={name: FileProgress.model_validate(item) for name, item in files.items()},
        execution_arn=view.get("execution_arn"),
        attempt=int(view.get("attempt") or 0),
        instance_id=view.get("instance_id"),
        manifest_key=view.get("manifest_key"),
        error=view.get("error"),
        cause=view.get("cause"),
        created_at=view.get("created_at"),
        updated_at=view.get("updated_at"),
        started_at=view.get("started_at"),
        finished_at=view.get("finished_at"),
    )


def _panel(view: dict[str, Any] | None, job_id: str) -> Any:
    if view is None:
        return job_panel(None, job_id, None)
    job = _job_of(view)
    if job is not None:
        return job_panel(job, job_id, view.get("state"))
    waiting = "waiting for its files" if view["status"] == "CREATED" else "waiting for the pipeline"
    return Panel(Text(f"job {job_id}: {view['status']}, {waiting}"), title="darkroom")


def _jobs_table(views: list[dict[str, Any]]) -> Table:
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


def _watch(
    client: StudioClient, job_id: str, *, timeout: float, since: str | None = None
) -> dict[str, Any]:
    with Live(_panel(None, job_id), console=console, refresh_per_second=4) as live:
        job = _api(
            lambda: client.wait(
                job_id,
                timeout=timeout,
                since_execution=since,
                on_update=lambda view: live.update(_panel(view, job_id)),
            )
        )
        live.update(_panel(job, job_id))
    return job


def _exit_code(job: dict[str, Any]) -> int:
    return {"DONE": 0, "DONE_WITH_ERRORS": 3}.get(job["status"], 1)


_DURATION = re.compile(r"^(\d+)([smhdw]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _seconds(value: str | None) -> int | None:
    if value is None:
        return None
    match = _DURATION.match(value.strip().lower())
    if not match:
        raise typer.BadParameter(f"{value!r}: use seconds or a number with s, m, h, d or w")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


# -- commands -------------------------------------------------------------------------
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
    """Start the local cloud, submit a shoot through the API, watch it, download it."""
    from darkroom.local.cloud import LocalCloud, LocalCloudConfig

    t0 = time.perf_counter()
    state_dir = Path(tempfile.mkdtemp(prefix="darkroom-local-"))
    succeeded = False
    try:
        with LocalCloud(LocalCloudConfig(port=port, state_dir=state_dir)) as cloud:
            console.print(
                f"local cloud on [bold]{cloud.endpoint_url}[/bold], API on "
                f"[bold]{cloud.api_url}[/bold] (pool: {', '.join(cloud.instance_ids)})"
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
            # Ordinary images take the direct S3 -> Lambda path while the RAW job runs.
            s3 = cloud.client("s3")
            thumb_keys = drop_demo_images(s3, state_dir / "thumbnail-demo")
            client = StudioClient(ApiClient(cloud.api_url))
            submitted = time.perf_counter()
            with _bars("uploading") as bars:
                job_id = _api(lambda: client.upload(files, name="darkroom demo", transfer=bars))
            console.print(f"submitted job [bold]{job_id}[/bold]")
            job = _watch(client, job_id, timeout=timeout)
            finished = time.perf_counter()
            dest = out / job_id
            paths: list[Path] = []
            # A failed job has nothing to share; its panel above already says why.
            if job["status"] in SHAREABLE:
                with _bars("downloading") as bars:
                    paths = _api(lambda: client.download(job_id, dest, bars))
            thumbs_ok = show_thumbnails(
                s3,
                thumb_keys,
                sizes=cloud.config.thumbnail_sizes,
                download_to=out / "thumbnails",
                console=console,
            )
            # Developing times are the operator's view: the processed manifest itself.
            manifest = Studio(Target.local(cloud.endpoint_url, cloud.config.region)).manifest(
                job_id
            )
        succeeded = job["status"] == "DONE" and thumbs_ok
    finally:
        if succeeded:
            shutil.rmtree(state_dir, ignore_errors=True)
        else:
            # Whatever went wrong is in a function's or the worker's log: keep them.
            err.print(f"logs of every function and worker kept in {state_dir / 'logs'}")
    develop = sum(float(f.get("develop_seconds", 0)) for f in manifest.get("files", []))
    job_seconds = finished - submitted
    if paths:
        console.print(f"\n{len(paths)} renditions in [bold]{dest.resolve()}[/bold]")
    for sub in sorted({p.parent for p in paths}):
        console.print(f"  {sub}/ ({sum(1 for p in paths if p.parent == sub)} files)")
    console.print(
        f"status {job['status']}; job {job_seconds:.1f}s (developing {develop:.1f}s, "
        f"orchestration overhead {job_seconds - develop:.1f}s); demo wall time "
        f"{time.perf_counter() - t0:.1f}s"
    )
    raise typer.Exit(0 if succeeded else 1)


@local_app.command("up")
def local_up(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 4599,
    api_port: Annotated[int, typer.Option(help="The API's port (0: any free port).")] = 0,
    pool_size: Annotated[int, typer.Option(help="Worker pool instances.")] = 1,
    state_dir: Annotated[Path, typer.Option(help="Logs and instance scratch disks.")] = Path(
        ".darkroom/local"
    ),
) -> None:
    """Run the local cloud until interrupted; the first line is JSON with the endpoints."""
    from darkroom.local.cloud import LocalCloud, LocalCloudConfig

    cloud = LocalCloud(
        LocalCloudConfig(port=port, api_port=api_port, pool_size=pool_size, state_dir=state_dir)
    ).start()
    print(json.dumps(cloud.endpoints()), flush=True)
    console.print(
        f"darkroom local cloud on {cloud.endpoint_url}, its API on {cloud.api_url}\n"
        f"  export DARKROOM_API_URL={cloud.api_url}   # then: darkroom upload DIR\n"
        f"  aws --endpoint-url {cloud.endpoint_url} s3 ls\n"
        "  AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local "
        f"AWS_DEFAULT_REGION={cloud.config.region}\n"
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
    api_url: ApiUrlOpt = None,
    endpoint_url: EndpointOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    stack: StackOpt = "darkroom",
) -> None:
    """Upload a folder of RAW files through presigned URLs and submit it; prints the job id."""
    files = raw_files(directory)
    if not files:
        err.print(f"[red]{directory}: no RAW files found[/red]")
        raise typer.Exit(2)
    client = _client(api_url, endpoint_url, profile, region, stack)
    checked = _read_recipe(recipe)
    with _bars("uploading") as bars:
        new_id = _api(
            lambda: client.upload(files, job_id=job_id, name=name, recipe=checked, transfer=bars)
        )
    print(new_id)


@app.command()
def status(
    job_id: Annotated[str | None, typer.Argument()] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    limit: Annotated[int, typer.Option(help="Recent jobs to list.")] = 20,
    api_url: ApiUrlOpt = None,
    endpoint_url: EndpointOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    stack: StackOpt = "darkroom",
) -> None:
    """A job's status and per-file progress, or the recent jobs."""
    client = _client(api_url, endpoint_url, profile, region, stack)
    if job_id is None:
        recent = _api(lambda: client.jobs(limit))
        if as_json:
            print(json.dumps(recent, indent=2))
        else:
            console.print(_jobs_table(recent))
        return
    view = _api(lambda: client.job(job_id))
    if as_json:
        print(json.dumps(view, indent=2))
    else:
        console.print(_panel(view, job_id))


@app.command()
def watch(
    job_id: str,
    timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 3600,
    api_url: ApiUrlOpt = None,
    endpoint_url: EndpointOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    stack: StackOpt = "darkroom",
) -> None:
    """Follow a job live until it finishes (exit 0 DONE, 3 DONE_WITH_ERRORS, 1 FAILED)."""
    client = _client(api_url, endpoint_url, profile, region, stack)
    raise typer.Exit(_exit_code(_watch(client, job_id, timeout=timeout)))


@app.command()
def reprocess(
    job_id: str,
    recipe: Annotated[Path | None, typer.Option(help="Recipe JSON for this run.")] = None,
    wait: Annotated[bool, typer.Option(help="Follow the new execution.")] = False,
    api_url: ApiUrlOpt = None,
    endpoint_url: EndpointOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    stack: StackOpt = "darkroom",
) -> None:
    """Start a new execution for a finished job (refused while one runs)."""
    client = _client(api_url, endpoint_url, profile, region, stack)
    checked = _read_recipe(recipe)
    previous = _api(lambda: client.job(job_id)).get("execution_arn")
    arn = _api(lambda: client.reprocess(job_id, checked))
    print(arn)
    if wait:
        raise typer.Exit(_exit_code(_watch(client, job_id, timeout=3600, since=previous)))


@app.command()
def share(
    job_id: str,
    expires_in: Annotated[
        str | None,
        typer.Option(help="How long the link works: seconds, or e.g. 30m, 12h, 7d (default 7d)."),
    ] = None,
    revoke: Annotated[
        str | None, typer.Option(metavar="SHARE_ID", help="Revoke this share instead.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    api_url: ApiUrlOpt = None,
    endpoint_url: EndpointOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    stack: StackOpt = "darkroom",
) -> None:
    """Share a finished job with a client: prints a link that needs no AWS account."""
    client = _client(api_url, endpoint_url, profile, region, stack)
    if revoke:
        _api(lambda: client.revoke(job_id, revoke))
        err.print(f"share {revoke} of job {job_id} revoked")
        return
    seconds = _seconds(expires_in)
    created = _api(lambda: client.share(job_id, seconds))
    if as_json:
        print(json.dumps(created, indent=2))
        return
    print(created["url"])
    err.print(
        f"share {created['share_id']} expires {created['expires_at']}; revoke it with "
        f"`darkroom share {job_id} --revoke {created['share_id']}`"
    )


@app.command()
def download(
    job_or_link: Annotated[
        str, typer.Argument(metavar="JOB|SHARE_URL", help="A job id, or a share link.")
    ],
    directory: Path,
    api_url: ApiUrlOpt = None,
    endpoint_url: EndpointOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    stack: StackOpt = "darkroom",
) -> None:
    """Download a finished job's renditions into DIRECTORY/<rendition>/.

    A share link needs nothing else: no AWS account, no API options.
    """
    if job_or_link.startswith(("http://", "https://")):
        with _bars("downloading") as bars:
            paths = _api(lambda: StudioClient.download_link(job_or_link, directory, bars))
    else:
        client = _client(api_url, endpoint_url, profile, region, stack)
        with _bars("downloading") as bars:
            paths = _api(lambda: client.download(job_or_link, directory, bars))
    console.print(f"{len(paths)} files in {directory.resolve()}")


# Local tools, no cloud: the worker's and the thumbnail Lambda's own code on this machine.
app.command("develop")(develop_command)
app.command("thumbnail")(thumbnail)
