"""`darkroom doctor`: after a deploy, what a person would check, each ok / warn / fail
with its fix in one line."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from darkroom.cli.connection import Connection
from darkroom.cli.view import console, err

if TYPE_CHECKING:
    from darkroom.doctor import Finding

# boto3 and the checks are imported when the command runs: `darkroom --help` stays fast.

_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "unknown": "bold red", "skip": "dim"}
# Nothing could be checked (no such stack, no credentials): a usage mistake.
USAGE_EXIT = 2


def doctor(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="The findings, machine-readable.")
    ] = False,
) -> None:
    """Check a deployed stack (--stack, --region, --profile) or the local cloud
    (--endpoint-url): outputs, the pool and its software, the worker AMI's age, the
    latest boot log, alarm subscriptions, state machine logging, quotas, the SES sender.
    Exits 1 when a check fails or could not be made."""
    import datetime as dt

    import boto3
    from botocore.exceptions import BotoCoreError

    from darkroom import doctor as checks
    from darkroom.aws.doctor_facts import CannotCheck, DoctorFacts

    conn = ctx.find_object(Connection) or Connection()
    try:
        if conn.endpoint_url:
            region = conn.region or "us-east-1"
            session = boto3.session.Session(
                aws_access_key_id="local", aws_secret_access_key="local", region_name=region
            )
            facts = DoctorFacts(session, conn.endpoint_url).local(region)
            target = f"local cloud at {conn.endpoint_url}"
        else:
            session = boto3.session.Session(profile_name=conn.profile, region_name=conn.region)
            if session.region_name is None:
                raise CannotCheck(
                    "no AWS region: give --region (or a --profile with one), or --endpoint-url "
                    "for a local cloud"
                )
            facts = DoctorFacts(session).stack(conn.stack)
            target = f"stack {conn.stack} in {session.region_name}"
    except CannotCheck as exc:
        err.print(str(exc), style="red", markup=False, highlight=False)
        raise typer.Exit(USAGE_EXIT) from exc
    except BotoCoreError as exc:  # a profile that does not exist, a bad endpoint
        err.print(f"cannot reach AWS: {exc}", style="red", markup=False, highlight=False)
        raise typer.Exit(USAGE_EXIT) from exc
    findings = checks.diagnose(facts, dt.datetime.now(dt.UTC))
    if as_json:
        print(json.dumps({"target": target, "findings": [f.as_json() for f in findings]}, indent=2))
    else:
        render(target, findings)
    raise typer.Exit(checks.exit_status(findings))


def render(target: str, findings: list[Finding]) -> None:
    console.print(f"darkroom doctor: {target}", style="bold", markup=False, highlight=False)
    for finding in findings:
        style = _STYLE.get(finding.status, "")
        console.print(
            f"{finding.status:>7}  {finding.check}: {finding.detail}",
            style=style,
            markup=False,
            highlight=False,
        )
        if finding.fix and finding.status not in {"ok", "skip"}:
            console.print(f"         fix: {finding.fix}", markup=False, highlight=False)
