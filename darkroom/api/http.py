"""HTTP API events in, proxy results out, and the errors every route may answer with."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class ApiError(Exception):
    """An answer other than success; always sent as JSON {"error", "message", ...}."""

    status = 500
    code = "internal"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.details}


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class NotFound(ApiError):
    status, code = 404, "not_found"


class MethodNotAllowed(ApiError):
    status, code = 405, "method_not_allowed"


class Conflict(ApiError):
    status, code = 409, "conflict"


class Gone(ApiError):
    status, code = 410, "gone"


class TooLarge(ApiError):
    status, code = 413, "too_large"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    query: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    path_params: Mapping[str, str] = field(default_factory=dict)
    # Where the request came in: the base of absolute links such as share URLs.
    base_url: str = ""
    # The IAM principal API Gateway authorised (None on open routes and locally).
    caller: str | None = None
    request_id: str = ""

    def json(self) -> dict[str, Any]:
        """The body as a JSON object; an empty body is an empty object."""
        if not self.body.strip():
            return {}
        try:
            value = json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"the request body is not valid JSON ({exc})") from exc
        if not isinstance(value, dict):
            raise BadRequest("the request body must be a JSON object")
        return value

    def prefers_html(self) -> bool:
        return preferred_type(self.headers.get("accept", "")) == "text/html"


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, document: Any, **headers: str) -> Response:
        return cls(status, json.dumps(document).encode(), "application/json", headers)

    @classmethod
    def html(cls, status: int, page: str, **headers: str) -> Response:
        return cls(status, page.encode(), "text/html; charset=utf-8", headers)


def preferred_type(accept: str) -> str:
    """application/json or text/html, by the Accept header's q-values (JSON on a tie)."""
    best = {"application/json": 0.0, "text/html": 0.0}
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.lower()
        for candidate in best:
            kind = candidate.split("/")[0]
            if media in (candidate, f"{kind}/*", "*/*"):
                # An exact match outranks a wildcard at the same q.
                score = q + (0.001 if media == candidate and q > 0 else 0.0)
                best[candidate] = max(best[candidate], score)
    if not accept.strip():
        return "application/json"
    return "text/html" if best["text/html"] > best["application/json"] else "application/json"


def request_from_event(event: Mapping[str, Any]) -> Request:
    """An HTTP API payload format 2.0 event as a Request."""
    context = event.get("requestContext") or {}
    http = context.get("http") or {}
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    raw_body = event.get("body") or ""
    body = (
        base64.b64decode(raw_body)
        if event.get("isBase64Encoded")
        else raw_body.encode("utf-8", "surrogatepass")
    )
    domain = context.get("domainName") or headers.get("host", "")
    scheme = headers.get("x-forwarded-proto", "https")
    iam = (context.get("authorizer") or {}).get("iam") or {}
    return Request(
        method=str(http.get("method", "GET")).upper(),
        path=str(event.get("rawPath") or http.get("path") or "/"),
        headers=headers,
        query={str(k): str(v) for k, v in (event.get("queryStringParameters") or {}).items()},
        body=body,
        path_params={str(k): str(v) for k, v in (event.get("pathParameters") or {}).items()},
        base_url=f"{scheme}://{domain}" if domain else "",
        caller=iam.get("userArn"),
        request_id=str(context.get("requestId", "")),
    )


# Every answer: nothing here may be cached by a browser or proxy (links expire, tokens
# are secrets), and a browser must not guess types.
_COMMON_HEADERS = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
}


def to_proxy_result(response: Response) -> dict[str, Any]:
    headers = {**_COMMON_HEADERS, **{k.lower(): v for k, v in response.headers.items()}}
    if response.content_type:
        headers["content-type"] = response.content_type
    result: dict[str, Any] = {"statusCode": response.status, "headers": headers}
    try:
        result["body"] = response.body.decode("utf-8")
        result["isBase64Encoded"] = False
    except UnicodeDecodeError:
        result["body"] = base64.b64encode(response.body).decode("ascii")
        result["isBase64Encoded"] = True
    return result


def error_response(error: ApiError) -> Response:
    return Response.json(error.status, error.body())
