"""The gallery's scripts as the API's static assets: the share pages' strict CSP admits no
inline script, so each is a route of its own, open to anyone and cacheable (the same
bytes for everyone, free of secrets)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from darkroom.api.errors import answers
from darkroom.api.openapi import PUBLIC

CACHED = {"cache-control": "public, max-age=300"}


def serve_script(
    router: APIGatewayHttpRouter, path: str, *, operation_id: str, summary: str, script: str
) -> None:
    """Declare GET `path`, answering `script` as JavaScript."""

    def serve() -> Response[str]:
        return Response(200, "text/javascript; charset=utf-8", script, dict(CACHED))

    serve.__name__ = operation_id
    router.get(
        path,
        operation_id=operation_id,
        tags=["client"],
        summary=summary,
        responses=answers(
            200, "JavaScript.", content={"text/javascript": {"schema": {"type": "string"}}}
        ),
        openapi_extensions=PUBLIC,
    )(serve)
