"""Finding a deployed stack's API: --profile and --stack, resolved through CloudFormation's
outputs (moto in-process), the way the `darkroom` CLI does it for a real deployment."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.request import Request

import boto3
import pytest
import typer
from moto import mock_aws
from typer.testing import CliRunner

from darkroom import names
from darkroom.cli import main as cli
from darkroom.cli.studio_client import ApiTarget

REGION = "eu-west-1"
PROFILE = "studio"
PROFILE_KEY = "AKIASTUDIOPROFILE000"
DEFAULT_KEY = "AKIADEFAULTPROFILE00"
STACK = "darkroom-prod"
API_URL = f"https://abc123def4.execute-api.{REGION}.amazonaws.com"
STATE_MACHINE_ARN = f"arn:aws:states:{REGION}:123456789012:stateMachine:RawPipeline-x1"
OUTPUTS = {
    names.Output.API_URL: API_URL,
    names.Output.RAW_BUCKET: "darkroom-prod-rawbucket-1a2b3c",
    names.Output.PROCESSED_BUCKET: "darkroom-prod-processedbucket-4d5e6f",
    names.Output.JOBS_TABLE: "darkroom-prod-JobsTable-7G8H9I",
    names.Output.STATE_MACHINE_ARN: STATE_MACHINE_ARN,
}


def _template(outputs: dict[str, str]) -> str:
    return json.dumps(
        {
            "Resources": {"Alarms": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {key: {"Value": value} for key, value in outputs.items()},
        }
    )


@pytest.fixture
def aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A `studio` profile in eu-west-1 (the default profile is elsewhere, with other keys),
    and the stack deployed there."""
    for key in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "DARKROOM_API_URL",
        "DARKROOM_ENDPOINT_URL",
    ):
        monkeypatch.delenv(key, raising=False)
    config = tmp_path / "config"
    config.write_text(f"[default]\nregion = us-east-1\n\n[profile {PROFILE}]\nregion = {REGION}\n")
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[default]\naws_access_key_id = {DEFAULT_KEY}\naws_secret_access_key = d\n\n"
        f"[{PROFILE}]\naws_access_key_id = {PROFILE_KEY}\naws_secret_access_key = s\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    with mock_aws():
        cfn = boto3.session.Session(profile_name=PROFILE).client("cloudformation")
        cfn.create_stack(StackName=STACK, TemplateBody=_template(OUTPUTS))
        yield


def test_a_profile_and_stack_name_find_the_api_url_signed_for_its_region(aws: None) -> None:
    target = ApiTarget.resolve(stack=STACK, profile=PROFILE)
    assert target.url == API_URL
    assert target.signer is not None
    headers = target.signer("GET", f"{API_URL}/jobs", {"Accept": "application/json"}, b"")
    assert f"Credential={PROFILE_KEY}/" in headers["Authorization"]
    assert f"/{REGION}/execute-api/aws4_request" in headers["Authorization"]


class _Answer:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def __enter__(self) -> _Answer:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def read(self) -> bytes:
        return self._body


# The connection options belong to `darkroom` itself and may follow the command too.
PLACEMENTS = {
    "after the command": ["status", "--json", "--profile", PROFILE, "--stack", STACK],
    "before it": ["--profile", PROFILE, "--stack", STACK, "status", "--json"],
    "on both sides": [f"--profile={PROFILE}", "status", "--json", f"--stack={STACK}"],
    "twice, the last wins": [
        *("--stack", "elsewhere", "--profile", PROFILE),
        *("status", "--stack", STACK, "--json"),
    ],
}


