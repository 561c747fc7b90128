"""Typed settings: one model per runtime, built once at start-up from the environment.

Each model is composed of small mixins, one per resource or concern, and is the whole
contract of its runtime: its fields are the env keys it reads (prefix DARKROOM_), a
missing resource name fails at start-up naming its key, and the CDK app and the local
cloud build each function's environment from it (`environment`), so no list of keys is
kept anywhere else. Logic receives a settings object; it never reads os.environ.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import BeforeValidator, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from darkroom import branding, names
from darkroom.names import Function

ENV_PREFIX: Final = "DARKROOM_"


def env_key(field: str) -> str:
    """The environment key of a settings field: raw_bucket -> DARKROOM_RAW_BUCKET."""
    return ENV_PREFIX + field.upper()


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return value


# A resource name the deploy fills in: required, and never empty.
Name = Annotated[str, Field(min_length=1)]
# Comma-separated in the environment ("i-1,i-2", "256,1024").
CsvStrings = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_split_csv)]
CsvInts = Annotated[tuple[int, ...], NoDecode, BeforeValidator(_split_csv)]


class Settings(BaseSettings):
    """What every runtime reads: the log level, applied by darkroom.observability."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    log_level: str = "INFO"

    @field_validator("log_level")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()


S = TypeVar("S", bound=Settings)


# -- mixins: one resource or concern each ------------------------------------------
class RawBucket(Settings):
    raw_bucket: Name


class ProcessedBucket(Settings):
    processed_bucket: Name


class OutputBucket(Settings):
    output_bucket: Name


class JobsTable(Settings):
    jobs_table: Name


class WorkersTable(Settings):
    workers_table: Name


class UploadsTable(Settings):
    uploads_table: Name


class SharesTable(Settings):
    shares_table: Name


class StateMachine(Settings):
    state_machine_arn: Name


class Pool(Settings):
    # The pool's instance ids: CDK knows them at deploy time.
    worker_instance_ids: Annotated[CsvStrings, Field(min_length=1)]


class PoolInstanceTypes(Settings):
    # The deploy's preference order (darkroom.names.WORKER_INSTANCE_TYPES).
    worker_instance_types: CsvStrings = names.WORKER_INSTANCE_TYPES


class JobTimings(Settings):
    # Handed to the state machine by RegisterJob so one ASL serves AWS (minutes) and
    # the laptop (seconds).
    worker_heartbeat_seconds: int = Field(default=300, ge=5)
    job_timeout_seconds: int = Field(default=6 * 3600, ge=30)


class Sharding(Settings):
    # Files a shard holds: a job of more is developed by several workers at once.
    shard_size: int = Field(default=200, ge=1)


class Thumbnails(Settings):
    # Long edges of the thumbnails, e.g. "256,1024".
    thumbnail_sizes: CsvInts = (256, 1024)
    # Decompression-bomb guard: images declaring more pixels are refused.
    max_image_pixels: int = Field(default=100_000_000, ge=1)


class ApiLimits(Settings):
    # Presigned URL lifetimes (SigV4 allows at most 7 days), share links, and what one
    # job may declare.
    upload_url_expiry_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    download_url_expiry_seconds: int = Field(default=900, ge=60, le=7 * 24 * 3600)
    share_default_expiry_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    share_max_expiry_seconds: int = Field(default=90 * 24 * 3600, ge=60)
    # A proofing client's writes (favourites, notes) per share link per minute: far more
    # than a person clicks, far fewer than a script would send.
    proofing_writes_per_minute: int = Field(default=60, ge=1)
    # What one job may declare: a wedding's 5,000 RAW files, and video-sized files.
    max_file_bytes: int = Field(default=5 * 1024**3, ge=1, le=5 * 1024**4)
    max_job_bytes: int = Field(default=1024**4, ge=1)
    max_files_per_job: int = Field(default=5000, ge=1)
    # Files over the threshold upload in parts (a single PUT carries at most 5 GiB), of
    # this size or more (darkroom.multipart.part_size).
    multipart_threshold_bytes: int = Field(default=100 * 1024**2, ge=1, le=5 * 1024**3)
    multipart_part_bytes: int = Field(default=16 * 1024**2, ge=5 * 1024**2, le=5 * 1024**3)
    # Presigned URLs in one answer (each is about 1.5 KB with a session token): the rest
    # come from the next POST /jobs/{id}/uploads, so no answer nears Lambda's 6 MB.
    upload_urls_per_answer: int = Field(default=1000, ge=1)
    # "virtual" gives regional bucket hostnames in AWS; the local cloud needs "path"
    # because its endpoint is an IP address.
    s3_addressing_style: Literal["auto", "virtual", "path"] = "virtual"
    # Base of share links when the API is served under another domain; empty: the
    # domain the request came in on.
    api_public_url: str = ""
    # The edge's origin-verify secret (a Secrets Manager ARN, never its value): when set,
    # share and asset paths answer only requests that carry its value in
    # names.ORIGIN_VERIFY_HEADER, i.e. that came through CloudFront and its WAF rules.
    # Empty (the local cloud, a stack without the edge): no check.
    origin_verify_secret_arn: str = ""


