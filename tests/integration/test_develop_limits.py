"""A file whose development outlasts the worker's time limit per file, end to end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from darkroom.imaging.fixtures import write_dng
from darkroom.jobs import FileStatus, JobStatus
from darkroom.local.cloud import LocalCloud, LocalCloudConfig
from tests.harness import Studio, Target

pytestmark = pytest.mark.integration

# A 480x320 frame develops in a tenth of a second, a 24 MP one at full size in several
# (4 s on one core of the test machine): a limit between them times out only the large one.
LIMIT_SECONDS = 1.0


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    # A cloud of its own: the shared one's workers keep the default limit.
    config = LocalCloudConfig(
        port=0,
        state_dir=tmp_path_factory.mktemp("local-cloud-limits"),
        worker_heartbeat_seconds=8,
        worker_heartbeat_interval_seconds=1.0,
        worker_poll_seconds=0.2,
        worker_idle_shutdown_seconds=3,
        # Overrides by field name reach every runtime that reads the field.
        api_settings={"develop_file_timeout_seconds": LIMIT_SECONDS},
    )
    with LocalCloud(config) as cloud:
        yield Studio(Target.local(cloud.endpoint_url, cloud.config.region))


def test_a_file_past_the_time_limit_fails_timeout_and_the_job_ends_done_with_errors(
    studio: Studio, tmp_path: Path
) -> None:
    small = write_dng(tmp_path / "SMALL.dng", width=480, height=320, seed=1)
    large = write_dng(tmp_path / "LARGE.dng", width=6000, height=4000, seed=2)
    job_id = studio.upload([small, large])
    job = studio.wait(job_id, timeout=240)
    assert job.status is JobStatus.DONE_WITH_ERRORS
    assert job.progress["SMALL.dng"].status is FileStatus.DONE
    assert job.progress["LARGE.dng"].status is FileStatus.FAILED
    entries = {f["name"]: f for f in studio.manifest(job_id)["files"]}
    assert entries["LARGE.dng"]["error_code"] == "timeout"
    assert entries["LARGE.dng"]["error"] == (
        f"LARGE.dng: not developed within the {LIMIT_SECONDS:g} s limit per file; "
        "its decoder was stopped"
    )
    assert entries["SMALL.dng"]["outputs"]
