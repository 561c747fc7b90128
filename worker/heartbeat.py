"""Heartbeats to the waiting state (and the lease) while a job runs."""

from __future__ import annotations

import threading

from darkroom.aws.executions import TaskCallbacks
from darkroom.aws.lease_store import LeaseStore
from darkroom.errors import LeaseLost
from darkroom.observability import logger


class Heartbeat:
    """Beats every `interval` seconds in a thread; `lost` is set once the task is over."""

    def __init__(
        self,
        callbacks: TaskCallbacks,
        leases: LeaseStore,
        *,
        token: str,
        instance_id: str,
        execution_arn: str,
        interval: float,
        shard: int = 0,
    ) -> None:
        self._callbacks = callbacks
        self._leases = leases
        self._token = token
        self._instance_id = instance_id
        self._execution_arn = execution_arn
        self._shard = shard
        self._interval = interval
        self._stop = threading.Event()
        self.lost = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self.beat()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self._interval + 5)

    def beat(self) -> None:
        try:
            if not self._callbacks.heartbeat(self._token):
                logger.warning("task is no longer waiting for this worker")
                self.lost.set()
                return
            self._leases.beat(self._instance_id, self._execution_arn, shard=self._shard)
        except LeaseLost:
            logger.warning("lease moved on while working")
            self.lost.set()
        except Exception:
            # A missed beat is survivable; HeartbeatSeconds allows several.
            logger.exception("heartbeat failed")

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.beat()