class SharePasswords(Settings):
    """Password-protected shares (darkroom.api.share_access)."""

    # The secret (Secrets Manager; its ARN, or its name) whose value signs unlock
    # cookies: created by the deployment, read once, on the first protected share.
    share_cookie_secret_arn: Name
    # Wrong passwords one share accepts per window, all clients together; then 429.
    share_unlock_attempts: int = Field(default=5, ge=1)
    share_unlock_window_seconds: int = Field(default=900, ge=60)
    # How long an unlocked browser stays unlocked (never past the share's expiry).
    share_cookie_seconds: int = Field(default=7 * 24 * 3600, ge=60)


class Studio(Settings):
    """The studio as its clients' pages show it (darkroom.branding checks each value;
    the field names are darkroom.names.STUDIO_SETTINGS)."""

    studio_name: str = ""
    studio_logo_url: str = ""
    studio_accent_colour: str = branding.DEFAULT_ACCENT_COLOUR

    @field_validator("studio_name")
    @classmethod
    def _name(cls, value: str) -> str:
        return branding.studio_name(value)

    @field_validator("studio_logo_url")
    @classmethod
    def _logo(cls, value: str) -> str:
        return branding.logo_url(value)

    @field_validator("studio_accent_colour")
    @classmethod
    def _accent(cls, value: str) -> str:
        return branding.accent_colour(value)


# -- one model per runtime -----------------------------------------------------------
class OrchestratorSettings(RawBucket, StateMachine):
    pass


class RegisterJobSettings(RawBucket, JobsTable, JobTimings, Sharding, Pool):
    pass


class StartWorkerSettings(JobsTable, WorkersTable, Pool, PoolInstanceTypes):
    pass


class AwaitWorkerSettings(WorkersTable):
    pass


class StopWorkerSettings(WorkersTable):
    pass


class MarkDoneSettings(JobsTable, ProcessedBucket):
    pass


class MarkFailedSettings(JobsTable):
    pass


class ThumbnailSettings(OutputBucket, Thumbnails):
    pass


class ApiSettings(
    RawBucket,
    ProcessedBucket,
    JobsTable,
    UploadsTable,
    SharesTable,
    StateMachine,
    ApiLimits,
    Studio,
    SharePasswords,
):
    pass


class CostGuardSettings(WorkersTable, Pool):
    # Long enough for a first boot (install) plus the worker's own idle shutdown.
    cost_guard_max_idle_seconds: int = Field(default=1800, ge=60)


class PoolScalerSettings(WorkersTable, Pool, PoolInstanceTypes):
    """The pool scaler (darkroom/pool_scaler.py). The declared instances
    (worker_instance_ids) are the pool's minimum."""

    pool_max_instances: int = Field(default=2, ge=1, le=100)
    # Cap on the vCPUs of pool instances running at once (0: none beyond the maximum);
    # the account's On-Demand quota is counted in vCPUs too.
    pool_max_vcpus: int = Field(default=0, ge=0)
    # Grow when a shard has waited for a worker this long...
    pool_scale_up_after_seconds: float = Field(default=120.0, ge=0)
    # ...and terminate an instance the scaler launched once stopped and unleased this long.
    pool_idle_terminate_seconds: float = Field(default=1800.0, ge=0)
    # The pool's launch template (id lt-..., or its name).
    pool_launch_template: Name
    # Subnets launches rotate through (empty: the template's or EC2's default).
    worker_subnet_ids: CsvStrings = ()

    @model_validator(mode="after")
    def _max_covers_min(self) -> PoolScalerSettings:
        if self.pool_max_instances < len(self.worker_instance_ids):
            raise ValueError(
                f"pool_max_instances ({self.pool_max_instances}) is below the pool's minimum, "
                f"its {len(self.worker_instance_ids)} declared instance(s)"
            )
        return self


class ReconcileEndingSettings(JobsTable, WorkersTable):
    pass


class Delivery(Settings):
    """Automatic delivery (issue 18): who mail comes from and goes to, and the webhook.
    Empty sender: no mail is sent (recorded on the job); empty webhook: none is called."""

    sender_email: str = ""
    photographer_email: str = ""
    ses_configuration_set: str = ""
    webhook_url: str = ""
    # The signing secret's ARN (or name) in Secrets Manager.
    webhook_secret_id: str = ""
    # Where a share link points: the API's public base URL.
    share_base_url: str = ""
    share_default_expiry_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    # Tries of one webhook call, waiting 0.5 s, 1 s, 2 s... between them.
    webhook_attempts: int = Field(default=3, ge=1, le=8)


class NotifySettings(JobsTable, SharesTable, Delivery, Studio):
    pass


