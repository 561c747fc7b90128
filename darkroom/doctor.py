"""`darkroom doctor`: what a person checks after a deploy, as small pure functions.

Each check takes the facts darkroom.aws.doctor_facts gathered (plain data) and returns
a Finding: ok, warn or fail, with the fix in one line. A fact that could not be
gathered (AccessDenied, throttling) arrives as Unavailable and its check says
"unknown" with the reason, so one refused call never hides the other checks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias, TypeVar, Union

from darkroom import names

OK: Final = "ok"
WARN: Final = "warn"
FAIL: Final = "fail"
# Could not be checked: a call failed. Counts against the exit status like a fail:
# doctor answers 0 only when everything it looks at was seen and is fine.
UNKNOWN: Final = "unknown"
SKIP: Final = "skip"
FAILING: Final = frozenset({FAIL, UNKNOWN})

# Stack outputs beyond darkroom.names.Output that doctor reads (cdk.config.ExtraOutput
# declares them; a unit test keeps the two equal without darkroom importing cdk).
ALARM_TOPIC_OUTPUT: Final = "AlarmTopicArn"
WORKER_INSTANCE_IDS_OUTPUT: Final = "WorkerInstanceIds"
# What a deployed stack must output: names.Output but the local cloud's endpoint and the
# optional sender identity, and what doctor itself reads.
OPTIONAL_OUTPUTS: Final = frozenset({names.Output.AWS_ENDPOINT, names.Output.SENDER_IDENTITY})
REQUIRED_OUTPUTS: Final = (
    *(v for k, v in vars(names.Output).items() if k.isupper() and v not in OPTIONAL_OUTPUTS),
    ALARM_TOPIC_OUTPUT,
    WORKER_INSTANCE_IDS_OUTPUT,
)
# The local cloud's: what `darkroom local up` prints (its endpoint too, no alarms).
LOCAL_OUTPUTS: Final = tuple(
    value
    for key, value in vars(names.Output).items()
    if key.isupper() and value != names.Output.SENDER_IDENTITY
)

# Service Quotas codes: Lambda's concurrent executions, and EC2's Running On-Demand
# Standard (A, C, D, H, I, M, R, T, Z) instances, counted in vCPUs.
LAMBDA_SERVICE: Final = "lambda"
LAMBDA_CONCURRENCY_QUOTA: Final = "L-B99A9384"
EC2_SERVICE: Final = "ec2"
EC2_STANDARD_VCPU_QUOTA: Final = "L-1216C47A"
STANDARD_FAMILIES: Final = frozenset("acdhimrtz")
# Lambda keeps this much concurrency unreserved; under it (a new account's 10) a busy
# upload's thumbnails and a job's steps are throttled.
LAMBDA_CONCURRENCY_FLOOR: Final = 100
# The stack parameter CDK adds when an image is resolved from SSM at each deploy.
UNPINNED_IMAGE_PARAMETER: Final = "SsmParameterValueawsserviceami"
# What in the worker's boot log says the boot went wrong: the worker's own lines are JSON,
# an error is one of level ERROR or CRITICAL (a file that failed to develop is a WARNING,
# whatever its message says); the setup scripts' and pip's are plain text.
ERROR_LEVELS: Final = frozenset({"ERROR", "CRITICAL"})
BOOT_ERROR_MARKERS: Final = (
    "Traceback (most recent call last)",
    "ERROR:",
    "error:",
    "darkroom: scratch volume",
    "Failed to start",
    "No space left on device",
)


@dataclass(frozen=True)
class Unavailable:
    """A fact that could not be gathered: the call that failed and what it answered."""

    call: str
    reason: str


T = TypeVar("T")
# A fact, or why it could not be gathered.
Fact: TypeAlias = Union[T, Unavailable]  # noqa: UP007 - a generic alias needs Union on 3.11


@dataclass(frozen=True)
class Finding:
    check: str
    status: str
    detail: str
    fix: str = ""

    def as_json(self) -> dict[str, str]:
        return {"check": self.check, "status": self.status, "detail": self.detail, "fix": self.fix}


@dataclass(frozen=True)
class PoolInstance:
    instance_id: str
    state: str  # EC2's: pending, running, stopping, stopped, shutting-down, terminated
    instance_type: str
    image_id: str
    availability_zone: str = ""
    lease: str | None = None  # the lease's state (IDLE, LEASED), None without a row
    job_id: str | None = None
    # From the instance's latest "worker up" log line; None if it never started one.
    software: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Image:
    image_id: str
    name: str
    created: dt.datetime | None
    deprecated: dt.datetime | None = None


@dataclass(frozen=True)
class BootLog:
    """The tail of one instance's worker log stream (setup unit, then the worker)."""

    instance_id: str
    lines: Sequence[str] = field(default_factory=tuple)


