"""`darkroom share | download`: links for a studio's clients, and what they lead to."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import typer

from darkroom.cli.connection import api_call, studio
from darkroom.cli.view import console, err, transfer_bars

_DURATION = re.compile(r"^(\d+)([smhdw]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def seconds(value: str | None) -> int | None:
    if value is None:
        return None
    match = _DURATION.match(value.strip().lower())
    if not match:
        raise typer.BadParameter(f"{value!r}: use seconds or a number with s, m, h, d or w")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def share(
    ctx: typer.Context,
    job_id: str,
    expires_in: Annotated[
        str | None,
        typer.Option(help="How long the link works: seconds, or e.g. 30m, 12h, 7d (default 7d)."),
    ] = None,
    revoke: Annotated[
        str | None, typer.Option(metavar="SHARE_ID", help="Revoke this share instead.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Share a finished job with a client: prints a link that needs no AWS account."""
    client = studio(ctx)
    if revoke:
        api_call(lambda: client.revoke(job_id, revoke))
        err.print(f"share {revoke} of job {job_id} revoked", markup=False)
        return
    expiry = seconds(expires_in)
    created = api_call(lambda: client.share(job_id, expiry))
    if as_json:
        print(json.dumps(created, indent=2))
        return
    print(created["url"])
    err.print(
        f"share {created['share_id']} expires {created['expires_at']}; revoke it with "
        f"`darkroom share {job_id} --revoke {created['share_id']}`",
        markup=False,
    )


def download(
    ctx: typer.Context,
    job_or_link: Annotated[
        str, typer.Argument(metavar="JOB|SHARE_URL", help="A job id, or a share link.")
    ],
    directory: Annotated[Path, typer.Argument(file_okay=False)],
) -> None:
    """Download a finished job's renditions into DIRECTORY/<rendition>/.

    A share link needs nothing else: no AWS account, no API options. Interrupted, the
    same command fetches only what is missing: each file is written whole or not at all.
    """
    from darkroom.cli.studio_client import StudioClient

    if job_or_link.startswith(("http://", "https://")):
        with transfer_bars("downloading") as bars:
            got = api_call(lambda: StudioClient.download_link(job_or_link, directory, bars))
    else:
        client = studio(ctx)
        with transfer_bars("downloading") as bars:
            got = api_call(lambda: client.download(job_or_link, directory, bars))
    already = f" ({got.skipped} were there already)" if got.skipped else ""
    console.print(f"{len(got.paths)} files in {directory.resolve()}{already}", markup=False)
