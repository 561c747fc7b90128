"""Records the AWS calls a process of the local cloud makes, so a test can check each one
against the IAM role the process would have in AWS (the local cloud enforces no IAM).

A process whose environment names a log file in CALL_LOG_ENV appends one JSON line per
call its botocore clients make (retries excluded): who made it, the service's endpoint
prefix, the operation, the parameters that name what it touches, and whether it was
only presigned (a presigned URL is used later by someone else, under the signer's role).

Installed before any client exists: the Lambda bootstrap installs it ahead of the
handler's import; the local worker is started through `python -m darkroom.local.call_recorder`.
Imports only the standard library until installed (the bootstrap imports it cold).
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

CALL_LOG_ENV: Final = "DARKROOM_LOCAL_CALL_LOG"
WORKER_PRINCIPAL: Final = "worker"

# Top-level parameters that say which resource a call touches; the rest (item bodies,
# object bytes, expressions) is neither needed nor small.
_RESOURCE_PARAMS: Final = frozenset(
    {
        "Bucket",
        "Key",
        "VersionId",
        "Prefix",
        "CopySource",
        "TableName",
        "IndexName",
        "InstanceIds",
        "stateMachineArn",
        "executionArn",
        "name",
        "QueueUrl",
        "QueueName",
        "Tags",
        "FunctionName",
        "Namespace",
        "logGroupName",
        "Resources",
        "SecretId",
    }
)


def summarize(params: Mapping[str, Any]) -> dict[str, Any]:
    """The resource-naming parameters of one call, JSON-ready."""
    out = {k: v for k, v in params.items() if k in _RESOURCE_PARAMS}
    if isinstance(out.get("CopySource"), Mapping):
        out["CopySource"] = dict(out["CopySource"])
    delete = params.get("Delete")
    if isinstance(delete, Mapping):
        out["DeleteKeys"] = [
            {k: o[k] for k in ("Key", "VersionId") if k in o} for o in delete.get("Objects", [])
        ]
    if isinstance(params.get("RequestItems"), Mapping):  # BatchGetItem, BatchWriteItem
        out["RequestItems"] = sorted(params["RequestItems"])
    if "TransactItems" in params:  # [{"Put": {"TableName": ...}}, {"Update": ...}]
        out["TransactItems"] = sorted(
            {
                (kind, op["TableName"])
                for item in params["TransactItems"]
                for kind, op in item.items()
            }
        )
    return out


class _Recorder:
    def __init__(self, path: Path, principal: str, instance_id: str | None) -> None:
        self._path = path
        self._principal = principal
        self._instance_id = instance_id

    def __call__(self, params: Mapping[str, Any], model: Any, context: Any, **_: Any) -> None:
        record = {
            "principal": self._principal,
            "service": model.service_model.endpoint_prefix,
            "operation": model.name,
            "params": summarize(params),
            "presign": bool((context or {}).get("is_presign_request")),
        }
        if self._instance_id:
            # What AWS knows of a call made with an instance profile's credentials
            # (ec2:SourceInstanceARN): a policy may limit the worker to its own instance.
            record["instance_id"] = self._instance_id
        line = (json.dumps(record, default=str) + "\n").encode()
        # One O_APPEND write per line: lines of concurrent threads and processes never mix.
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def install(path: Path, principal: str, instance_id: str | None = None) -> None:
    """Record every call of every botocore session this process creates from now on."""
    from botocore import handlers

    # Sessions register BUILTIN_HANDLERS when created: every client made later inherits
    # the hook, whichever session (boto3's default or a new one) it comes from.
    handlers.BUILTIN_HANDLERS.append(
        ("provide-client-params", _Recorder(path, principal, instance_id), handlers.REGISTER_LAST)
    )


def install_from_environment(
    principal: str, instance_id: str | None = None, environ: Mapping[str, str] = os.environ
) -> bool:
    path = environ.get(CALL_LOG_ENV)
    if not path:
        return False
    install(Path(path), principal, instance_id)
    return True


def read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def worker_command(python: str, environ: Mapping[str, str], instance_id: str) -> list[str]:
    """How the local cloud starts a worker: through the recorder when calls are recorded."""
    if environ.get(CALL_LOG_ENV):
        return [python, "-m", __name__, "worker", WORKER_PRINCIPAL, instance_id]
    return [python, "-m", "worker"]


def main(argv: list[str]) -> None:
    """`python -m darkroom.local.call_recorder MODULE PRINCIPAL [INSTANCE_ID]`: run MODULE
    as __main__ with its calls recorded."""
    module, principal, *instance = argv
    install_from_environment(principal, instance[0] if instance else None)
    sys.argv = [module]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
