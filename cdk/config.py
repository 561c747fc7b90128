"""Deploy-time settings (CDK context) and the names the CDK app adds to darkroom.names.

Every option has its default here; cdk.json repeats them so `cdk deploy -c key=value`
users can see what exists (a test keeps the two equal).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from darkroom import branding, names

# -- names only the CDK app uses (the shared ones are in darkroom.names) -----------------
METRIC_NAMESPACE: Final = "Darkroom"  # darkroom.observability.NAMESPACE
METRIC_SERVICE_DIMENSION: Final = {"service": "darkroom"}  # Powertools' default dimension
METRIC_WORKERS_RUNNING: Final = "WorkerInstancesRunning"
METRIC_WORKERS_UNLEASED: Final = "WorkerInstancesRunningUnleased"
METRIC_WORKER_LONGEST_RUN: Final = "WorkerLongestRunSeconds"
METRIC_WORKERS_STOPPED: Final = "WorkerInstancesStoppedByGuard"
# From the worker's log lines (metric filters on its log group).
METRIC_FILES_DEVELOPED: Final = "FilesDeveloped"
METRIC_FILES_FAILED: Final = "FilesFailed"
# The worker's log messages (worker/job.py) the metric filters match.
WORKER_LOG_FILE_DEVELOPED: Final = "file developed"
WORKER_LOG_FILE_FAILED: Final = "file failed"


class ExtraOutput:
    """Stack outputs beyond darkroom.names.Output."""

    STATE_MACHINE_CONSOLE_URL: Final = "StateMachineConsoleUrl"
    DASHBOARD_URL: Final = "DashboardUrl"
    WORKER_INSTANCE_IDS: Final = "WorkerInstanceIds"
    THUMBNAIL_FAILURE_QUEUE_URL: Final = "ThumbnailFailureQueueUrl"
    SUBMISSION_FAILURE_QUEUE_URL: Final = "SubmissionFailureQueueUrl"
    ALARM_TOPIC_ARN: Final = "AlarmTopicArn"


# CloudWatch Logs accepts only these retention periods.
RETENTION_DAYS: Final = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
     2557, 2922, 3288, 3653}
)  # fmt: skip


STACK_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9-]*")

# Options that changed meaning: a deploy still passing one must not be silently ignored.
RENAMED: Final = {
    "raw_expire_days": "raw_expire_after_days (unset by default: originals never expire)",
    "worker_instance_type": (
        "worker_instance_types, a preference list (e.g. c7g.xlarge,c6g.xlarge): instances "
        "are created as the first, StartWorker falls back to the next"
    ),
}
KMS_KEY_ARN: Final = re.compile(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+")
INSTANCE_TYPE: Final = re.compile(r"[a-z][a-z0-9-]*\.[a-z0-9]+")


class DeployConfig(BaseModel):
    """The deploy's options. pydantic coerces `-c key=value` strings ("3", "false")."""

    model_config = ConfigDict(frozen=True, extra="ignore", coerce_numbers_to_str=True)

    stack_name: str = "darkroom"
    # -- worker pool
    # Two: a job of several shards develops them side by side (the local cloud too).
    pool_size: int = 2
    # In order of preference, one architecture: created as the first; StartWorker
    # starts an instance as the next when EC2 has no capacity for (or does not offer)
    # the one before. CDK cannot look up offerings at synth time (README: checking them).
    worker_instance_types: str = ",".join(names.WORKER_INSTANCE_TYPES)
    worker_scratch_gb: int = 30
    worker_root_gb: int = 16
    # A KMS key ARN for the worker volumes ("": the account's default EBS key). Needed
    # where that default is a customer-managed key: the roles that start instances
    # then get the grants EC2 asks for on their behalf (cdk/worker_pool.py).
    ebs_kms_key: str = ""
    # HeartbeatSeconds of WaitForWorker (RegisterJob hands it to the state machine).
    worker_heartbeat_seconds: int = 300
    # How often the worker beats: several beats fit in one HeartbeatSeconds.
    worker_heartbeat_interval_seconds: int = 60
    worker_idle_shutdown_seconds: int = 600
    worker_poll_seconds: int = 2
    # TimeoutSeconds of WaitForWorker: the longest a job may develop.
    job_timeout_seconds: int = 21600
    # -- cost guard
    cost_guard_max_idle_minutes: int = 30
    # -- thumbnails
    # benchmarks.thumbnail peaks near 120 MB on 24 MP, but max_image_pixels (100 MP)
    # admits a 400 MB RGBA decode plus its reduced copy: 512 MB would fail those files.
    thumbnail_memory_mb: int = names.FUNCTION_MEMORY_MB[names.Function.THUMBNAIL]
    # Off by default: reserving any takes it from the account's unreserved pool, which
    # Lambda keeps at 100 or more, so a new account (quota often 10) refuses the deploy.
    thumbnail_reserved_concurrency: int = 0  # 0: none reserved
    thumbnail_sizes: str = "256,1024"
    max_image_pixels: int = 100_000_000
    # -- storage lifecycle (0 or None: never)
    # Originals are versioned and never expire unless a deployer says so: the standard
    # IA move loses nothing, an archive class is opt-in, and deletion takes both an
    # expiry (which only hides the current version behind a delete marker) and a
    # noncurrent expiry (which removes the versions themselves).
    raw_infrequent_access_days: int = 30
    raw_archive_after_days: int | None = None
    raw_expire_after_days: int | None = None
    raw_noncurrent_expire_after_days: int | None = None
    processed_infrequent_access_days: int = 30
    processed_expire_days: int = 0
    access_log_expire_days: int = 90
    retain_data: bool = True
    # -- monitoring
    log_retention_days: int = 30
    alarm_email: str = ""
    # -- the studio on its clients' gallery pages (names.STUDIO_SETTINGS)
    studio_name: str = ""
    studio_logo_url: str = ""
    studio_accent_colour: str = branding.DEFAULT_ACCENT_COLOUR
    # -- automatic delivery (issue 18; names.SENDER_EMAIL...). Its domain becomes the
    # SES identity (DKIM); empty: no mail is sent. The photographer gets every ending.
    sender_email: str = ""
    photographer_email: str = ""
    # https, or empty: no webhook. Signed with the stack's WebhookSecret.
    webhook_url: str = ""

    @classmethod
    def from_context(cls, get: Callable[[str], Any]) -> DeployConfig:
        """`get` is node.try_get_context: cdk.json gives JSON types, `-c` gives strings."""
        renamed = [old for old in RENAMED if get(old) is not None]
        if renamed:
            raise ValueError(
                "invalid darkroom context: "
                + "; ".join(f"{old} is now {RENAMED[old]}" for old in renamed)
            )
        given = {name: value for name in cls.model_fields if (value := get(name)) is not None}
        try:
            return cls.model_validate(given)
        except ValidationError as exc:
            raise ValueError("invalid darkroom context: " + _problems(exc)) from None

    @model_validator(mode="after")
    def _safe_together(self) -> DeployConfig:
        problems: list[str] = self._stack_name_problems()
        if not 1 <= self.pool_size <= 20:
            problems.append("pool_size must be 1..20")
        if self.worker_heartbeat_interval_seconds * 2 > self.worker_heartbeat_seconds:
            problems.append(
                "worker_heartbeat_interval_seconds must be at most half of "
                "worker_heartbeat_seconds, or one late beat fails the job"
            )
        if self.cost_guard_max_idle_minutes * 60 <= self.worker_idle_shutdown_seconds + 600:
            problems.append(
                "cost_guard_max_idle_minutes must exceed worker_idle_shutdown_seconds by "
                "10 minutes or more: the worker's own idle shutdown (and a first boot's "
                "install) come first"
            )
        if self.job_timeout_seconds < self.worker_heartbeat_seconds:
            problems.append("job_timeout_seconds must be at least worker_heartbeat_seconds")
        if self.log_retention_days not in RETENTION_DAYS:
            problems.append(f"log_retention_days must be one of {sorted(RETENTION_DAYS)}")
        if not 128 <= self.thumbnail_memory_mb <= 10240:
            problems.append("thumbnail_memory_mb must be 128..10240")
        if self.ebs_kms_key and not KMS_KEY_ARN.fullmatch(self.ebs_kms_key):
            problems.append(
                "ebs_kms_key must be a key ARN (arn:aws:kms:<region>:<account>:key/<id>), "
                "not an alias or a key id: grants are made on the key itself"
            )
        types = self.instance_types
        if not types or not all(INSTANCE_TYPE.fullmatch(t) for t in types):
            problems.append('worker_instance_types must be instance types, e.g. "c7g.xlarge"')
        elif len(set(types)) != len(types):
            problems.append("worker_instance_types lists a type twice")
        if self.thumbnail_reserved_concurrency < 0:
            problems.append("thumbnail_reserved_concurrency must be 0 (none) or more")
        try:
            sizes = [int(s) for s in self.thumbnail_sizes.split(",") if s.strip()]
        except ValueError:
            sizes = []
        if not sizes or min(sizes) <= 0:
            problems.append('thumbnail_sizes must be positive integers, e.g. "256,1024"')
        for name in ("raw", "processed"):
            if (ia := getattr(self, f"{name}_infrequent_access_days")) and ia < 30:
                problems.append(f"{name}_infrequent_access_days: S3 needs 30 or more (or 0)")
        problems += self._raw_lifecycle_problems()
        if (
            self.processed_infrequent_access_days
            and self.processed_expire_days
            and self.processed_expire_days <= self.processed_infrequent_access_days
        ):
            problems.append("processed_expire_days must come after the IA transition")
        if self.worker_scratch_gb < 8 or self.worker_root_gb < 8:
            problems.append("worker volumes need 8 GB or more")
        for name, check in (
            (names.STUDIO_NAME, branding.studio_name),
            (names.STUDIO_LOGO_URL, branding.logo_url),
            (names.STUDIO_ACCENT_COLOUR, branding.accent_colour),
        ):
            try:
                check(getattr(self, name))
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
        problems += self._delivery_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _delivery_problems(self) -> list[str]:
        from darkroom.api.models import email_address

        problems = []
        for name in (names.SENDER_EMAIL, names.PHOTOGRAPHER_EMAIL):
            if value := getattr(self, name):
                try:
                    email_address(value)
                except ValueError as exc:
                    problems.append(f"{name}: {exc}")
        if self.photographer_email and not self.sender_email:
            problems.append("photographer_email needs sender_email: the address mail comes from")
        if self.webhook_url and not self.webhook_url.startswith("https://"):
            problems.append(
                "webhook_url must be an https:// URL: its events are signed, not secret"
            )
        return problems

    @property
    def sender_domain(self) -> str:
        return self.sender_email.rpartition("@")[2]

    def _stack_name_problems(self) -> list[str]:
        # CloudFormation's pattern, which also suits every name derived from it.
        if not STACK_NAME.fullmatch(self.stack_name):
            return ["stack_name must start with a letter and hold only letters, digits and -"]
        longest = max((names.in_stack(f, self.stack_name) for f in names.HANDLERS), key=len)
        if len(longest) > names.FUNCTION_NAME_MAX:
            return [
                f"stack_name is too long: its function {longest} would pass Lambda's "
                f"{names.FUNCTION_NAME_MAX} characters"
            ]
        return []

    def _raw_lifecycle_problems(self) -> list[str]:
        problems = []
        ia = self.raw_infrequent_access_days
        archive = self.raw_archive_after_days
        expire = self.raw_expire_after_days
        for field in ("archive", "expire", "noncurrent_expire"):
            days = getattr(self, f"raw_{field}_after_days")
            if days is not None and days < 1:
                problems.append(f"raw_{field}_after_days must be 1 or more (leave it unset: never)")
        # S3 keeps an object 30 days in Standard-IA before a lifecycle may move it on.
        if ia and archive and archive < ia + 30:
            problems.append("raw_archive_after_days must be at least 30 days after the IA move")
        if expire and any(expire <= days for days in (ia, archive) if days):
            problems.append("raw_expire_after_days must come after the IA and archive moves")
        return problems

    @property
    def instance_types(self) -> tuple[str, ...]:
        return tuple(t.strip() for t in self.worker_instance_types.split(",") if t.strip())

    @property
    def studio(self) -> dict[str, str]:
        """The studio settings as the API's settings read them (checked above)."""
        return {
            names.STUDIO_NAME: branding.studio_name(self.studio_name),
            names.STUDIO_LOGO_URL: branding.logo_url(self.studio_logo_url),
            names.STUDIO_ACCENT_COLOUR: branding.accent_colour(self.studio_accent_colour),
        }

    @property
    def thumbnail_sizes_env(self) -> str:
        return ",".join(str(int(s)) for s in self.thumbnail_sizes.split(",") if s.strip())


def defaults() -> dict[str, Any]:
    return {name: field.default for name, field in DeployConfig.model_fields.items()}


# pydantic's error types -> what a deployer typing `-c key=value` needs to read.
_EXPECTED: Final = {
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "int_type": "expected an integer",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected text",
}


def _problems(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        if not error["loc"]:  # the cross-field check: its own message says it all
            problems.append(str(error["ctx"]["error"]) if "ctx" in error else error["msg"])
            continue
        name = error["loc"][0]
        expected = _EXPECTED.get(error["type"], error["msg"])
        problems.append(f"context {name}: {expected}, got {error['input']!r}")
    return "; ".join(problems)
