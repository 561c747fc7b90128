"""One embedded local cloud per session: moto server, real handlers, real workers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from darkroom.local.cloud import LocalCloud, LocalCloudConfig
from tests.harness import Studio, Target
from tests.integration.own_process import runs_apart

# Short enough for tests to see a lost worker quickly, long enough for a loaded CI box.
HEARTBEAT_SECONDS = 8
# A worker with no lease this long stops its own instance. Safe to keep short: StartWorker
# leases an instance before starting it, so a booting worker for a job is never idle.
IDLE_SHUTDOWN_SECONDS = 3
# Small enough that a few dozen small DNGs make several shards; every other test's job
# (at most 14 files) stays one shard.
SHARD_SIZE = 20
# Files over 6 MiB upload in parts of 5 MiB (the smallest S3, and moto, accept), so a
# test uploads a file in parts with a dozen MB; every other fixture stays one PUT.
MULTIPART = {"multipart_threshold_bytes": 6 * 1024**2, "multipart_part_bytes": 5 * 1024**2}


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    config = LocalCloudConfig(
        port=0,
        state_dir=tmp_path_factory.mktemp("local-cloud"),
        pool_size=2,
        shard_size=SHARD_SIZE,
        worker_heartbeat_seconds=HEARTBEAT_SECONDS,
        worker_heartbeat_interval_seconds=1.0,
        worker_poll_seconds=0.2,
        worker_idle_shutdown_seconds=IDLE_SHUTDOWN_SECONDS,
        api_settings=MULTIPART,
    )
    with LocalCloud(config) as running:
        yield running


@pytest.fixture(scope="session")
def studio(cloud: LocalCloud) -> Studio:
    return Studio(Target.local(cloud.endpoint_url, cloud.config.region))


@pytest.fixture
def shoot(tmp_path: Path) -> Path:
    from darkroom.imaging.fixtures import make_demo_shoot

    make_demo_shoot(tmp_path / "shoot", count=3, width=900, height=600)
    return tmp_path / "shoot"


# The longest modules on 2 cores (`pytest --durations`), longest first. With
# `--dist loadfile --no-loadscope-reorder` (the Makefile) xdist hands modules out in the
# collected order: the long ones start first and short ones fill in around them, so no
# worker is left running a long module alone at the end.
LONGEST_FIRST = (
    "test_cli.py",
    "test_own_process.py",
    "test_faults_endings.py",
    "test_raw_jobs.py",
    "test_faults_fanout.py",
    "test_faults_suite.py",
    "test_local_kill.py",
    "test_local_restart.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A module with a cloud of its own beside others runs apart (test_own_process.py).
    collected = {item.path.name for item in items}
    apart = [item for item in items if runs_apart(str(item.path), collected)]
    if apart:
        config.hook.pytest_deselected(items=apart)
        items[:] = [item for item in items if item not in apart]
    rank = {name: n for n, name in enumerate(LONGEST_FIRST)}
    # Stable: within a module, and among the other modules, the order stays as collected.
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
