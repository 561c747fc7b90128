"""What `darkroom doctor` looks at, gathered from AWS (or the local cloud) with boto3.

Every call goes through `_call`: a refusal (AccessDenied, throttling, a service that is
down) becomes darkroom.doctor.Unavailable for the checks that needed it, so the rest
still run. Only "no such stack" and "no credentials" stop doctor: nothing can be checked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from darkroom import doctor, names, software
from darkroom.aws.clients import error_code
from darkroom.aws.lease_store import LeaseStore
from darkroom.doctor import BootLog, Fact, Image, PoolInstance, StackFacts, Unavailable

T = TypeVar("T")
# A worker log stream's tail: several boots' setup and start lines, far more than one.
BOOT_LOG_EVENTS = 300
POOL_FILTER: dict[str, Any] = {
    "Name": f"tag:{names.WORKER_POOL_TAG_KEY}",
    "Values": [names.WORKER_POOL_TAG_VALUE],
}
LIVE_STATES = ("pending", "running", "stopping", "stopped")


class CannotCheck(Exception):
    """Nothing can be checked (no such stack, no credentials): a usage mistake."""


def _call(name: str, body: Callable[[], T]) -> Fact[T]:
    try:
        return body()
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", "")
        return Unavailable(name, f"{error_code(exc)}: {message}".rstrip(": "))
    except BotoCoreError as exc:
        return Unavailable(name, f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # an adapter's own error (darkroom.errors): still reported
        return Unavailable(name, f"{type(exc).__name__}: {exc}")


def _parse_time(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if not value:
        return None
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


class DoctorFacts:
    def __init__(self, session: boto3.session.Session, endpoint_url: str | None = None) -> None:
        self.session = session
        self.endpoint_url = endpoint_url
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        """One client per service (making one costs a good part of a second)."""
        from botocore.config import Config

        if service not in self._clients:
            # Few retries: a throttled check is reported as such rather than waited out.
            config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5)
            self._clients[service] = self.session.client(  # type: ignore[call-overload]
                service, endpoint_url=self.endpoint_url, config=config
            )
        return self._clients[service]

    # -- a deployed stack --------------------------------------------------------
    def stack(self, stack: str) -> StackFacts:
        described = self._describe_stack(stack)
        outputs: Fact[dict[str, str]]
        parameters: Fact[list[str]]
        if isinstance(described, Unavailable):
            outputs = parameters = described
        else:
            outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
            parameters = [p["ParameterKey"] for p in described.get("Parameters", [])]
        got = outputs if isinstance(outputs, dict) else {}
        ids = [i for i in got.get(doctor.WORKER_INSTANCE_IDS_OUTPUT, "").split(",") if i]
        instances = self._instances(stack, ids, got.get(names.Output.WORKERS_TABLE))
        described_instances = instances if isinstance(instances, list) else []
        logs = self._boot_logs(stack, [i.instance_id for i in described_instances])
        if isinstance(logs, list) and isinstance(instances, list):
            software = {log.instance_id: doctor.software_of(log.lines) for log in logs}
            instances = [
                _with_software(i, software.get(i.instance_id)) for i in described_instances
            ]
        image_ids = sorted({i.image_id for i in described_instances})
        topic = got.get(doctor.ALARM_TOPIC_OUTPUT)
        sender = got.get(names.Output.SENDER_IDENTITY)
        if sender == names.OUTPUT_NONE:
            sender = None  # the stack sends no mail
        arn = got.get(names.Output.STATE_MACHINE_ARN)
        types = sorted({i.instance_type for i in described_instances})
        facts = StackFacts(
            outputs=outputs,
            instances=instances,
            expected_instances=len(ids) or None,
            image=self._image(image_ids[0]) if image_ids else None,
            image_pinned=(
                parameters
                if isinstance(parameters, Unavailable)
                else not any(p.startswith(doctor.UNPINNED_IMAGE_PARAMETER) for p in parameters)
            ),
            boot_logs=logs,
            alarm_topic=topic,
            subscriptions=self._subscriptions(topic) if topic else (),
            logging=(
                self._logging(arn)
                if arn
                else Unavailable("states:DescribeStateMachine", "the stack has no StateMachineArn")
            ),
            lambda_quota=self._quota(doctor.LAMBDA_SERVICE, doctor.LAMBDA_CONCURRENCY_QUOTA),
            lambda_reserved=self._reserved(stack),
            vcpu_quota=self._quota(doctor.EC2_SERVICE, doctor.EC2_STANDARD_VCPU_QUOTA),
            vcpus=self._vcpus(types) if types else {},
            sender=sender,
        )
        if sender:
            facts.sender_status = self._sender_status(sender)
            facts.ses_production = _call(
                "ses:GetAccount",
                lambda: bool(self.client("sesv2").get_account().get("ProductionAccessEnabled")),
            )
        return facts

    def _describe_stack(self, stack: str) -> Fact[dict[str, Any]]:
        try:
            answer = self.client("cloudformation").describe_stacks(StackName=stack)
        except NoCredentialsError as exc:
            raise CannotCheck(
                "no AWS credentials: give --profile, or set AWS_PROFILE (or run aws sso login)"
            ) from exc
        except NoRegionError as exc:
            raise CannotCheck("no AWS region: give --region, or a --profile with one") from exc
        except ClientError as exc:
            message = exc.response.get("Error", {}).get("Message", "")
            if error_code(exc) == "ValidationError" and "does not exist" in message:
                region = self.session.region_name
                raise CannotCheck(
                    f"no stack {stack!r} in {region}: give the deployed stack's name "
                    "(--stack; its stack_name context) and its --region"
                ) from exc
            return Unavailable("cloudformation:DescribeStacks", f"{error_code(exc)}: {message}")
        except BotoCoreError as exc:
            return Unavailable("cloudformation:DescribeStacks", f"{type(exc).__name__}: {exc}")
        stacks: list[dict[str, Any]] = answer["Stacks"]
        return stacks[0]

    def _instances(
        self, stack: str, ids: Sequence[str], workers_table: str | None
    ) -> Fact[list[PoolInstance]]:
        ec2 = self.client("ec2")
        if ids:
            request: dict[str, Any] = {"InstanceIds": list(ids)}
        else:
            # No WorkerInstanceIds output: the pool's own tag, in this stack.
            request = {
                "Filters": [
                    {
                        "Name": f"tag:{names.WORKER_POOL_TAG_KEY}",
                        "Values": [names.WORKER_POOL_TAG_VALUE],
                    },
                    {"Name": "tag:aws:cloudformation:stack-name", "Values": [stack]},
                ]
            }
        described = _call("ec2:DescribeInstances", lambda: _all_instances(ec2, request))
        if isinstance(described, Unavailable):
            return described
        leases = self._leases(workers_table, [i["InstanceId"] for i in described])
        return [_pool_instance(i, leases) for i in described]

    def _leases(self, table: str | None, ids: list[str]) -> dict[str, tuple[str, str | None]]:
        if not table or not ids:
            return {}
        got = _call(
            "dynamodb:BatchGetItem",
            lambda: LeaseStore(table, self.client("dynamodb")).of(ids),
        )
        if isinstance(got, Unavailable):
            return {}
        return {lease.instance_id: (lease.state.value, lease.job_id) for lease in got}

    def _boot_logs(self, stack: str, ids: list[str]) -> Fact[list[BootLog]]:
        logs = self.client("logs")
        group = names.worker_log_group(stack)
        found: list[BootLog] = []
        for instance_id in ids:
            try:
                events = logs.get_log_events(
                    logGroupName=group,
                    logStreamName=instance_id,
                    limit=BOOT_LOG_EVENTS,
                    startFromHead=False,
                )["events"]
            except ClientError as exc:
                if error_code(exc) == "ResourceNotFoundException":
                    found.append(BootLog(instance_id))  # never booted: no stream yet
                    continue
                return Unavailable("logs:GetLogEvents", f"{error_code(exc)}: {exc}")
            except BotoCoreError as exc:
                return Unavailable("logs:GetLogEvents", str(exc))
            lines = [str(e.get("message", "")) for e in events]
            found.append(BootLog(instance_id, tuple(doctor.latest_boot(lines))))
        return found

    def _image(self, image_id: str) -> Fact[Image | None]:
        def describe() -> Image | None:
            images = self.client("ec2").describe_images(ImageIds=[image_id])["Images"]
            if not images:
                return None
            got = images[0]
            return Image(
                image_id,
                got.get("Name", ""),
                _parse_time(got.get("CreationDate")),
                _parse_time(got.get("DeprecationTime")),
            )

        return _call("ec2:DescribeImages", describe)

    def _subscriptions(self, topic: str) -> Fact[list[dict[str, str]]]:
        def listed() -> list[dict[str, str]]:
            sns = self.client("sns")
            found: list[dict[str, str]] = []
            request: dict[str, str] = {"TopicArn": topic}
            while True:
                page = sns.list_subscriptions_by_topic(**request)
                found += page.get("Subscriptions", [])
                if not page.get("NextToken"):
                    return found
                request["NextToken"] = page["NextToken"]

        return _call("sns:ListSubscriptionsByTopic", listed)

    def _logging(self, arn: str) -> Fact[dict[str, Any] | None]:
        return _call(
            "states:DescribeStateMachine",
            lambda: (
                self.client("stepfunctions")
                .describe_state_machine(stateMachineArn=arn)
                .get("loggingConfiguration")
            ),
        )

    def _quota(self, service: str, code: str) -> Fact[float]:
        quotas = self.client("service-quotas")

        def value() -> float:
            try:
                answer = quotas.get_service_quota(ServiceCode=service, QuotaCode=code)
            except ClientError as exc:
                # Never raised in this account: the default applies.
                if error_code(exc) != "NoSuchResourceException":
                    raise
                answer = quotas.get_aws_default_service_quota(ServiceCode=service, QuotaCode=code)
            return float(answer["Quota"]["Value"])

        return _call("servicequotas:GetServiceQuota", value)

    def _reserved(self, stack: str) -> Fact[int]:
        lam = self.client("lambda")

        def total() -> int:
            reserved = 0
            for function in names.HANDLERS:
                try:
                    got = lam.get_function_concurrency(FunctionName=names.in_stack(function, stack))
                except ClientError as exc:
                    if error_code(exc) == "ResourceNotFoundException":
                        continue
                    raise
                reserved += int(got.get("ReservedConcurrentExecutions") or 0)
            return reserved

        return _call("lambda:GetFunctionConcurrency", total)

    def _vcpus(self, types: list[str]) -> Fact[dict[str, int]]:
        def described() -> dict[str, int]:
            answer = self.client("ec2").describe_instance_types(InstanceTypes=types)
            return {
                t["InstanceType"]: int(t["VCpuInfo"]["DefaultVCpus"])
                for t in answer["InstanceTypes"]
            }

        return _call("ec2:DescribeInstanceTypes", described)

    def _sender_status(self, identity: str) -> Fact[str]:
        def status() -> str:
            got = self.client("sesv2").get_email_identity(EmailIdentity=identity)
            if "VerificationStatus" in got:
                return str(got["VerificationStatus"])
            return "SUCCESS" if got.get("VerifiedForSendingStatus") else "PENDING"

        return _call("ses:GetEmailIdentity", status)

    def _local_state_machine(self) -> str | None:
        return _local_state_machine_arn(self.client("stepfunctions"))

    # -- the embedded local cloud -----------------------------------------------
    def local(self, region: str) -> StackFacts:
        """What applies to the local cloud: its resources behind each output, and the pool."""
        from darkroom.cli.studio_client import local_api_url

        try:
            self.client("sts").get_caller_identity()
        except BotoCoreError as exc:  # nothing listening there
            raise CannotCheck(
                f"no local cloud answers at {self.endpoint_url}: start one (darkroom local up) "
                "and give the AwsEndpointUrl it prints"
            ) from exc
        outputs: dict[str, str] = {}
        if self.endpoint_url:
            outputs[names.Output.AWS_ENDPOINT] = self.endpoint_url
        s3, ddb = self.client("s3"), self.client("dynamodb")
        checks: dict[str, tuple[str, Callable[[], Any]]] = {
            names.Output.RAW_BUCKET: (
                names.RAW_BUCKET,
                lambda: s3.head_bucket(Bucket=names.RAW_BUCKET),
            ),
        }
        for output, bucket in (
            (names.Output.RAW_BUCKET, names.RAW_BUCKET),
            (names.Output.PROCESSED_BUCKET, names.PROCESSED_BUCKET),
            (names.Output.INPUT_BUCKET, names.INPUT_BUCKET),
            (names.Output.OUTPUT_BUCKET, names.OUTPUT_BUCKET),
        ):
            checks[output] = (bucket, lambda b=bucket: s3.head_bucket(Bucket=b))  # type: ignore[misc]
        for output, table in (
            (names.Output.JOBS_TABLE, names.JOBS_TABLE),
            (names.Output.WORKERS_TABLE, names.WORKERS_TABLE),
            (names.Output.UPLOADS_TABLE, names.UPLOADS_TABLE),
            (names.Output.SHARES_TABLE, names.SHARES_TABLE),
        ):
            checks[output] = (table, lambda t=table: ddb.describe_table(TableName=t))  # type: ignore[misc]
        for output, (value, probe) in checks.items():
            if not isinstance(_call(output, probe), Unavailable):
                outputs[output] = value
        machine = _call("states:ListStateMachines", self._local_state_machine)
        if isinstance(machine, str):
            outputs[names.Output.STATE_MACHINE_ARN] = machine
        if self.endpoint_url:
            api = _call(
                "apigatewayv2:GetApis", lambda: local_api_url(self.endpoint_url or "", region)
            )
            if isinstance(api, str):
                outputs[names.Output.API_URL] = api
        ec2 = self.client("ec2")
        request = {
            "Filters": [
                {
                    "Name": f"tag:{names.WORKER_POOL_TAG_KEY}",
                    "Values": [names.WORKER_POOL_TAG_VALUE],
                },
                {
                    "Name": "instance-state-name",
                    "Values": ["pending", "running", "stopping", "stopped"],
                },
            ]
        }
        described = _call("ec2:DescribeInstances", lambda: _all_instances(ec2, request))
        instances: Fact[list[PoolInstance]] = Unavailable("ec2:DescribeInstances", "")
        if isinstance(described, Unavailable):
            instances = described
        else:
            leases = self._leases(names.WORKERS_TABLE, [i["InstanceId"] for i in described])
            # Local workers are processes of this checkout: its version is theirs.
            here = software.installed()
            instances = [_with_software(_pool_instance(i, leases), here) for i in described]
        return StackFacts(outputs=outputs, instances=instances, local=True)


def _local_state_machine_arn(sfn: Any) -> str | None:
    for page in sfn.get_paginator("list_state_machines").paginate():
        for machine in page["stateMachines"]:
            if machine["name"] == names.state_machine_name():
                return str(machine["stateMachineArn"])
    return None


def _all_instances(ec2: Any, request: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for page in ec2.get_paginator("describe_instances").paginate(**request):
        for reservation in page["Reservations"]:
            found += reservation["Instances"]
    return sorted(found, key=lambda i: str(i["InstanceId"]))


def _pool_instance(
    described: dict[str, Any], leases: dict[str, tuple[str, str | None]]
) -> PoolInstance:
    iid = described["InstanceId"]
    lease, job = leases.get(iid, (None, None))
    return PoolInstance(
        instance_id=iid,
        state=described["State"]["Name"],
        instance_type=described.get("InstanceType", ""),
        image_id=described.get("ImageId", ""),
        availability_zone=described.get("Placement", {}).get("AvailabilityZone", ""),
        lease=lease,
        job_id=job,
    )


def _with_software(instance: PoolInstance, software: dict[str, str] | None) -> PoolInstance:
    from dataclasses import replace

    return replace(instance, software=software)
