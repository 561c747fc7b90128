"""Deploy-time settings (CDK context) and the names the CDK app adds to darkroom.names.

Every option has its default here; cdk.json repeats them so `cdk deploy -c key=value`
users can see what exists (a test keeps the two equal).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
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
    EDGE_URL: Final = "EdgeUrl"
    EDGE_DISTRIBUTION_DOMAIN: Final = "EdgeDistributionDomain"


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
# CloudFront takes its certificate and its web ACL from us-east-1 only.
EDGE_CERTIFICATE_ARN: Final = re.compile(r"arn:aws[a-z-]*:acm:us-east-1:\d{12}:certificate/[\w-]+")
EDGE_WEB_ACL_ARN: Final = re.compile(
    r"arn:aws[a-z-]*:wafv2:us-east-1:\d{12}:global/webacl/[\w-]+/[\w-]+"
)
DOMAIN_NAME: Final = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
REGION: Final = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")
# The edge's home: CloudFront's web ACLs and certificates live here.
EDGE_REGION: Final = "us-east-1"
ACCOUNT: Final = re.compile(r"\d{12}")
AMI_ID: Final = re.compile(r"ami-[0-9a-f]{8}(?:[0-9a-f]{9})?")
# eu-west-1a; a Local Zone's us-east-1-bos-1a too.
AVAILABILITY_ZONE: Final = re.compile(r"[a-z]{2}(?:-[a-z0-9]+)+-\d[a-z]")
REGION_OF_ZONE: Final = re.compile(r"[a-z]{2}(?:-gov)?-[a-z]+-\d")


class DeployConfig(BaseModel):
    """The deploy's options. pydantic coerces `-c key=value` strings ("3", "false")."""

    model_config = ConfigDict(frozen=True, extra="ignore", coerce_numbers_to_str=True)

    stack_name: str = "darkroom"
    # -- worker pool
    # Two: a job of several shards develops them side by side (the local cloud too).
    # The pool's minimum: these instances are declared by the stack and always there.
    pool_size: int = 2
    # The pool scaler launches up to this many in all (pool_size: a fixed pool) when
    # shards wait longer than pool_scale_up_after_minutes, and terminates the ones it
    # launched once stopped and unleased for pool_idle_terminate_minutes.
    pool_max_size: int = 4
    # Cost cap: vCPUs of pool instances running at once (0: only pool_max_size bounds
    # it). EC2's On-Demand quota is in vCPUs too, so the two read alike.
    pool_max_vcpus: int = 0
    pool_scale_up_after_minutes: int = 3
    # An hour stopped (EBS only) still catches the next shoot of a busy day.
    pool_idle_terminate_minutes: int = 60
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
    # The worker AMI, pinned ("ami-..." of Amazon Linux 2023 for the pool's architecture,
    # in the stack's region): every deploy boots the same image, so none replaces the
    # pool; moved on only by changing it (README: Patching the workers). "": the latest
    # AL2023, resolved again at each deploy (a new release replaces the instances).
    worker_ami_id: str = ""
    # The pool's availability zones (comma-separated, e.g. eu-west-1a,eu-west-1b): ""
    # lets CDK choose two. Name zones that offer the pool's instance types (README:
    # checking instance-type offerings); CDK cannot look offerings up at synth.
    availability_zones: str = ""
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
    # -- where (empty: an environment-agnostic stack, the region of the deploying
    # profile). The edge needs it: its web ACL lives in us-east-1 (cdk/edge.py).
    region: str = ""
    # The account deployed to. Run by the CDK CLI with credentials, the app takes the
    # profile's account and region (CDK_DEFAULT_ACCOUNT/REGION) where these are empty:
    # the stack is then for that account and region, which lets the synth pin the worker
    # AMI in cdk.context.json (cdk/worker_pool.py). Empty and no CLI: environment-agnostic.
    account: str = ""
    # -- the edge: CloudFront + WAF in front of share links and the gallery's assets
    edge: bool = False
    # Requests per client IP in any 5 minutes over share pages, their preview and
    # download links and the gallery's script, past which WAF answers 429. Each preview
    # in a gallery is one request (a redirect), so this admits a client scrolling a
    # 1,000-photo gallery within five minutes.
    edge_rate_limit: int = 1500
    # AWS's common rule set (AWSManagedRulesCommonRuleSet), before the rate rule.
    edge_managed_rules: bool = True
    # An existing CloudFront web ACL (us-east-1) to use instead of the one the edge
    # stack creates (a studio that runs its own WAF).
    edge_web_acl_arn: str = ""
    # A custom domain for share links: both or neither. The certificate must be in
    # us-east-1 and cover the domain; point the domain's DNS at EdgeDistributionDomain.
    edge_domain_name: str = ""
    edge_certificate_arn: str = ""
    # -- network: workers in private subnets reaching AWS through VPC endpoints only
    # (no internet at all). Costs interface endpoints by the hour (README).
    private_network: bool = False
    # -- automatic delivery (issue 18; names.SENDER_EMAIL...). Its domain becomes the
    # SES identity (DKIM); empty: no mail is sent. The photographer gets every ending.
    sender_email: str = ""
    photographer_email: str = ""
    # https, or empty: no webhook. Signed with the stack's WebhookSecret.
    webhook_url: str = ""

    @classmethod
    def from_context(
        cls, get: Callable[[str], Any], deployer: Mapping[str, str] | None = None
    ) -> DeployConfig:
        """`get` is node.try_get_context: cdk.json gives JSON types, `-c` gives strings.

        `deployer` is the CDK CLI's environment: once it knows an account (it has
        credentials), CDK_DEFAULT_ACCOUNT and CDK_DEFAULT_REGION (its profile's) stand
        for account and region where the context gives none."""
        renamed = [old for old in RENAMED if get(old) is not None]
        if renamed:
            raise ValueError(
                "invalid darkroom context: "
                + "; ".join(f"{old} is now {RENAMED[old]}" for old in renamed)
            )
        given = {name: value for name in cls.model_fields if (value := get(name)) is not None}
        cli = deployer or {}
        if cli.get("CDK_DEFAULT_ACCOUNT") and not given.get("account"):
            given["account"] = cli["CDK_DEFAULT_ACCOUNT"]
            given["region"] = given.get("region") or cli.get("CDK_DEFAULT_REGION", "")
        try:
            return cls.model_validate(given)
        except ValidationError as exc:
            raise ValueError("invalid darkroom context: " + _problems(exc)) from None

    @model_validator(mode="after")
    def _safe_together(self) -> DeployConfig:
        problems: list[str] = self._stack_name_problems()
        if not 1 <= self.pool_size <= 20:
            problems.append("pool_size must be 1..20")
        if not self.pool_size <= self.pool_max_size <= 50:
            problems.append("pool_max_size must be pool_size (its minimum) up to 50")
        if self.pool_max_vcpus < 0:
            problems.append("pool_max_vcpus must be 0 (no cap) or more")
        if self.pool_scale_up_after_minutes < 1 or self.pool_idle_terminate_minutes < 1:
            problems.append(
                "pool_scale_up_after_minutes and pool_idle_terminate_minutes must be 1 or "
                "more (the scaler runs every minute)"
            )
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
        if self.worker_ami_id and not AMI_ID.fullmatch(self.worker_ami_id):
            problems.append('worker_ami_id must be an AMI id, e.g. "ami-0123456789abcdef0"')
        zones = self.zones
        if zones and not all(AVAILABILITY_ZONE.fullmatch(z) for z in zones):
            problems.append('availability_zones must be zone names, e.g. "eu-west-1a,eu-west-1b"')
        elif len(set(zones)) != len(zones):
            problems.append("availability_zones lists a zone twice")
        elif len({REGION_OF_ZONE.match(z).group() for z in zones}) > 1:  # type: ignore[union-attr]
            problems.append("availability_zones must all be in one region (the stack's)")
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
        problems += self._edge_problems()
        problems += self._delivery_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _edge_problems(self) -> list[str]:
        problems = []
        if self.region and not REGION.fullmatch(self.region):
            problems.append(f"region must be an AWS region, e.g. eu-west-1, got {self.region!r}")
        if self.account and not ACCOUNT.fullmatch(self.account):
            problems.append(f"account must be a 12-digit AWS account id, got {self.account!r}")
        edge_options = (
            self.edge_web_acl_arn,
            self.edge_domain_name,
            self.edge_certificate_arn,
        )
        if not self.edge:
            if any(edge_options):
                problems.append(
                    "edge_web_acl_arn, edge_domain_name and edge_certificate_arn need edge=true"
                )
            return problems
        # WAF refuses a rate-based limit under 10 (its evaluation window is 5 minutes).
        if not 10 <= self.edge_rate_limit <= 2_000_000_000:
            problems.append("edge_rate_limit must be 10..2000000000 requests per 5 minutes")
        if self.edge_web_acl_arn and not EDGE_WEB_ACL_ARN.fullmatch(self.edge_web_acl_arn):
            problems.append(
                "edge_web_acl_arn must be a CloudFront web ACL's ARN in us-east-1 "
                "(arn:aws:wafv2:us-east-1:<account>:global/webacl/<name>/<id>)"
            )
        if not self.edge_web_acl_arn and not self.region:
            problems.append(
                "edge=true needs region (e.g. -c region=eu-west-1): the web ACL is made in "
                f"{EDGE_REGION} and referenced across regions, which CDK allows only "
                "between stacks of known regions (or give edge_web_acl_arn)"
            )
        if bool(self.edge_domain_name) != bool(self.edge_certificate_arn):
            problems.append("edge_domain_name and edge_certificate_arn go together")
        if self.edge_domain_name and not DOMAIN_NAME.fullmatch(self.edge_domain_name):
            problems.append(
                f"edge_domain_name must be a lower-case host name, got {self.edge_domain_name!r}"
            )
        if self.edge_certificate_arn and not EDGE_CERTIFICATE_ARN.fullmatch(
            self.edge_certificate_arn
        ):
            problems.append(
                "edge_certificate_arn must be an ACM certificate in us-east-1 "
                "(CloudFront takes certificates from there only)"
            )
        return problems

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
    def zones(self) -> tuple[str, ...]:
        return tuple(z.strip() for z in self.availability_zones.split(",") if z.strip())

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