@pytest.mark.parametrize("argv", PLACEMENTS.values(), ids=PLACEMENTS.keys())
def test_the_cli_calls_the_stacks_api_signed_with_the_profile(
    aws: None, monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    sent: list[Request] = []
    listed = {"jobs": [{"job_id": "20250101-120000-abcdef", "status": "DONE"}]}

    def urlopen(request: Request, timeout: float) -> _Answer:
        sent.append(request)
        return _Answer(json.dumps({**listed, "next_cursor": None}).encode())

    # The HTTP call itself is the one thing not made: everything up to it really runs.
    monkeypatch.setattr("darkroom.api.client.urlopen", urlopen)
    result = CliRunner().invoke(cli.app, argv)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == listed["jobs"]
    (request,) = sent
    assert request.full_url == f"{API_URL}/jobs?limit=20"
    authorization = request.get_header("Authorization")
    assert f"Credential={PROFILE_KEY}/" in authorization
    assert f"/{REGION}/execute-api/aws4_request" in authorization


def test_a_stack_that_is_not_a_darkroom_stack_is_refused_naming_the_missing_output(
    aws: None,
) -> None:
    cfn = boto3.session.Session(profile_name=PROFILE).client("cloudformation")
    cfn.create_stack(StackName="website", TemplateBody=_template({"SiteUrl": "https://x"}))
    result = CliRunner().invoke(cli.app, ["status", "--profile", PROFILE, "--stack", "website"])
    assert result.exit_code == 1
    assert "cannot find the darkroom API" in result.stderr
    assert names.Output.API_URL in result.stderr


def test_a_stack_in_another_profiles_region_is_not_found(aws: None) -> None:
    # The default profile looks in us-east-1, where nothing is deployed.
    result = CliRunner().invoke(cli.app, ["status", "--stack", STACK])
    assert result.exit_code == 1
    assert "cannot find the darkroom API" in result.stderr
    assert STACK in result.stderr


def test_no_command_has_an_option_named_like_a_connection_option() -> None:
    """They are moved in front of the command before parsing, so a command's own option of
    the same name would never see its value."""
    group = typer.main.get_group(cli.app)
    connection = {opt for param in group.params for opt in param.opts}
    assert {"--api-url", "--endpoint-url", "--profile", "--region", "--stack"} <= connection

    def options(command: Any) -> set[str]:
        own = {opt for param in command.params for opt in param.opts}
        for sub in getattr(command, "commands", {}).values():
            own |= options(sub)
        return own

    for name, command in group.commands.items():
        assert not options(command) & connection, name


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_upload_of_a_missing_folder_or_a_file_is_a_usage_error_naming_it(
    tmp_path: Path, kind: str
) -> None:
    from typer.testing import CliRunner

    from darkroom.cli.main import app

    target = tmp_path / "shoot"
    if kind == "file":
        target.write_bytes(b"not a folder")
    # Wide enough that the panel never wraps a long temporary path mid-name.
    result = CliRunner().invoke(
        app, ["upload", str(target), "--api-url", "http://127.0.0.1:9"], env={"COLUMNS": "400"}
    )
    assert result.exit_code == 2
    assert "shoot" in result.output
    assert "Traceback" not in result.output


def test_download_into_a_file_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from darkroom.cli.main import app

    target = tmp_path / "photos.txt"
    target.write_text("not a folder")
    result = CliRunner().invoke(
        app,
        ["download", "job-1", str(target), "--api-url", "http://127.0.0.1:9"],
        env={"COLUMNS": "400"},
    )
    assert result.exit_code == 2
    assert "photos.txt" in result.output and "Traceback" not in result.output


def test_an_id_that_cannot_be_a_job_is_sent_escaped_as_one_path_segment() -> None:
    from darkroom.api.client import ApiClient

    sent: list[str] = []
    client = ApiClient("http://127.0.0.1:9")
    client.fetch = lambda method, url, body=None: sent.append(url)  # type: ignore[method-assign]
    client.call("GET", "/jobs/not a job id!")
    client.call("GET", "/jobs/j1/files/a%2Fb.dng/complete")
    assert sent == [
        "http://127.0.0.1:9/jobs/not%20a%20job%20id%21",
        # What a caller escaped stays as it was.
        "http://127.0.0.1:9/jobs/j1/files/a%2Fb.dng/complete",
    ]
