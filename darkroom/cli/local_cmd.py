"""`darkroom demo` and `darkroom local up`: the embedded local cloud on this machine."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from darkroom import names
from darkroom.cli.connection import Connection, api_call
from darkroom.cli.jobs_cmd import follow
from darkroom.cli.thumbnail_cmd import drop_demo_images, show_thumbnails
from darkroom.cli.view import console, err, transfer_bars

# The local cloud (moto, boto3) and the API client are imported when a command runs.


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
    from darkroom.api.client import ApiClient
    from darkroom.aws.objects import Objects
    from darkroom.cli.studio_client import StudioClient, raw_files
    from darkroom.jobs import SHAREABLE
    from darkroom.local.cloud import LocalCloud, LocalCloudConfig

    t0 = time.perf_counter()
    state_dir = Path(tempfile.mkdtemp(prefix="darkroom-local-"))
    succeeded = False
    manifest: dict[str, Any] = {}
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
            with transfer_bars("uploading") as bars:
                job_id = api_call(lambda: client.upload(files, name="darkroom demo", transfer=bars))
            console.print(f"submitted job [bold]{job_id}[/bold]")
            job = follow(client, job_id, timeout=timeout)
            finished = time.perf_counter()
            dest = out / job_id
            paths: list[Path] = []
            # A failed job has nothing to share; its panel above already says why.
            if job["status"] in SHAREABLE:
                with transfer_bars("downloading") as bars:
                    paths = api_call(lambda: client.download(job_id, dest, bars)).paths
            thumbs_ok = show_thumbnails(
                s3,
                thumb_keys,
                sizes=cloud.config.thumbnail_sizes,
                download_to=out / "thumbnails",
                console=console,
            )
            # Developing times are the worker's own, in the processed manifest: the API
            # shows a studio its photos, not the pipeline's timings.
            if job.get("manifest_key"):
                manifest = Objects(s3).get_json(names.PROCESSED_BUCKET, job["manifest_key"])
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


def local_up(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 4599,
    api_port: Annotated[
        int | None,
        typer.Option(help="The API's port (default: --port + 1, so its URL never changes)."),
    ] = None,
    pool_size: Annotated[
        int, typer.Option(help="Pool instances (each runs the worker): the pool's minimum.")
    ] = 1,
    pool_max: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Let the pool scaler launch instances up to this many in all while jobs "
            "wait, and terminate them once idle (default: --pool-size, a fixed pool).",
        ),
    ] = None,
    pool_max_vcpus: Annotated[
        int,
        typer.Option(min=0, help="Cost cap: vCPUs of pool instances running at once (0: none)."),
    ] = 0,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            help="Buckets and tables kept across restarts, logs, instance scratch disks "
            "(default: the user's data directory)."
        ),
    ] = None,
    reset: Annotated[
        bool,
        typer.Option("--reset", help="Forget the saved buckets, tables and executions first."),
    ] = False,
    studio_name: Annotated[
        str, typer.Option(help="The studio's name on its clients' gallery pages.")
    ] = "",
    studio_logo_url: Annotated[
        str, typer.Option(help="An https URL of the studio's logo for those pages.")
    ] = "",
    studio_accent_colour: Annotated[
        str, typer.Option(help="Their accent colour, #rgb or #rrggbb.")
    ] = "",
    sender_email: Annotated[
        str,
        typer.Option(
            help="Automatic delivery: the address mail comes from (made a verified SES "
            "identity; moto's SES records what is sent)."
        ),
    ] = "",
    photographer_email: Annotated[
        str, typer.Option(help="Told of every job's ending (needs --sender-email).")
    ] = "",
    webhook_url: Annotated[
        str, typer.Option(help="Receives every job event, signed (README: the webhook).")
    ] = "",
    save_every: Annotated[
        float | None,
        typer.Option(
            min=1.0,
            help="Save the state every this many seconds while running (default 30); "
            "a kill -9 loses at most what changed since the last save.",
        ),
    ] = None,
) -> None:
    """Run the local cloud until interrupted; the first line is JSON with the endpoints.

    Its buckets, tables and ended executions are saved under the state directory while
    it runs and when it stops, and loaded when it starts again; a job still running at
    the stop comes back FAILED."""
    from darkroom.local.ports import PortInUse, check_port_free

    if api_port is None:
        api_port = port + 1 if port else 0
    if pool_max is not None and pool_max < pool_size:
        err.print(
            f"--pool-max {pool_max} is below --pool-size {pool_size}, the pool's minimum",
            markup=False,
        )
        raise typer.Exit(2)
    studio = _studio(studio_name, studio_logo_url, studio_accent_colour)
    delivery = _delivery(sender_email, photographer_email, webhook_url)
    try:
        # Before the cloud's imports, which take seconds; the cloud checks them again.
        check_port_free("127.0.0.1", port, "the local cloud's AWS endpoint")
        check_port_free("127.0.0.1", api_port, "the local cloud's API")
    except PortInUse as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(2) from exc
    from darkroom import observability
    from darkroom.local import snapshot
    from darkroom.local.cloud import LocalCloud, LocalCloudConfig

    # The first line of stdout is the endpoints' JSON, whatever the start logs.
    observability.log_to(sys.stderr)
    state_dir = (state_dir or default_state_dir()).expanduser()
    if reset and snapshot.reset(state_dir):
        # stderr: the first line of stdout is the endpoints' JSON.
        err.print(f"reset: forgot the state saved in {state_dir}", markup=False)
    cloud = LocalCloud(
        LocalCloudConfig(
            port=port,
            api_port=api_port,
            pool_size=pool_size,
            pool_max_size=pool_max,
            pool_max_vcpus=pool_max_vcpus,
            state_dir=state_dir,
            persist=True,
            studio=studio,
            delivery=delivery,
            save_every_seconds=save_every or snapshot.SAVE_EVERY_SECONDS,
        )
    )
    try:
        cloud.start()
    except Exception as exc:
        # Stopping saves nothing here: the saved state is left as it was.
        cloud.stop()
        err.print(
            f"the local cloud did not start: {exc}\n(its state is in {state_dir}; "
            "`darkroom local up --reset` starts it empty)",
            markup=False,
        )
        raise typer.Exit(1) from exc
    print(json.dumps({**cloud.endpoints(), "StateDir": str(cloud.state_dir)}), flush=True)
    console.print(
        f"darkroom local cloud on {cloud.endpoint_url}, its API on {cloud.api_url}\n"
        f"  console: {cloud.console_url}   # or: darkroom console --endpoint-url "
        f"{cloud.endpoint_url}\n"
        f"  export DARKROOM_API_URL={cloud.api_url}   # then: darkroom upload DIR\n"
        f"  aws --endpoint-url {cloud.endpoint_url} s3 ls\n"
        "  AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local "
        f"AWS_DEFAULT_REGION={cloud.config.region}\n"
        f"{_restored(cloud)}\n"
        f"logs in {cloud.state_dir / 'logs'}; Ctrl-C stops it",
        markup=False,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        console.print(f"stopping: saving the state in {cloud.state_dir}", markup=False)
        cloud.stop()
        if cloud.saved is not None:
            console.print(
                f"saved {cloud.saved.objects} objects and {cloud.saved.items} items",
                markup=False,
            )


def _studio(name: str, logo_url: str, accent_colour: str) -> dict[str, str]:
    """The studio options by their settings' names, checked as a deploy checks them."""
    from darkroom import branding, names

    given = {
        names.STUDIO_NAME: (name, branding.studio_name, "--studio-name"),
        names.STUDIO_LOGO_URL: (logo_url, branding.logo_url, "--studio-logo-url"),
        names.STUDIO_ACCENT_COLOUR: (
            accent_colour,
            branding.accent_colour,
            "--studio-accent-colour",
        ),
    }
    studio = {}
    for setting, (value, check, option) in given.items():
        if value:
            try:
                studio[setting] = check(value)
            except ValueError as exc:
                err.print(f"{option}: {exc}", style="red", markup=False, highlight=False)
                raise typer.Exit(2) from None
    return studio


