"""`darkroom doctor` against a stubbed AWS account (botocore's Stubber: every call the
adapter makes is answered as AWS would, with no network), and the CLI's words when
nothing can be checked."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from typer.testing import CliRunner

from darkroom import doctor, names
from darkroom.aws import doctor_facts
from darkroom.aws.doctor_facts import CannotCheck, DoctorFacts
from darkroom.cli import main as cli

STACK = "studio-a"
REGION = "eu-west-1"
TOPIC = f"arn:aws:sns:{REGION}:111122223333:{STACK}-alarms"
MACHINE = f"arn:aws:states:{REGION}:111122223333:stateMachine:{names.state_machine_name(STACK)}"
POOL = ("i-0aaaaaaaaaaaaaaa1", "i-0aaaaaaaaaaaaaaa2")
AMI = "ami-0123456789abcdef0"
NOW = dt.datetime.now(dt.UTC)


@dataclass
class Account:
    """How the stubbed account answers; each test changes what it is about."""

    ami_age_days: int = 10
    subscription: str | None = f"{TOPIC}:0f1e"  # or "PendingConfirmation", or None
    logging_level: str = "ALL"
    vcpu_quota: float = 64.0
    lambda_quota: float = 1000.0
    sender: str | None = "studio.example"
    ses_production: bool = True
    unpinned: bool = False
    # service -> operation -> AWS error code, answered instead of the operation's reply
    errors: dict[str, dict[str, str]] = field(default_factory=dict)


def outputs(account: Account) -> list[dict[str, str]]:
    values = {key: f"{key}-value" for key in doctor.REQUIRED_OUTPUTS}
    values[doctor.ALARM_TOPIC_OUTPUT] = TOPIC
    values[doctor.WORKER_INSTANCE_IDS_OUTPUT] = ",".join(POOL)
    values[names.Output.STATE_MACHINE_ARN] = MACHINE
    values[names.Output.WORKERS_TABLE] = f"{STACK}-workers"
    if account.sender:
        values[names.Output.SENDER_IDENTITY] = account.sender
    return [{"OutputKey": k, "OutputValue": v} for k, v in values.items()]


def replies(account: Account) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Per service, the calls doctor makes in order, and AWS's answer to each."""
    boot = [
        "Installed python3.12",
        json.dumps({"level": "INFO", "message": "worker up", "software": {"darkroom": "0.1.0"}}),
        json.dumps({"level": "INFO", "message": "worker down", "reason": "idle"}),
    ]
    events = {"events": [{"timestamp": 1, "message": m, "ingestionTime": 1} for m in boot]}
    parameters = [{"ParameterKey": "BootstrapVersion", "ParameterValue": "/cdk-bootstrap/v"}]
    if account.unpinned:
        parameters.append(
            {
                "ParameterKey": "SsmParameterValueawsserviceamiamazonlinuxlatestal2023amikernel"
                "defaultarm64C96584B6F00A464EAD1953AFF4B05118Parameter",
                "ParameterValue": "/aws/service/ami-amazon-linux-latest/"
                "al2023-ami-kernel-default-arm64",
            }
        )
    instances = [
        {
            "InstanceId": iid,
            "State": {"Name": "stopped", "Code": 80},
            "InstanceType": "c7g.xlarge",
            "ImageId": AMI,
            "Placement": {"AvailabilityZone": f"{REGION}{zone}"},
        }
        for iid, zone in zip(POOL, "ab", strict=True)
    ]
    subscriptions = (
        [
            {
                "SubscriptionArn": account.subscription,
                "Endpoint": "ops@studio.example",
                "TopicArn": TOPIC,
            }
        ]
        if account.subscription
        else []
    )
    created = (NOW - dt.timedelta(days=account.ami_age_days)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    quota = lambda value: {"Quota": {"Value": value}}  # noqa: E731
    answers: dict[str, list[tuple[str, dict[str, Any]]]] = {
        "cloudformation": [
            (
                "describe_stacks",
                {
                    "Stacks": [
                        {
                            "StackName": STACK,
                            "CreationTime": NOW,
                            "StackStatus": "UPDATE_COMPLETE",
                            "Outputs": outputs(account),
                            "Parameters": parameters,
                        }
                    ]
                },
            )
        ],
        "ec2": [
            ("describe_instances", {"Reservations": [{"Instances": instances}]}),
            (
                "describe_images",
                {
                    "Images": [
                        {"ImageId": AMI, "Name": "al2023-ami-2026.0", "CreationDate": created}
                    ]
                },
            ),
            (
                "describe_instance_types",
                {
                    "InstanceTypes": [
                        {"InstanceType": "c7g.xlarge", "VCpuInfo": {"DefaultVCpus": 4}}
                    ]
                },
            ),
        ],
        "dynamodb": [
            (
                "batch_get_item",
                {
                    "Responses": {
                        f"{STACK}-workers": [
                            {"instance_id": {"S": iid}, "state": {"S": "IDLE"}} for iid in POOL
                        ]
                    }
                },
            )
        ],
        "logs": [("get_log_events", events) for _ in POOL],
        "sns": [("list_subscriptions_by_topic", {"Subscriptions": subscriptions})],
        "stepfunctions": [
            (
                "describe_state_machine",
                {
                    "stateMachineArn": MACHINE,
                    "name": names.state_machine_name(STACK),
                    "definition": "{}",
                    "type": "STANDARD",
                    "roleArn": "arn:aws:iam::111122223333:role/r",
                    "creationDate": NOW,
                    "loggingConfiguration": {
                        "level": account.logging_level,
                        "includeExecutionData": True,
                        "destinations": (
                            [{"cloudWatchLogsLogGroup": {"logGroupArn": "arn:aws:logs:x"}}]
                            if account.logging_level != "OFF"
                            else []
                        ),
                    },
                },
            )
        ],
        "service-quotas": [
            ("get_service_quota", quota(account.lambda_quota)),
            ("get_service_quota", quota(account.vcpu_quota)),
        ],
        "lambda": [("get_function_concurrency", {}) for _ in names.HANDLERS],
        "sesv2": (
            [
                (
                    "get_email_identity",
                    {"VerificationStatus": "SUCCESS", "VerifiedForSendingStatus": True},
                ),
                ("get_account", {"ProductionAccessEnabled": account.ses_production}),
            ]
            if account.sender
            else []
        ),
    }
    return answers


class StubbedFacts(DoctorFacts):
    """DoctorFacts whose clients are stubbed, one per service, made once."""

    def __init__(self, account: Account) -> None:
        session = boto3.session.Session(
            aws_access_key_id="x", aws_secret_access_key="x", region_name=REGION
        )
        super().__init__(session)
        self.clients: dict[str, Any] = {}
        self.stubbers: list[Stubber] = []
        for service, calls in replies(account).items():
            client = session.client(service)  # type: ignore[call-overload]
            stubber = Stubber(client)
            for operation, answer in calls:
                code = account.errors.get(service, {}).get(operation)
                if code:
                    stubber.add_client_error(operation, code, f"{code} for this test")
                else:
                    stubber.add_response(operation, answer)
            stubber.activate()
            self.clients[service] = client
            self.stubbers.append(stubber)

    def client(self, service: str) -> Any:
        return self.clients[service]


def run(account: Account) -> dict[str, doctor.Finding]:
    facts = StubbedFacts(account).stack(STACK)
    return {f.check: f for f in doctor.diagnose(facts, NOW)}


def test_a_healthy_stack_is_ok_on_every_check() -> None:
    found = run(Account())
    assert {check: f.status for check, f in found.items()} == dict.fromkeys(found, doctor.OK)
    assert "darkroom 0.1.0" in found["pool"].detail
    assert "10 days old" in found["worker AMI"].detail
    assert "needs 8 vCPUs" in found["EC2 vCPU quota"].detail


def test_a_stale_ami_a_pending_subscription_and_the_ses_sandbox_warn() -> None:
    found = run(Account(ami_age_days=45, subscription="PendingConfirmation", ses_production=False))
    assert found["worker AMI"].status == doctor.WARN
    assert found["alarms"].status == doctor.WARN
    assert found["SES sender"].status == doctor.WARN
    assert doctor.exit_status(list(found.values())) == 0


def test_no_subscriber_logging_off_and_too_few_vcpus_fail() -> None:
    found = run(Account(subscription=None, logging_level="OFF", vcpu_quota=4.0, sender=None))
    assert found["alarms"].status == doctor.FAIL
    assert found["state machine logging"].status == doctor.FAIL
    assert found["EC2 vCPU quota"].status == doctor.FAIL
    assert found["SES sender"].status == doctor.SKIP
    assert found["SES sender"].detail == "not configured"
    assert doctor.exit_status(list(found.values())) == 1


def test_an_image_resolved_at_each_deploy_is_reported_unpinned() -> None:
    found = run(Account(unpinned=True))
    assert found["worker AMI"].status == doctor.WARN
    assert "not pinned" in found["worker AMI"].detail


@pytest.mark.parametrize(
    ("service", "operation", "code", "check"),
    [
        (
            "service-quotas",
            "get_service_quota",
            "AccessDeniedException",
            "Lambda concurrency quota",
        ),
        ("sns", "list_subscriptions_by_topic", "Throttling", "alarms"),
        ("logs", "get_log_events", "AccessDeniedException", "boot log"),
        (
            "stepfunctions",
            "describe_state_machine",
            "AccessDeniedException",
            "state machine logging",
        ),
    ],
)
def test_a_refused_call_makes_its_check_unknown_and_the_rest_still_run(
    service: str, operation: str, code: str, check: str
) -> None:
    found = run(Account(errors={service: {operation: code}}))
    assert found[check].status == doctor.UNKNOWN
    assert code in found[check].detail
    others = {c: f.status for c, f in found.items() if c != check}
    # The pool's own facts come from EC2 and DynamoDB: a refused log read leaves it
    # without versions, nothing more.
    assert set(others.values()) <= {doctor.OK, doctor.UNKNOWN}
    assert sum(s == doctor.OK for s in others.values()) >= len(others) - 1
    assert len(found) == 9


def test_a_stack_that_does_not_exist_is_a_clear_usage_mistake(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session = boto3.session.Session(
        aws_access_key_id="x", aws_secret_access_key="x", region_name=REGION
    )
    cfn = session.client("cloudformation")
    stubber = Stubber(cfn)
    stubber.add_client_error(
        "describe_stacks", "ValidationError", f"Stack with id {STACK} does not exist"
    )
    stubber.activate()
    facts = DoctorFacts(session)
    monkeypatch.setattr(facts, "client", lambda service: cfn)
    with pytest.raises(CannotCheck, match=f"no stack '{STACK}' in {REGION}"):
        facts.stack(STACK)


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[None]:
    import os

    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    # No instance metadata to fall back on: the credential chain ends at once.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli.app, list(args), prog_name="darkroom")


def test_the_cli_without_credentials_says_how_to_give_them(no_aws: None) -> None:
    result = invoke("doctor", "--stack", STACK, "--region", REGION)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "no AWS credentials" in " ".join(result.output.split())


def test_the_cli_without_a_region_says_to_give_one(no_aws: None) -> None:
    result = invoke("doctor", "--stack", STACK)
    assert result.exit_code == 2, result.output
    assert "no AWS region: give --region" in " ".join(result.output.split())


def test_the_cli_on_an_unknown_stack_names_it_and_the_region(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def missing(self: DoctorFacts, stack: str) -> doctor.StackFacts:
        raise CannotCheck(
            f"no stack {stack!r} in {self.session.region_name}: give the deployed stack's name"
        )

    monkeypatch.setattr(doctor_facts.DoctorFacts, "stack", missing)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    result = invoke("doctor", "--stack", "no-such", "--region", REGION)
    assert result.exit_code == 2
    assert "no stack 'no-such' in eu-west-1" in " ".join(result.output.split())


def test_the_cli_prints_each_finding_with_its_fix_and_exits_one_on_a_fail(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    account = Account(subscription=None)
    real = DoctorFacts.stack
    monkeypatch.setattr(
        doctor_facts.DoctorFacts, "stack", lambda self, stack: real(StubbedFacts(account), stack)
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    result = invoke("doctor", "--stack", STACK, "--region", REGION)
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "fail alarms: no one is subscribed" in text
    assert "fix: set alarm_email" in text
    as_json = invoke("doctor", "--stack", STACK, "--region", REGION, "--json")
    statuses = {f["check"]: f["status"] for f in json.loads(as_json.output)["findings"]}
    assert statuses["alarms"] == "fail" and statuses["outputs"] == "ok"


def test_the_cli_with_a_refused_quota_call_reports_it_and_every_other_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    account = Account(errors={"service-quotas": {"get_service_quota": "AccessDeniedException"}})
    real = DoctorFacts.stack
    monkeypatch.setattr(
        doctor_facts.DoctorFacts, "stack", lambda self, stack: real(StubbedFacts(account), stack)
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    result = invoke("doctor", "--stack", STACK, "--region", REGION)
    text = " ".join(result.output.split())
    assert result.exit_code == 1
    assert "Traceback" not in text
    assert "unknown Lambda concurrency quota: could not check:" in text
    assert "servicequotas:GetServiceQuota" in text
    assert "AccessDeniedException" in text
    assert "ok alarms" in text and "ok SES sender" in text
