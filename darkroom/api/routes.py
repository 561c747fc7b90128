"""The API's routes: one table read by the core's router, the local gateway, the CDK
construct (which declares each route, IAM-authorised where `iam` is true) and the tests
that hold openapi.yaml to it."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # API Gateway route syntax: /jobs/{job_id}
    operation: str  # the core's method name, also the OpenAPI operationId
    iam: bool  # photographer/operator routes; False: public (share links)

    @property
    def key(self) -> str:
        """The HTTP API route key, e.g. "GET /jobs/{job_id}"."""
        return f"{self.method} {self.path}"

    def match(self, segments: list[str]) -> dict[str, str] | None:
        template = self.path.strip("/").split("/")
        if len(template) != len(segments):
            return None
        params: dict[str, str] = {}
        for want, got in zip(template, segments, strict=True):
            if want.startswith("{") and want.endswith("}"):
                if not got:
                    return None
                params[want[1:-1]] = got
            elif want != got:
                return None
        return params


ROUTES: tuple[Route, ...] = (
    Route("POST", "/jobs", "create_job", iam=True),
    Route("GET", "/jobs", "list_jobs", iam=True),
    Route("GET", "/jobs/{job_id}", "get_job", iam=True),
    Route("POST", "/jobs/{job_id}/submit", "submit_job", iam=True),
    Route("POST", "/jobs/{job_id}/reprocess", "reprocess_job", iam=True),
    Route("POST", "/jobs/{job_id}/shares", "create_share", iam=True),
    Route("DELETE", "/jobs/{job_id}/shares/{share_id}", "revoke_share", iam=True),
    Route("GET", "/share/{token}", "open_share", iam=False),
)


def split_path(path: str) -> list[str]:
    return [unquote(s) for s in path.strip("/").split("/")]


@dataclass(frozen=True)
class Match:
    route: Route | None  # None: no route for this method (and maybe none for this path)
    params: dict[str, str]
    on_path: tuple[Route, ...] = ()  # with no route: the routes of other methods here


def resolve(method: str, path: str) -> Match:
    segments = split_path(path)
    on_path: list[Route] = []
    for route in ROUTES:
        params = route.match(segments)
        if params is None:
            continue
        if route.method == method.upper():
            return Match(route, params)
        on_path.append(route)
    return Match(None, {}, tuple(on_path))
