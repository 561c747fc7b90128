"""The console's requests: its three static files, and JSON under /console/api/ read
from the local cloud through the APIs an AWS client uses (Step Functions, DynamoDB) and
from its log files, so nothing here is a second source of truth."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from werkzeug.wrappers import Request, Response

from darkroom import keys, names
from darkroom.aws.job_store import JobStore
from darkroom.aws.lease_store import LeaseStore
from darkroom.aws.pool_instances import PoolInstances
from darkroom.local.console import graph, logs
from darkroom.pipeline import reprocess_execution_name

PREFIX = "/console"
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/console.js": ("console.js", "text/javascript; charset=utf-8"),
    "/console.css": ("console.css", "text/css; charset=utf-8"),
}
# The page's only script and style are its own files: nothing inline can run.
CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
MAX_FILES = 1000  # a job's progress table; the counters on the job item cover the rest
THUMBNAIL_FUNCTION = names.Function.THUMBNAIL
STOP_ERROR = "Console.Stopped"


class BadRequest(Exception):
    pass


def _json(value: Any, status: int = 200) -> Response:
    return Response(json.dumps(value, default=str), status=status, content_type="application/json")


class Console:
    def __init__(self, client: Callable[[str], Any], log_dir: Path, state_machine_arn: str) -> None:
        self._sfn = client("stepfunctions")
        self._jobs = JobStore(names.JOBS_TABLE, client("dynamodb"))
        self._leases = LeaseStore(names.WORKERS_TABLE, client("dynamodb"))
        self._ec2 = PoolInstances(client("ec2"))
        self._log_dir = log_dir
        self._arn = state_machine_arn
        self._routes: dict[tuple[str, str], Callable[[Request], Any]] = {
            ("GET", "/api/state-machine"): self.state_machine,
            ("GET", "/api/executions"): self.executions,
            ("GET", "/api/execution"): self.execution,
            ("POST", "/api/start"): self.start,
            ("POST", "/api/stop"): self.stop,
            ("GET", "/api/logs"): self.log_streams,
            ("GET", "/api/log"): self.log,
            ("GET", "/api/invocations"): self.invocations,
            ("GET", "/api/pool"): self.pool,
        }

    def handle(self, request: Request) -> Response | None:
        """The console's answer, or None for a path outside it (the API's)."""
        path = request.path
        if path == PREFIX:
            return Response(status=308, headers={"Location": f"{PREFIX}/"})
        if not path.startswith(f"{PREFIX}/"):
            return None
        sub = path[len(PREFIX) :]
        if sub in STATIC and request.method in ("GET", "HEAD"):
            return _static(*STATIC[sub])
        route = self._routes.get((request.method, sub))
        if route is None:
            return _json({"message": "Not Found"}, 404)
        if request.method == "POST" and not _same_origin_json(request):
            return _json({"message": "a JSON request from the console's own page"}, 403)
        try:
            return _json(route(request))
        except BadRequest as exc:
            return _json({"message": str(exc)}, 400)
        except ClientError as exc:
            return _json({"message": str(exc)}, 400)

    # -- Step Functions ---------------------------------------------------------------
    def state_machine(self, request: Request) -> dict[str, Any]:
        described = self._sfn.describe_state_machine(stateMachineArn=self._arn)
        definition = graph.definition_of(described["definition"])
        return {
            "name": described["name"],
            "arn": self._arn,
            "start_at": definition.get("StartAt"),
            "states": [graph.Coloured(n).as_json() for n in graph.nodes(definition)],
            "edges": [asdict(e) for e in graph.edges(definition)],
        }

    def executions(self, request: Request) -> dict[str, Any]:
        status = request.args.get("status") or None
        query: dict[str, Any] = {"stateMachineArn": self._arn, "maxResults": 100}
        if status:
            query["statusFilter"] = status
        found = self._sfn.list_executions(**query)["executions"]
        return {"executions": [_execution_row(e) for e in found]}

    def execution(self, request: Request) -> dict[str, Any]:
        arn = _required(request.args.get("arn"), "arn")
        described = self._sfn.describe_execution(executionArn=arn)
        events = self._history(arn)
        definition = graph.definition_of(
            self._sfn.describe_state_machine(stateMachineArn=self._arn)["definition"]
        )
        ended = described["status"] != "RUNNING"
        job_id = _job_id(described.get("input"))
        return {
            "execution": _execution_row(described)
            | {
                "input": described.get("input"),
                "output": described.get("output"),
                "error": described.get("error"),
                "cause": described.get("cause"),
            },
            "job_id": job_id,
            "reprocess_input": _reprocess_input(job_id),
            "states": [c.as_json() for c in graph.colour(definition, events, ended)],
            "edges": [asdict(e) for e in graph.edges(definition)],
            "events": [_event_row(e) for e in events],
            "job": self._job(job_id),
        }

    def _history(self, arn: str) -> list[dict[str, Any]]:
        pages = self._sfn.get_paginator("get_execution_history").paginate(executionArn=arn)
        return [e for page in pages for e in page["events"]]

    def start(self, request: Request) -> dict[str, Any]:
        text = _required(_body(request).get("input"), "input")
        try:
            payload = json.loads(text)
        except ValueError as exc:
            raise BadRequest(f"the input is not JSON: {exc}") from exc
        if not isinstance(payload, dict):
            raise BadRequest("the input must be a JSON object")
        started = self._sfn.start_execution(
            stateMachineArn=self._arn, name=_name_for(payload), input=json.dumps(payload)
        )
        return {"executionArn": started["executionArn"]}

    def stop(self, request: Request) -> dict[str, Any]:
        body = _body(request)
        arn = _required(body.get("arn"), "arn")
        cause = str(body.get("cause") or "stopped from the local console")
        self._sfn.stop_execution(executionArn=arn, error=STOP_ERROR, cause=cause)
        return {"executionArn": arn}

    # -- DynamoDB: the job beside its execution ----------------------------------------
    def _job(self, job_id: str | None) -> dict[str, Any] | None:
        try:
            job = self._jobs.find(keys.validate_job_id(job_id or ""))
        except ValueError:
            return None
        if job is None:
            return None
        files: list[dict[str, Any]] = []
        for record in self._jobs.files(job.job_id):
            if len(files) == MAX_FILES:
                break
            files.append(
                {
                    "name": record.name,
                    "status": str(record.status.value),
                    "shard": record.shard,
                    "develop_seconds": record.develop_seconds,
                    "error": record.error,
                }
            )
        return {
            "job_id": job.job_id,
            "name": job.name,
            "status": str(job.status.value),
            "files_total": job.files_total,
            "files_done": job.files_done,
            "files_failed": job.files_failed,
            "files_skipped": job.files_skipped,
            "execution_arn": job.execution_arn,
            "files": files,
        }

    # -- logs ------------------------------------------------------------------------
    def log_streams(self, request: Request) -> dict[str, Any]:
        return {"streams": logs.streams(self._log_dir)}

    def log(self, request: Request) -> dict[str, Any]:
        stream = _required(request.args.get("stream"), "stream")
        text = logs.tail(self._log_dir, stream)
        if text is None:
            raise BadRequest(f"no log stream {stream}")
        return {"stream": stream, "text": text}

    def invocations(self, request: Request) -> dict[str, Any]:
        function = request.args.get("function") or THUMBNAIL_FUNCTION
        return {"function": function, "invocations": logs.invocations(self._log_dir, function)}

    # -- the worker pool (EC2 and the workers table, as the pool scaler reads them) --------
    def pool(self, request: Request) -> dict[str, Any]:
        now = datetime.now(UTC)
        leases = {lease.instance_id: lease for lease in self._leases.all()}
        rows = []
        found = self._ec2.describe_tagged(names.WORKER_POOL_TAG_KEY, names.WORKER_POOL_TAG_VALUE)
        for instance in found:
            lease = leases.get(instance.instance_id)
            launched = instance.launch_time
            rows.append(
                {
                    "instance_id": instance.instance_id,
                    "state": instance.state,
                    "instance_type": instance.instance_type,
                    "scaled": instance.tags.get(names.WORKER_SCALED_TAG_KEY)
                    == names.WORKER_SCALED_TAG_VALUE,
                    # EC2's launch time is the last start: the age of this boot.
                    "age_seconds": (now - launched).total_seconds() if launched else None,
                    "lease": lease.state if lease else None,
                    "job_id": lease.job_id if lease else None,
                    "shard": lease.shard if lease and lease.job_id else None,
                }
            )
        return {"instances": rows, "waiting": len(self._leases.waiters())}


def _static(name: str, content_type: str) -> Response:
    body = resources.files(__package__).joinpath(name).read_bytes()
    response = Response(body, content_type=content_type)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


def _same_origin_json(request: Request) -> bool:
    """A page elsewhere could post a form here; it cannot send JSON without a preflight
    the console never answers, and its Origin is not this one."""
    if request.mimetype != "application/json":
        return False
    origin = request.headers.get("Origin")
    return origin is None or origin == f"{request.scheme}://{request.host}"


def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.get_data(cache=False) or b"{}")
    except ValueError as exc:
        raise BadRequest("the body is not JSON") from exc
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _required(value: Any, name: str) -> str:
    if not value or not isinstance(value, str):
        raise BadRequest(f"{name} is required")
    return value


def _job_id(execution_input: str | None) -> str | None:
    try:
        parsed = json.loads(execution_input or "{}")
    except ValueError:
        return None
    job_id = parsed.get("job_id") if isinstance(parsed, dict) else None
    return job_id if isinstance(job_id, str) else None


def _reprocess_input(job_id: str | None) -> str:
    # What pipeline.reprocess starts; a "recipe" key may be added to develop differently.
    return json.dumps({"job_id": job_id or "", "reprocess": True}, indent=2)


def _name_for(payload: dict[str, Any]) -> str:
    """A job's executions keep the pipeline's names: `<job_id>.rp-<stamp>`."""
    job_id = payload.get("job_id")
    if isinstance(job_id, str):
        try:
            return reprocess_execution_name(job_id)
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc
    return f"console-{uuid.uuid4().hex[:12]}"


def _execution_row(e: dict[str, Any]) -> dict[str, Any]:
    return {
        "executionArn": e["executionArn"],
        "name": e["name"],
        "status": e["status"],
        "startDate": e.get("startDate"),
        "stopDate": e.get("stopDate"),
    }


def _event_row(e: dict[str, Any]) -> dict[str, Any]:
    found = [v for k, v in e.items() if k.endswith("EventDetails") and isinstance(v, dict)]
    details: dict[str, Any] = found[0] if found else {}
    return {
        "id": e["id"],
        "type": e["type"],
        "timestamp": e.get("timestamp"),
        "state": details.get("name"),
        "error": details.get("error"),
        "cause": details.get("cause"),
    }
