"""Worker entry point: boot, wait for a lease with a task token, run jobs, idle-stop."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from types import FrameType

from darkroom import names, software
from darkroom.aws.executions import TaskCallbacks
from darkroom.aws.job_events import JobEvents
from darkroom.aws.job_store import JobStore
from darkroom.aws.lease_store import LeaseState, LeaseStore
from darkroom.aws.objects import Objects
from darkroom.aws.pool_instances import PoolInstances
from darkroom.observability import configure, logger
from darkroom.settings import WorkerSettings, load
from worker import imds
from worker.job import JobRunner


def serve(settings: WorkerSettings, instance_id: str, stopping: threading.Event) -> str:
    """Run jobs as leases hand them over; return why the loop ended."""
    leases = LeaseStore(settings.workers_table)
    runner = JobRunner(
        settings,
        jobs=JobStore(settings.jobs_table, events=JobEvents()),
        leases=leases,
        objects=Objects(),
        callbacks=TaskCallbacks(),
        instance_id=instance_id,
        stopping=stopping,
    )
    done_tokens: set[str] = set()
    idle_since = time.monotonic()
    while not stopping.is_set():
        try:
            lease = leases.get(instance_id)
        except Exception:
            logger.exception("could not read the lease")
            lease = None
        if lease is not None and lease.state is LeaseState.LEASED:
            idle_since = time.monotonic()
            # A token stays on the lease until StopWorker releases it: run each once.
            if lease.task_token and lease.task_token not in done_tokens:
                done_tokens.add(lease.task_token)
                runner.run(lease)
                idle_since = time.monotonic()
                continue
        elif time.monotonic() - idle_since > settings.idle_shutdown_seconds:
            return "idle"
        stopping.wait(settings.poll_seconds)
    return "signal"


def shut_down(settings: WorkerSettings, instance_id: str) -> bool:
    """Stop this instance; False if that failed (the caller exits non-zero, so systemd
    restarts the worker and the cost guard remains the backstop)."""
    logger.info(
        "no lease for a while: shutting the instance down", extra={"mode": settings.shutdown_mode}
    )
    if settings.shutdown_mode == "poweroff":
        # Instance-initiated shutdown behaviour is "stop": the EBS scratch disk survives.
        # Needs root; the deployed worker is not, and uses "ec2-api".
        return subprocess.run(["systemctl", "poweroff"], check=False).returncode == 0
    if settings.shutdown_mode == "ec2-api":
        # Its role may stop this instance and no other (cdk/worker_pool.py).
        try:
            PoolInstances().stop(instance_id)
        except Exception:
            logger.exception("could not stop the instance")
            return False
    return True


def main() -> int:
    settings = load(WorkerSettings)
    configure(settings)
    instance_id = settings.instance_id or imds.instance_id()
    logger.append_keys(instance_id=instance_id)
    settings.scratch_dir.mkdir(parents=True, exist_ok=True)

    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logger.info("stop requested", extra={"signal": signum})
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # With the software it runs: `darkroom doctor` reports each instance's version from it.
    logger.info(
        names.WORKER_UP_MESSAGE,
        extra={"scratch": str(settings.scratch_dir), "software": software.installed()},
    )
    reason = serve(settings, instance_id, stopping)
    if reason == "idle" and not shut_down(settings, instance_id):
        return 1
    logger.info("worker down", extra={"reason": reason})
    return 0