def default_state_dir() -> Path:
    """Where `local up` keeps its state unless told: the user's data directory."""
    try:
        import platformdirs
    except ImportError:
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        return Path(base) / "darkroom" / "local"
    return Path(platformdirs.user_data_dir("darkroom")) / "local"


def _restored(cloud: Any) -> str:
    where = f"state in {cloud.state_dir} (kept across restarts; --reset forgets it)"
    if cloud.restored is None:
        return f"{where}: nothing saved yet, starting empty"
    line = (
        f"{where}: loaded {cloud.restored.objects} objects, {cloud.restored.items} items "
        f"and {cloud.restored.executions} ended executions"
    )
    if cloud.orphans_killed:
        line += f"\n  ended {len(cloud.orphans_killed)} worker(s) left running by a killed cloud"
    if cloud.interrupted:
        line += (
            f"\n  {len(cloud.interrupted)} job(s) were running when it stopped, now FAILED "
            f"(reprocess them): {', '.join(cloud.interrupted)}"
        )
    return line


def open_console(
    ctx: typer.Context,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Print the URL only.")] = False,
) -> None:
    """Open the local cloud's console (its executions, jobs and logs) in a browser."""
    import webbrowser

    from darkroom.local.cloud import console_url

    url = console_url(_local_api(ctx.find_object(Connection) or Connection()))
    print(url, flush=True)
    if not no_browser:
        webbrowser.open(url)


def _local_api(connection: Connection) -> str:
    """The local cloud's API URL; the console exists only there, so a stack is no answer."""
    if connection.api_url:
        return connection.api_url
    if not connection.endpoint_url:
        err.print(
            "the console is the local cloud's: give --endpoint-url (or DARKROOM_ENDPOINT_URL) "
            "from `darkroom local up`, or its --api-url",
            style="red",
        )
        raise typer.Exit(2)
    from darkroom.cli.studio_client import local_api_url

    try:
        return local_api_url(connection.endpoint_url, connection.region or "us-east-1")
    except Exception as exc:
        err.print(f"cannot find the local console: {exc}", style="red", markup=False)
        raise typer.Exit(1) from exc


def _delivery(sender: str, photographer: str, webhook_url: str) -> dict[str, str]:
    """The delivery options by their settings' names; addresses checked as the API does."""
    from darkroom import names
    from darkroom.api.models import email_address

    delivery = {}
    for setting, value, option in (
        (names.SENDER_EMAIL, sender, "--sender-email"),
        (names.PHOTOGRAPHER_EMAIL, photographer, "--photographer-email"),
    ):
        if value:
            try:
                delivery[setting] = email_address(value)
            except ValueError as exc:
                err.print(f"{option}: {exc}", style="red", markup=False, highlight=False)
                raise typer.Exit(2) from None
    if photographer and not sender:
        err.print("--photographer-email needs --sender-email", style="red", markup=False)
        raise typer.Exit(2)
    if webhook_url:
        if not webhook_url.startswith(("http://", "https://")):
            err.print("--webhook-url: an http(s) URL", style="red", markup=False)
            raise typer.Exit(2)
        delivery[names.WEBHOOK_URL] = webhook_url
    return delivery