def unknown(check: str, fact: Unavailable) -> Finding:
    if any(word in fact.reason for word in ("AccessDenied", "Unauthorized", "not authorized")):
        fix = f"allow {fact.call} to whoever runs doctor (README: After a deploy)"
    elif "Throttl" in fact.reason or "TooManyRequests" in fact.reason:
        fix = "run doctor again in a minute (AWS throttled the call)"
    else:
        fix = "run doctor again; if it persists, check the network and the AWS Health Dashboard"
    return Finding(check, UNKNOWN, f"could not check: {fact.call} answered {fact.reason}", fix)


def _guard(check: str, *facts: Any) -> Finding | None:
    for fact in facts:
        if isinstance(fact, Unavailable):
            return unknown(check, fact)
    return None


def outputs_present(
    outputs: Fact[Mapping[str, str]],
    required: Sequence[str] = REQUIRED_OUTPUTS,
    fix: str = "deploy this version of the app (cd cdk && npx aws-cdk@2 deploy)",
) -> Finding:
    check = "outputs"
    if found := _guard(check, outputs):
        return found
    assert not isinstance(outputs, Unavailable)
    missing = [key for key in required if not outputs.get(key)]
    if missing:
        return Finding(
            check,
            FAIL,
            f"missing {', '.join(missing)}",
            fix,
        )
    return Finding(check, OK, f"all {len(required)} outputs present")


def pool_idle(instances: Fact[Sequence[PoolInstance]], expected: int | None = None) -> Finding:
    """Every pool instance stopped and its lease idle (or running a job that holds it);
    the software each last started, and whether they agree."""
    check = "pool"
    if found := _guard(check, instances):
        return found
    assert not isinstance(instances, Unavailable)
    if not instances:
        return Finding(check, FAIL, "no pool instance found", "deploy the stack again")
    problems: list[str] = []
    busy: list[str] = []
    status = OK
    for instance in instances:
        iid, state = instance.instance_id, instance.state
        if state in {"terminated", "shutting-down"}:
            problems.append(f"{iid} is {state}")
            status = FAIL
        elif state == "running" and instance.lease == "LEASED":
            busy.append(f"{iid} running job {instance.job_id or '?'}")
        elif state != "stopped":
            problems.append(f"{iid} is {state} with no job")
            status = status if status == FAIL else WARN
        elif instance.lease == "LEASED":
            problems.append(f"{iid} is stopped but leased to job {instance.job_id or '?'}")
            status = status if status == FAIL else WARN
    if expected is not None and len(instances) != expected:
        problems.append(f"{len(instances)} instances, the stack declares {expected}")
        status = FAIL
    versions = {
        ", ".join(f"{k} {v}" for k, v in sorted(i.software.items()))
        for i in instances
        if i.software
    }
    never = [i.instance_id for i in instances if i.software is None]
    if len(versions) > 1:
        problems.append("instances run different software: " + " | ".join(sorted(versions)))
        status = status if status == FAIL else WARN
    version = (
        f"software {next(iter(versions))}" if len(versions) == 1 else "software not reported yet"
    )
    if never and versions:
        version += f" ({len(never)} not started since the deploy)"
    count = f"{len(instances)} instance{'s' if len(instances) != 1 else ''}"
    summary = f"{count}; {version}"
    if busy:
        summary += "; " + "; ".join(busy)
    if problems:
        fix = (
            "terminated instances come back with a deploy; a running instance with no job "
            "is stopped by the cost guard (or: aws ec2 stop-instances); different "
            "software settles as each instance starts again"
        )
        return Finding(check, status, summary + "; " + "; ".join(problems), fix)
    return Finding(check, OK, summary)


