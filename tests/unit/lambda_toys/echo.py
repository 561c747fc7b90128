"""Returns its event, the environment variables it is asked for and its context."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    print(f"echo {context.aws_request_id}")
    if "rendezvous" in event:
        # Only returns once `count` invocations are inside the handler at the same time.
        meeting = Path(event["rendezvous"]["dir"])
        (meeting / context.aws_request_id).touch()
        deadline = time.monotonic() + 5
        while len(list(meeting.iterdir())) < event["rendezvous"]["count"]:
            if time.monotonic() > deadline:
                raise TimeoutError("nobody else came")
            time.sleep(0.01)
    return {
        "event": event,
        "pid": os.getpid(),
        "env": {key: os.environ.get(key) for key in event.get("env", [])},
        "env_keys": sorted(os.environ),
        "context": {
            "function_name": context.function_name,
            "function_version": context.function_version,
            "invoked_function_arn": context.invoked_function_arn,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "aws_request_id": context.aws_request_id,
            "log_group_name": context.log_group_name,
            "log_stream_name": context.log_stream_name,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "client_custom": context.client_context and context.client_context.custom,
        },
    }
