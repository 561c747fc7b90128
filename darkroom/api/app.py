"""The API's front: an HTTP API event in, a proxy result out, whatever happens inside."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from darkroom.api.http import (
    ApiError,
    BadRequest,
    MethodNotAllowed,
    NotFound,
    Request,
    Response,
    error_response,
    request_from_event,
    to_proxy_result,
)
from darkroom.api.routes import resolve
from darkroom.api.service import ApiService
from darkroom.observability import logger


def dispatch(request: Request, service: ApiService) -> Response:
    match = resolve(request.method, request.path)
    route = match.route
    if route is None:
        if match.on_path:
            allowed = ", ".join(sorted({r.method for r in match.on_path}))
            return Response.json(
                405,
                MethodNotAllowed(f"{request.method} is not allowed here").body(),
                allow=allowed,
            )
        raise NotFound("no such route")
    operation = getattr(service, route.operation)
    response: Response = operation(request, **match.params)
    return response


def handle(event: Mapping[str, Any], service: ApiService) -> dict[str, Any]:
    try:
        request = request_from_event(event)
    except (ValueError, TypeError) as exc:
        return to_proxy_result(error_response(BadRequest(f"malformed request ({exc})")))
    try:
        response = dispatch(request, service)
    except ApiError as exc:
        if exc.status >= 500:
            logger.error("api error", extra={"error": exc.body()})
        response = error_response(exc)
    except Exception:
        # The method only: a share path carries its token, which logs must never hold.
        logger.exception("unhandled error", extra={"method": request.method})
        response = Response.json(
            500,
            {
                "error": "internal",
                "message": f"internal error; quote request id {request.request_id or '-'}",
            },
        )
    return to_proxy_result(response)