def ami_age(
    image: Fact[Image | None],
    pinned: Fact[bool],
    now: dt.datetime,
    patch_days: int = names.WORKER_AMI_PATCH_DAYS,
) -> Finding:
    check = "worker AMI"
    if found := _guard(check, image, pinned):
        return found
    assert not isinstance(image, Unavailable) and not isinstance(pinned, Unavailable)
    if image is None:
        return Finding(
            check, FAIL, "the pool's image no longer exists", "pin a current one (worker_ami_id)"
        )
    notes: list[str] = []
    status = OK
    if image.created is not None:
        age = (now - image.created).days
        notes.append(f"{image.image_id} ({image.name or 'no name'}) is {age} days old")
        if age > patch_days:
            status = WARN
            notes.append(f"past the {patch_days}-day patch cadence")
    else:
        notes.append(f"{image.image_id}: creation date unknown")
    if image.deprecated is not None and image.deprecated <= now:
        status = WARN
        notes.append(f"deprecated since {image.deprecated.date()}")
    if not pinned:
        status = WARN
        notes.append("not pinned: a deploy after a new Amazon Linux release replaces the pool")
    fix = (
        "move the pin (README: Patching the workers): set worker_ami_id to the current "
        "AL2023 image, or reset the one cdk.context.json keeps, and deploy"
        if status != OK
        else ""
    )
    return Finding(check, status, "; ".join(notes), fix)


def is_error_line(line: str) -> bool:
    import json

    text = line.strip()
    if text.startswith("{"):
        try:
            record = json.loads(text)
        except ValueError:
            record = None
        if isinstance(record, dict):
            return str(record.get("level", "")).upper() in ERROR_LEVELS
    return any(marker in text for marker in BOOT_ERROR_MARKERS)


def boot_logs_clean(logs: Fact[Sequence[BootLog]]) -> Finding:
    """The latest boot of each instance: setup and worker start without an error."""
    check = "boot log"
    if found := _guard(check, logs):
        return found
    assert not isinstance(logs, Unavailable)
    never = [log.instance_id for log in logs if not log.lines]
    dirty: list[str] = []
    for log in logs:
        bad = [line for line in log.lines if is_error_line(line)]
        if bad:
            dirty.append(f"{log.instance_id}: {bad[-1].strip()[:200]}")
    if dirty:
        return Finding(
            check,
            FAIL,
            "; ".join(dirty),
            "read the whole log: aws logs tail <worker log group> --log-stream-names "
            "<instance id>; fix, then start the instance again (the setup is re-run)",
        )
    booted = len(logs) - len(never)
    if booted == 0:
        return Finding(
            check,
            WARN,
            "no instance has booted yet",
            "run a small job (darkroom demo uploads one) and check again",
        )
    detail = f"{booted} instance(s) booted clean"
    if never:
        detail += f"; not booted yet: {', '.join(never)}"
    return Finding(check, OK, detail)


def alarms_subscribed(
    topic_arn: str | None, subscriptions: Fact[Sequence[Mapping[str, str]]]
) -> Finding:
    check = "alarms"
    if topic_arn is None:
        return Finding(check, FAIL, "the stack has no alarm topic", "deploy this version")
    if found := _guard(check, subscriptions):
        return found
    assert not isinstance(subscriptions, Unavailable)
    confirmed = [s for s in subscriptions if s.get("SubscriptionArn", "").startswith("arn:")]
    pending = [s for s in subscriptions if s.get("SubscriptionArn") == "PendingConfirmation"]
    if confirmed:
        whom = ", ".join(s.get("Endpoint", "?") for s in confirmed)
        return Finding(check, OK, f"{len(confirmed)} confirmed subscription(s): {whom}")
    if pending:
        whom = ", ".join(s.get("Endpoint", "?") for s in pending)
        return Finding(
            check,
            WARN,
            f"subscription not confirmed yet: {whom}",
            "open the mail from AWS Notifications and click Confirm subscription",
        )
    return Finding(
        check,
        FAIL,
        "no one is subscribed: alarms reach nobody",
        "set alarm_email (cdk deploy -c alarm_email=ops@studio.example) and confirm the mail",
    )


def state_machine_logging(config: Fact[Mapping[str, Any] | None]) -> Finding:
    check = "state machine logging"
    if found := _guard(check, config):
        return found
    assert not isinstance(config, Unavailable)
    level = (config or {}).get("level", "OFF")
    destinations = (config or {}).get("destinations") or []
    if level == "OFF" or not destinations:
        return Finding(
            check,
            FAIL,
            f"level {level}, {len(destinations)} destination(s)",
            "deploy this version: the stack turns logging on (level ALL to the vended log group)",
        )
    data = "with" if (config or {}).get("includeExecutionData") else "without"
    return Finding(check, OK, f"level {level} {data} execution data")


