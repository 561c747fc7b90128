"""What the local cloud does in AWS services' place: a schedule, an on-failure record."""

from __future__ import annotations

import json
import threading
import time

from darkroom.local.lambda_spec import FunctionSpec, InvocationResult
from darkroom.local.service_events import Schedule, on_failure_record


def test_a_schedule_fires_until_stopped_and_survives_a_failing_run() -> None:
    fired: list[int] = []
    enough = threading.Event()

    def fire() -> None:
        fired.append(1)
        if len(fired) >= 3:
            enough.set()
        if len(fired) == 1:
            raise RuntimeError("the endpoint is not up yet")

    schedule = Schedule("test", 0.01, fire).start()
    assert enough.wait(5)
    schedule.stop()
    count = len(fired)
    threading.Event().wait(0.05)
    assert len(fired) == count


def test_soon_brings_the_next_call_forward_and_a_stop_does_not_wait_out_the_interval() -> None:
    fired = threading.Event()
    # The local cloud's save: every 30 s, and soon after an execution ends.
    schedule = Schedule("save", 3600, fired.set, settle=0.05).start()
    try:
        schedule.soon()
        assert fired.wait(10)
    finally:
        started = time.monotonic()
        schedule.stop()
    assert time.monotonic() - started < 5


def test_a_spent_event_is_recorded_as_lambda_records_it_for_its_destination() -> None:
    spec = FunctionSpec(name="fn", handler="m.h", environment={}, timeout_seconds=3)
    result = InvocationResult(
        payload=json.dumps({"errorType": "Runtime.ExitError", "errorMessage": "x"}).encode(),
        function_error="Unhandled",
        log_tail="",
        duration_ms=1.0,
        request_id="req-1",
    )
    record = on_failure_record(spec, {"Records": []}, result)
    assert record["requestPayload"] == {"Records": []}
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["functionArn"] == f"{spec.arn}:$LATEST"
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"]["errorType"] == "Runtime.ExitError"
