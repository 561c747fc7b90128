"""The API's routes as the OpenAPI document declares them (generated from the app): what
the CDK construct deploys and the local gateway serves, each with its authorization, and
the matching of a path to a route as API Gateway does it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from darkroom.api.openapi import SIGV4, document

_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # API Gateway route syntax: /jobs/{job_id}
    operation: str  # the core's method name, also the OpenAPI operationId
    iam: bool  # SigV4 (the studio's routes); False: open to anyone (share links)

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


def routes_of(doc: Mapping[str, Any]) -> tuple[Route, ...]:
    """Every operation of an OpenAPI document, IAM-signed unless its security names no
    SigV4 requirement (the document's default applies when an operation states none)."""
    default = doc.get("security") or []
    found = []
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            security = operation.get("security", default)
            found.append(
                Route(
                    method=method.upper(),
                    path=path,
                    operation=operation["operationId"],
                    iam=any(SIGV4 in requirement for requirement in security),
                )
            )
    return tuple(found)


ROUTES: tuple[Route, ...] = routes_of(document())


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


def allowed_methods(path: str) -> list[str]:
    """The methods some route serves at this path (none: no route has this path)."""
    return sorted({r.method for r in resolve("", path).on_path})
