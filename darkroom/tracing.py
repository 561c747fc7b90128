"""X-Ray tracing of the Lambda functions, beside the traced state machine.

A module of its own because only the `lambda` extra carries aws-xray-sdk: the worker
and the CLI import darkroom.observability, never this. Powertools switches the tracer
off outside Lambda (no LAMBDA_TASK_ROOT), and the local cloud's runtime says so
explicitly (POWERTOOLS_TRACE_DISABLED), since no X-Ray daemon listens there.
"""

from __future__ import annotations

from aws_lambda_powertools import Tracer

from darkroom.observability import SERVICE

tracer = Tracer(service=SERVICE)