class ReconcileSubmissionsSettings(RawBucket, JobsTable, UploadsTable, StateMachine):
    # The orchestrator's on-failure queue, redriven every run.
    submission_failures_queue_url: Name
    # A submitted job with no execution this long after its submission is started: by
    # then the orchestrator's own tries (Lambda's two async retries come within about
    # three minutes) are spent. Starting it earlier would be harmless, only redundant.
    resubmit_after_seconds: int = Field(default=300, ge=0)


class WorkerSettings(RawBucket, ProcessedBucket, JobsTable, WorkersTable):
    """The EC2 worker's settings (an env file written by user data, or the local cloud)."""

    # Empty on EC2: the worker asks the instance metadata service.
    instance_id: str = ""
    scratch_dir: Path = Path("/var/lib/darkroom/scratch")
    poll_seconds: float = Field(default=2.0, gt=0)
    heartbeat_interval_seconds: float = Field(default=30.0, gt=0)
    idle_shutdown_seconds: float = Field(default=600.0, gt=0)
    # poweroff: the OS halts and EC2 stops the instance (shutdown behaviour "stop"; needs
    # root); ec2-api: ask EC2 to stop it (the deployed worker, unprivileged, and the local
    # cloud); none: just exit.
    shutdown_mode: Literal["poweroff", "ec2-api", "none"] = "poweroff"
    # Files developed at once, one process each (0: one per core). Each holds one file's
    # decode: about 250 MB for a 24 MP RAW at full size, half that for web sizes.
    develop_workers: int = Field(default=0, ge=0)
    # Past this a file's decoder is killed and the file fails `timeout`. A 60 MP RAW takes
    # 12 s on one core with the default recipe, 57 s as a full-size 16-bit TIFF.
    develop_file_timeout_seconds: float = Field(default=300.0, gt=0)
    # What each develop process may allocate (RLIMIT_DATA); a file that needs more fails
    # `out_of_memory`. Peaks: 0.85 GiB for a 60 MP RAW with the default recipe, 1.8 GiB
    # as a full-size 16-bit TIFF, so 4 GiB develops any 150 MP sensor to JPEG.
    develop_memory_limit_mb: int = Field(default=4096, ge=512)


FUNCTION_SETTINGS: Final[Mapping[str, type[Settings]]] = {
    Function.ORCHESTRATOR: OrchestratorSettings,
    Function.REGISTER_JOB: RegisterJobSettings,
    Function.START_WORKER: StartWorkerSettings,
    Function.AWAIT_WORKER: AwaitWorkerSettings,
    Function.STOP_WORKER: StopWorkerSettings,
    Function.MARK_DONE: MarkDoneSettings,
    Function.MARK_FAILED: MarkFailedSettings,
    Function.THUMBNAIL: ThumbnailSettings,
    Function.API: ApiSettings,
    Function.COST_GUARD: CostGuardSettings,
    Function.RECONCILE_ENDING: ReconcileEndingSettings,
    Function.RECONCILE_SUBMISSIONS: ReconcileSubmissionsSettings,
    Function.POOL_SCALER: PoolScalerSettings,
    Function.NOTIFY: NotifySettings,
}

# Every field some runtime reads: a value for anything else is a typo.
RUNTIME_SETTINGS: Final[tuple[type[Settings], ...]] = (*FUNCTION_SETTINGS.values(), WorkerSettings)
KNOWN_FIELDS: Final = frozenset(name for model in RUNTIME_SETTINGS for name in model.model_fields)


# -- environments, derived ---------------------------------------------------------
def env_keys(model: type[Settings]) -> frozenset[str]:
    return frozenset(env_key(name) for name in model.model_fields)


def env_text(value: object) -> str:
    """A field's value as the environment spells it (CDK tokens are strings already)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return ",".join(str(v) for v in value)
    return str(value)


def environment(model: type[Settings], values: Mapping[str, Any]) -> dict[str, str]:
    """`model`'s environment: each field from `values` (by field name), else its default.

    `values` may hold fields of other runtimes too (one pool serves every function);
    each model takes exactly its own. A field with no default and no value is an error
    here, at deploy or provisioning time, rather than at the function's start.
    """
    unknown = sorted(set(values) - KNOWN_FIELDS)
    if unknown:
        raise KeyError(f"no runtime reads {', '.join(unknown)}")
    env: dict[str, str] = {}
    missing: list[str] = []
    for name, field in model.model_fields.items():
        if name in values:
            env[env_key(name)] = env_text(values[name])
        elif field.is_required():
            missing.append(env_key(name))
        else:
            env[env_key(name)] = env_text(field.get_default(call_default_factory=True))
    if missing:
        raise KeyError(f"{model.__name__} needs {', '.join(missing)}")
    return env


def load(model: type[S]) -> S:
    """`model` from the environment; what is missing or wrong is named by its env key."""
    try:
        return model()
    except ValidationError as exc:
        problems = "; ".join(
            f"{env_key(str(error['loc'][0])) if error['loc'] else model.__name__}: {error['msg']}"
            for error in exc.errors()
        )
        raise RuntimeError(f"{model.__name__}: bad configuration: {problems}") from None
