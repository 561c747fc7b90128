"""`darkroom share | download`: links for a studio's clients, and what they lead to."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from darkroom import durations
from darkroom.api.share_access import MAX_PASSWORD, MIN_PASSWORD
from darkroom.cli.connection import api_call, studio
from darkroom.cli.view import console, err, shares_table, transfer_bars

if TYPE_CHECKING:
    from darkroom.cli.studio_client import StudioClient

# What a link may live, as the issue words it: from an hour to 90 days (a deployment may
# allow less; the API then says so).
SHORTEST_LINK = 3600
LONGEST_LINK = 90 * 86400


def link_life(value: str | None, option: str) -> int | None:
    """Seconds from --expires-in or --extend: plain seconds, or 90m, 12h, 30d, 2w. A
    mistake is one line saying the range in words, exit 2, no traceback."""
    if value is None:
        return None
    try:
        seconds = durations.parse(value)
    except ValueError as exc:
        _usage(f"{option}: {exc}")
    if not SHORTEST_LINK <= seconds <= LONGEST_LINK:
        _usage(
            f"{option}: must be between {durations.words(SHORTEST_LINK)} and "
            f"{durations.words(LONGEST_LINK)}; {value!r} is {durations.words(seconds)}"
        )
    return seconds


def share_password(ask: bool, password_file: Path | None) -> str | None:
    """The client's password for a new share: typed twice, hidden (--password), or the
    first line of a file, "-" for standard input (--password-file, for scripts). Never an
    option's value: that would stay in the shell's history and in `ps`."""
    if password_file is None and not ask:
        return None
    if password_file is not None:
        try:
            text = (
                sys.stdin.readline()
                if str(password_file) == "-"
                else password_file.read_text(encoding="utf-8")
            )
        except (OSError, UnicodeDecodeError) as exc:
            _usage(f"--password-file: cannot read {password_file}: {exc}")
        lines = text.splitlines()
        password = lines[0] if lines else ""
    else:
        password = typer.prompt(
            "Password for the client", hide_input=True, confirmation_prompt=True
        )
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        where = "--password-file" if password_file is not None else "--password"
        _usage(
            f"{where}: a share's password has {MIN_PASSWORD} to {MAX_PASSWORD} characters; "
            f"this one has {len(password)}"
        )
    return password


def _usage(message: str) -> NoReturn:
    err.print(message, style="red", markup=False, highlight=False)
    raise typer.Exit(2)


def share(
    ctx: typer.Context,
    job_id: str,
    expires_in: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION",
            help="How long the link works, 1h to 90d: seconds, or e.g. 12h, 30d (default 7d).",
        ),
    ] = None,
    message: Annotated[
        str | None,
        typer.Option(help="A note to the client, shown at the top of the gallery."),
    ] = None,
    extend: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION",
            help="Keep an existing link working this much longer (e.g. 30d) instead.",
        ),
    ] = None,
    share_id: Annotated[
        str | None,
        typer.Option(
            "--share",
            metavar="SHARE_ID",
            help="The link --extend acts on (when several); with --password, give this "
            "existing link a new password (every unlocked browser must unlock again).",
        ),
    ] = None,
    revoke: Annotated[
        str | None, typer.Option(metavar="SHARE_ID", help="Revoke this share instead.")
    ] = None,
    proofing: Annotated[
        bool,
        typer.Option(help="Let the client mark favourites and leave a note per photo."),
    ] = False,
    password: Annotated[
        bool,
        typer.Option(
            "--password",
            help="Ask the client for a password (typed here twice, hidden).",
        ),
    ] = False,
    password_file: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help='The password from the first line of FILE ("-": standard input), for scripts.',
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Share a finished job with a client: prints a link that needs no AWS account."""
    # Checked before any connection: a typo costs no round trip.
    expiry = link_life(expires_in, "--expires-in")
    extend_by = link_life(extend, "--extend")
    if (password or password_file is not None) and (revoke or extend_by is not None):
        _usage(
            "--password and --password-file set a new link's password; "
            "not with --revoke or --extend"
        )
    secret = share_password(password, password_file)
    client = studio(ctx)
    if secret is not None and share_id:
        changed = api_call(lambda: client.set_share_password(job_id, share_id, secret))
        if as_json:
            print(json.dumps(changed, indent=2))
            return
        err.print(f"share {share_id} has a new password", markup=False)
        return
    if revoke:
        api_call(lambda: client.revoke(job_id, revoke))
        err.print(f"share {revoke} of job {job_id} revoked", markup=False)
        return
    if extend_by is not None:
        target = share_id or _only_live_share(client, job_id)
        extended = api_call(lambda: client.extend(job_id, target, extend_by))
        if as_json:
            print(json.dumps(extended, indent=2))
            return
        err.print(f"share {target} now {_expiry(extended['expires_at'])}", markup=False)
        return
    created = api_call(
        lambda: client.share(job_id, expiry, message, proofing=proofing, password=secret)
    )
    if as_json:
        print(json.dumps(created, indent=2))
        return
    print(created["url"])
    protected = "; asks for the password" if created.get("password") else ""
    err.print(
        f"share {created['share_id']} {_expiry(created['expires_at'])}{protected}; revoke it with "
        f"`darkroom share {job_id} --revoke {created['share_id']}`",
        markup=False,
    )


def _expiry(expires_at: str) -> str:
    """'expires in 30 days (2026-05-01T12:00:00Z)'."""
    moment = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
    left = (moment - datetime.now(UTC)).total_seconds()
    return f"expires in {durations.approximately(left)} ({expires_at})"


def _only_live_share(client: StudioClient, job_id: str) -> str:
    live = [s for s in api_call(lambda: client.shares(job_id)) if s["state"] != "revoked"]
    if len(live) == 1:
        return str(live[0]["share_id"])
    if not live:
        _usage(f"job {job_id} has no link to extend; create one with `darkroom share {job_id}`")
    _usage(
        f"job {job_id} has {len(live)} links; name one with --share SHARE_ID "
        f"(`darkroom shares {job_id}` lists them)"
    )


def shares(
    ctx: typer.Context,
    job_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """A job's share links: state, expiry, and how often each was viewed and downloaded."""
    client = studio(ctx)
    found = api_call(lambda: client.shares(job_id))
    if as_json:
        print(json.dumps(found, indent=2))
        return
    if not found:
        err.print(f"job {job_id} has no share links", markup=False)
        return
    console.print(shares_table(found))


def favourites(
    ctx: typer.Context,
    job_id: str,
    as_json: Annotated[
        bool, typer.Option("--json", help="Every mark: share, note and when, as JSON.")
    ] = False,
) -> None:
    """The files a job's proofing clients marked as favourites, one name a line: paste
    them into Lightroom's filename search, or pass `--files favourites` to reprocess."""
    client = studio(ctx)
    found = api_call(lambda: client.favourites(job_id))
    if as_json:
        print(json.dumps(found, indent=2))
        return
    marked = found["merged"]
    if not marked:
        err.print(f"job {job_id} has no favourites yet", markup=False)
        return
    # One name a line on stdout (Lightroom's Library filter takes them pasted in, and a
    # name may hold a comma); the count and the notes' existence go to stderr.
    for favourite in marked:
        print(favourite["file_name"])
    noted = sum(1 for f in marked if any(n.get("note") for n in f["notes"]))
    shares = len(found["by_share"])
    err.print(
        f"{len(marked)} favourite{'s' if len(marked) != 1 else ''} through {shares} "
        f"share{'s' if shares != 1 else ''}"
        + (f", {noted} with notes (--json shows them)" if noted else ""),
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