def lambda_concurrency(quota: Fact[float], reserved: Fact[int]) -> Finding:
    check = "Lambda concurrency quota"
    if found := _guard(check, quota, reserved):
        return found
    assert not isinstance(quota, Unavailable) and not isinstance(reserved, Unavailable)
    fix = (
        "request more: Service Quotas > AWS Lambda > Concurrent executions "
        f"({LAMBDA_CONCURRENCY_QUOTA}), 1000 is the usual"
    )
    if reserved and quota - reserved < LAMBDA_CONCURRENCY_FLOOR:
        return Finding(
            check,
            FAIL,
            f"{quota:g} with {reserved} reserved leaves under {LAMBDA_CONCURRENCY_FLOOR}",
            fix + "; or deploy with thumbnail_reserved_concurrency=0",
        )
    if quota < LAMBDA_CONCURRENCY_FLOOR:
        return Finding(
            check, WARN, f"{quota:g}: a new account's; uploads and jobs will be throttled", fix
        )
    return Finding(check, OK, f"{quota:g} concurrent executions ({reserved} reserved)")


def vcpu_quota(
    quota: Fact[float], vcpus: Fact[Mapping[str, int]], pool_types: Sequence[str]
) -> Finding:
    """Enough On-Demand vCPUs for the whole pool running at once, at its largest type."""
    check = "EC2 vCPU quota"
    if found := _guard(check, quota, vcpus):
        return found
    assert not isinstance(quota, Unavailable) and not isinstance(vcpus, Unavailable)
    if not pool_types:
        return Finding(check, SKIP, "no pool instance to size")
    other = sorted({t for t in pool_types if t.split(".")[0][:1] not in STANDARD_FAMILIES})
    needed = sum(vcpus.get(t, 0) for t in pool_types)
    unknown_types = sorted({t for t in pool_types if t not in vcpus})
    kinds = ", ".join(sorted(set(pool_types)))
    detail = f"the pool needs {needed} vCPUs ({len(pool_types)} x {kinds}); quota {quota:g}"
    if unknown_types:
        return Finding(check, WARN, detail + f"; vCPUs of {', '.join(unknown_types)} unknown")
    if other:
        return Finding(
            check,
            WARN,
            f"{', '.join(other)} count against another quota than {EC2_STANDARD_VCPU_QUOTA}",
            "check that family's On-Demand quota in Service Quotas",
        )
    if needed > quota:
        return Finding(
            check,
            FAIL,
            detail,
            "request more: Service Quotas > Amazon EC2 > Running On-Demand Standard instances "
            f"({EC2_STANDARD_VCPU_QUOTA}), or deploy a smaller pool_size",
        )
    if needed > quota * 0.8:
        return Finding(
            check,
            WARN,
            detail + "; other instances in the account share it",
            f"request more ({EC2_STANDARD_VCPU_QUOTA}) if anything else runs in this region",
        )
    return Finding(check, OK, detail)


def sender_identity(
    identity: str | None,
    verified: Fact[str],
    production: Fact[bool],
) -> Finding:
    """The SES identity delivery mail is sent from: verified, and out of the sandbox."""
    check = "SES sender"
    if not identity:
        return Finding(check, SKIP, "not configured")
    if found := _guard(check, verified, production):
        return found
    assert not isinstance(verified, Unavailable) and not isinstance(production, Unavailable)
    if verified != "SUCCESS":
        return Finding(
            check,
            FAIL,
            f"{identity}: verification {verified.lower()}",
            "publish the DKIM records SES lists for it (SES console > Identities), or click "
            "the verification mail",
        )
    if not production:
        return Finding(
            check,
            WARN,
            f"{identity} verified; the account is in the SES sandbox (mail only to verified "
            "addresses)",
            "request production access: SES console > Account dashboard",
        )
    return Finding(check, OK, f"{identity} verified, production access")


def not_here(check: str, why: str) -> Finding:
    return Finding(check, SKIP, why)


