"""`darkroom doctor` against the embedded local cloud: every check that applies there
is ok, the AWS-only ones say so, and the exit status is 0."""

from __future__ import annotations

import json
import time

from typer.testing import CliRunner

from darkroom.cli import main as cli
from darkroom.local.cloud import LocalCloud


def doctor_json(cloud: LocalCloud) -> tuple[int, dict[str, dict[str, str]]]:
    result = CliRunner().invoke(
        cli.app,
        ["doctor", "--endpoint-url", cloud.endpoint_url, "--region", cloud.config.region, "--json"],
        prog_name="darkroom",
    )
    assert "Traceback" not in result.output, result.output
    findings = json.loads(result.output)["findings"]
    return result.exit_code, {f["check"]: f for f in findings}


def test_doctor_finds_the_local_cloud_healthy(cloud: LocalCloud) -> None:
    # Another test's job may have left a worker finishing its idle wait: the pool is
    # read again until every instance is stopped (the idle shutdown takes seconds).
    deadline = time.monotonic() + 60
    while True:
        status, found = doctor_json(cloud)
        if found["pool"]["status"] == "ok" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert status == 0, found
    assert found["outputs"]["status"] == "ok"
    assert found["pool"]["status"] == "ok"
    assert f"{cloud.config.pool_size} instances" in found["pool"]["detail"]
    skipped = {check for check, f in found.items() if f["status"] == "skip"}
    assert skipped == {
        "worker AMI",
        "boot log",
        "alarms",
        "state machine logging",
        "Lambda concurrency quota",
        "EC2 vCPU quota",
        "SES sender",
    }


def test_doctor_prints_each_check_for_a_person(cloud: LocalCloud) -> None:
    result = CliRunner().invoke(
        cli.app, ["doctor", "--endpoint-url", cloud.endpoint_url], prog_name="darkroom"
    )
    text = " ".join(result.output.split())
    assert "darkroom doctor: local cloud at" in text
    assert "ok outputs: all 11 outputs present" in text
    assert "skip alarms: AWS only" in text


def test_doctor_with_no_local_cloud_at_the_address_says_how_to_start_one() -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = CliRunner().invoke(
        cli.app, ["doctor", "--endpoint-url", f"http://127.0.0.1:{port}"], prog_name="darkroom"
    )
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "Traceback" not in text
    assert f"no local cloud answers at http://127.0.0.1:{port}" in text
    assert "start one (darkroom local up)" in text
