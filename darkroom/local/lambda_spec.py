"""What the local Lambda runtime runs and what an invocation returns."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

ACCOUNT_ID = "123456789012"  # moto's default account, so ARNs match what moto reports
DEFAULT_REGION = "us-east-1"


class UnknownFunctionError(LookupError):
    """Invoked a function that was never registered (AWS: ResourceNotFoundException)."""


class RuntimeClosedError(RuntimeError):
    """The runtime was closed; it runs nothing any more."""


def _frozen_env(value: Mapping[str, str], what: str) -> Mapping[str, str]:
    env = dict(value)
    for key, item in env.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise TypeError(f"{what}: environment keys and values must be str, got {key!r}")
    return MappingProxyType(env)


@dataclass(frozen=True)
class FunctionSpec:
    """A function as deployed: what the CDK app declares, plus what the local cloud adds."""

    name: str
    handler: str  # "package.module.function", resolved like the AWS Python runtime does
    environment: Mapping[str, str]  # exactly the function's declared variables
    timeout_seconds: float
    memory_mb: int = 128
    # Process-level additions of the local cloud (endpoint, fake credentials, region,
    # PYTHONPATH), kept apart so `environment` compares equal to the CDK app's.
    extra_env: Mapping[str, str] = field(default_factory=dict)
    # None: AWS_REGION / AWS_DEFAULT_REGION from extra_env, else us-east-1.
    region: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("function name must not be empty")
        if not self.timeout_seconds > 0:
            raise ValueError(f"{self.name}: timeout_seconds must be > 0")
        # Frozen all the way down: a spec is compared to detect redeployments, so a caller
        # mutating its dict afterwards must not change a registered spec behind our back.
        object.__setattr__(self, "environment", _frozen_env(self.environment, self.name))
        object.__setattr__(self, "extra_env", _frozen_env(self.extra_env, self.name))

    @property
    def resolved_region(self) -> str:
        return (
            self.region
            or self.extra_env.get("AWS_REGION")
            or self.extra_env.get("AWS_DEFAULT_REGION")
            or DEFAULT_REGION
        )

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.resolved_region}:{ACCOUNT_ID}:function:{self.name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.name}"


@dataclass(frozen=True)
class InvocationResult:
    payload: bytes  # the response document, as Lambda returns it
    function_error: str | None  # None or "Unhandled"; details are in payload
    log_tail: str  # last ≤4 KB of the log stream during this invocation
    duration_ms: float  # handler time as Lambda reports it; excludes init
    request_id: str
    init_duration_ms: float | None = None  # set on a cold start whose init succeeded

    @property
    def error_type(self) -> str | None:
        """errorType of a function error (e.g. "NoIdleWorker", "Sandbox.Timedout")."""
        if self.function_error is None:
            return None
        document = json.loads(self.payload)
        return document.get("errorType") if isinstance(document, dict) else None


def error_payload(error_type: str, message: str, request_id: str) -> bytes:
    """The document Lambda returns for a failure of its own (a timeout, a crash)."""
    return json.dumps(
        {
            "errorMessage": message,
            "errorType": error_type,
            "requestId": request_id,
            "stackTrace": [],
        }
    ).encode()