def exit_status(findings: Sequence[Finding]) -> int:
    return 1 if any(f.status in FAILING for f in findings) else 0


def run_check(check: str, body: Callable[[], Finding]) -> Finding:
    """A check whose facts raised something unforeseen: reported, never a traceback."""
    try:
        return body()
    except Exception as exc:  # a doctor finishes its round
        return Finding(check, UNKNOWN, f"could not check: {type(exc).__name__}: {exc}")


def latest_boot(lines: Sequence[str]) -> list[str]:
    """The lines of the instance's latest boot: after the "worker down" that ended the
    boot before it (an idle instance's stream ends with its own "worker down")."""
    downs = [i for i, line in enumerate(lines) if '"worker down"' in line]
    if downs and downs[-1] == len(lines) - 1:
        downs = downs[:-1]
    return list(lines[downs[-1] + 1 :] if downs else lines)


def software_of(lines: Sequence[str]) -> dict[str, str] | None:
    """The software the worker's latest start line names (worker/main.py)."""
    import json

    for line in reversed(lines):
        if names.WORKER_UP_MESSAGE not in line:
            continue
        try:
            record = json.loads(line[line.index("{") :])
        except ValueError:
            continue
        if record.get("message") == names.WORKER_UP_MESSAGE and isinstance(
            record.get("software"), dict
        ):
            return {str(k): str(v) for k, v in record["software"].items()}
    return None


@dataclass
class StackFacts:
    """What doctor looks at, as adapters gather it (darkroom.aws.doctor_facts)."""

    outputs: Fact[Mapping[str, str]]
    instances: Fact[Sequence[PoolInstance]]
    expected_instances: int | None = None
    local: bool = False
    image: Fact[Image | None] = None
    image_pinned: Fact[bool] = True
    boot_logs: Fact[Sequence[BootLog]] = ()
    alarm_topic: str | None = None
    subscriptions: Fact[Sequence[Mapping[str, str]]] = ()
    logging: Fact[Mapping[str, Any] | None] = None
    lambda_quota: Fact[float] = 0.0
    lambda_reserved: Fact[int] = 0
    vcpu_quota: Fact[float] = 0.0
    vcpus: Fact[Mapping[str, int]] = field(default_factory=dict)
    sender: str | None = None
    sender_status: Fact[str] = ""
    ses_production: Fact[bool] = False


def diagnose(facts: StackFacts, now: dt.datetime) -> list[Finding]:
    pool_types = (
        [i.instance_type for i in facts.instances]
        if not isinstance(facts.instances, Unavailable)
        else []
    )
    if facts.local:
        aws_only = "AWS only: the local cloud has none"
        return [
            run_check(
                "outputs",
                lambda: outputs_present(
                    facts.outputs,
                    LOCAL_OUTPUTS,
                    "start the local cloud again with --reset (its state directory lacks them)",
                ),
            ),
            run_check("pool", lambda: pool_idle(facts.instances, facts.expected_instances)),
            not_here("worker AMI", "AWS only: local workers run this checkout"),
            not_here(
                "boot log", "AWS only: local workers are processes (logs in the state directory)"
            ),
            not_here("alarms", aws_only),
            not_here(
                "state machine logging",
                "AWS only: the local console keeps every execution's history",
            ),
            not_here("Lambda concurrency quota", aws_only),
            not_here("EC2 vCPU quota", aws_only),
            not_here("SES sender", aws_only),
        ]
    return [
        run_check("outputs", lambda: outputs_present(facts.outputs)),
        run_check("pool", lambda: pool_idle(facts.instances, facts.expected_instances)),
        run_check("worker AMI", lambda: ami_age(facts.image, facts.image_pinned, now)),
        run_check("boot log", lambda: boot_logs_clean(facts.boot_logs)),
        run_check("alarms", lambda: alarms_subscribed(facts.alarm_topic, facts.subscriptions)),
        run_check("state machine logging", lambda: state_machine_logging(facts.logging)),
        run_check(
            "Lambda concurrency quota",
            lambda: lambda_concurrency(facts.lambda_quota, facts.lambda_reserved),
        ),
        run_check("EC2 vCPU quota", lambda: vcpu_quota(facts.vcpu_quota, facts.vcpus, pool_types)),
        run_check(
            "SES sender",
            lambda: sender_identity(facts.sender, facts.sender_status, facts.ses_production),
        ),
    ]
