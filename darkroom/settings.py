"""Typed settings, built once at start-up from the environment.

Logic receives a settings object; it never reads os.environ itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from darkroom.names import Env


class _Base(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DARKROOM_", extra="ignore", frozen=True)

    log_level: str = "INFO"

    def require(self, *fields: str) -> None:
        """Fail at start-up, naming the env key, rather than deep inside a request."""
        missing = [f"DARKROOM_{f.upper()}" for f in fields if not getattr(self, f)]
        if missing:
            raise RuntimeError(f"missing configuration: {', '.join(missing)} not set")


class TaskSettings(_Base):
    """Every task Lambda's settings; each handler requires the subset it uses."""

    raw_bucket: str = ""
    processed_bucket: str = ""
    jobs_table: str = ""
    workers_table: str = ""
    state_machine_arn: str = ""
    # Comma-separated in the environment; CDK knows the pool's ids at deploy time.
    worker_instance_ids: Annotated[tuple[str, ...], NoDecode] = ()
    # Handed to the state machine by RegisterJob so one ASL serves AWS (minutes) and
    # the laptop (seconds).
    worker_heartbeat_seconds: int = Field(default=300, ge=5)
    job_timeout_seconds: int = Field(default=6 * 3600, ge=30)
    input_bucket: str = ""
    output_bucket: str = ""
    # Long edges of the thumbnails, e.g. "256,1024".
    thumbnail_sizes: Annotated[tuple[int, ...], NoDecode] = (256, 1024)
    # Decompression-bomb guard: images declaring more pixels are refused.
    max_image_pixels: int = Field(default=100_000_000, ge=1)
    # The API: its own tables, presigned URL lifetimes (SigV4 allows at most 7 days),
    # share links, and what one job may declare.
    uploads_table: str = ""
    shares_table: str = ""
    upload_url_expiry_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    download_url_expiry_seconds: int = Field(default=900, ge=60, le=7 * 24 * 3600)
    share_default_expiry_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    share_max_expiry_seconds: int = Field(default=90 * 24 * 3600, ge=60)
    # A single presigned PUT can carry at most 5 GiB.
    max_file_bytes: int = Field(default=1024**3, ge=1, le=5 * 1024**3)
    max_job_bytes: int = Field(default=200 * 1024**3, ge=1)
    max_files_per_job: int = Field(default=1000, ge=1)
    # "virtual" gives regional bucket hostnames in AWS; the local cloud needs "path"
    # because its endpoint is an IP address.
    s3_addressing_style: Literal["auto", "virtual", "path"] = "virtual"
    # Base of share links when the API is served under another domain; empty: the
    # domain the request came in on.
    api_public_url: str = ""

    @field_validator("worker_instance_ids", "thumbnail_sizes", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value


class WorkerSettings(_Base):
    """The EC2 worker's settings (an env file written by user data, or the local cloud)."""

    raw_bucket: str = ""
    processed_bucket: str = ""
    jobs_table: str = ""
    workers_table: str = ""
    # Empty on EC2: the worker asks the instance metadata service.
    instance_id: str = ""
    scratch_dir: Path = Path("/var/lib/darkroom/scratch")
    poll_seconds: float = Field(default=2.0, gt=0)
    heartbeat_interval_seconds: float = Field(default=30.0, gt=0)
    idle_shutdown_seconds: float = Field(default=600.0, gt=0)
    # poweroff: the OS halts and EC2 stops the instance (shutdown behaviour "stop");
    # ec2-api: ask EC2 to stop it (the local cloud); none: just exit.
    shutdown_mode: Literal["poweroff", "ec2-api", "none"] = "poweroff"
    # Files developed at once, one process each (0: one per core). Each holds one file's
    # decode: about 250 MB for a 24 MP RAW at full size, half that for web sizes.
    develop_workers: int = Field(default=0, ge=0)


assert Env.JOBS_TABLE == "DARKROOM_JOBS_TABLE"  # the prefix above must match darkroom.names
