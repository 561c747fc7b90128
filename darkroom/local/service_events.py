"""What AWS services do for the stack on their own, done by the local cloud: a schedule
that invokes a function now and then (EventBridge), and the record an asynchronously
invoked function's event becomes once its retries are spent (Lambda's on-failure
destination)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from darkroom.jobs import utc_now
from darkroom.local.lambda_spec import FunctionSpec, InvocationResult

log = logging.getLogger(__name__)

SCHEDULED_EVENT = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


class Schedule:
    """Calls `fire` every `interval` seconds in a thread of its own, until stopped; `soon`
    brings the next call forward to `settle` seconds from now. A call that raises is
    logged, and the next one made as usual."""

    def __init__(
        self, name: str, interval: float, fire: Callable[[], object], settle: float = 0.0
    ) -> None:
        self._name = name
        self._interval = interval
        self._settle = settle
        self._fire = fire
        self._stop = threading.Event()
        self._poked = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"schedule-{name}", daemon=True)

    def start(self) -> Schedule:
        self._thread.start()
        return self

    def soon(self) -> None:
        self._poked.set()

    def stop(self) -> None:
        """Returns once no call is in flight (or after 30 s); none starts after."""
        self._stop.set()
        self._poked.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._poked.wait(self._interval)
            if self._poked.is_set():
                self._poked.clear()
                # What pokes it comes in bursts (a job's endings): one call for each.
                self._stop.wait(self._settle)
            if self._stop.is_set():
                return
            try:
                self._fire()
            except Exception:
                log.warning("%s: its scheduled call failed", self._name, exc_info=True)


def on_failure_record(spec: FunctionSpec, event: Any, result: InvocationResult) -> dict[str, Any]:
    """The document Lambda sends an on-failure destination for an event it gave up on."""
    try:
        response: Any = json.loads(result.payload)
    except ValueError:
        response = result.payload.decode("utf-8", "replace")
    return {
        "version": "1.0",
        "timestamp": utc_now(),
        "requestContext": {
            "requestId": result.request_id,
            "functionArn": f"{spec.arn}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        },
        "requestPayload": event,
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": result.function_error,
        },
        "responsePayload": response,
    }
