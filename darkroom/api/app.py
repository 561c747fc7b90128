"""The API as one Powertools resolver: its routers, its one table of how each failure is
answered, and the headers every answer carries. `handle` is what the Lambda calls."""

from __future__ import annotations

import base64
import re
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestValidationError,
    ValidationException,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from darkroom.api import assets, edge, gallery, jobs, proofing, shares, trace, unlock, uploads
from darkroom.api.context import (
    REQUEST_COOKIES,
    SERVICE_KEY,
    base_url_of_event,
    preferred_type,
)
from darkroom.api.errors import (
    ApiError,
    BadRequest,
    Conflict,
    ErrorBody,
    ErrorCode,
    Forbidden,
    Gone,
    NotFound,
    PasswordRequired,
    TooLarge,
    TooManyAttempts,
    TooManyRequests,
    Unavailable,
)
from darkroom.api.service import ApiService
from darkroom.errors import JobBusy
from darkroom.observability import logger
from darkroom.recipes import RecipeError, shorten

app = APIGatewayHttpResolver(enable_validation=True)
app.include_router(jobs.router)
app.include_router(uploads.router)
app.include_router(shares.router)
app.include_router(proofing.router)
app.include_router(unlock.router)
app.include_router(assets.router)
app.include_router(trace.router)

# Every failure a route answers on purpose, by class (or a base class).
ERRORS: dict[type[Exception], tuple[int, ErrorCode]] = {
    BadRequest: (400, "bad_request"),
    RecipeError: (400, "bad_request"),
    # The resolver's own request checks (it would answer 422).
    RequestValidationError: (400, "bad_request"),
    Forbidden: (403, "forbidden"),
    NotFound: (404, "not_found"),
    Conflict: (409, "conflict"),
    JobBusy: (409, "conflict"),
    Gone: (410, "gone"),
    TooLarge: (413, "too_large"),
    TooManyRequests: (429, "too_many_requests"),
    PasswordRequired: (401, "password_required"),
    TooManyAttempts: (429, "too_many_attempts"),
    Unavailable: (503, "unavailable"),
}

# How many problems an error message names, however many a request has.
_NAMED_PROBLEMS = 5

# Every answer: nothing here may be cached by a browser or proxy (links expire, tokens
# are secrets), and a browser must not guess types.
COMMON_HEADERS = {"cache-control": "no-store", "x-content-type-options": "nosniff"}


def error(status: int, code: ErrorCode, message: str, **details: Any) -> Response:
    body = ErrorBody(error=code, message=message, **details)
    return Response(status, "application/json", body.model_dump(mode="json"))


@app.exception_handler(list(ERRORS))
def _refused(exc: Exception) -> Response:
    if isinstance(exc, RequestValidationError) and _about_the_response(exc):
        return _crashed(exc)
    status, code = _status_of(exc)
    page = _unlock_page(exc) or _client_page(status) or _error_of(exc, status, code)
    if isinstance(exc, TooManyRequests):
        page.headers["retry-after"] = str(exc.retry_after)
    return page


def _error_of(exc: Exception, status: int, code: ErrorCode) -> Response:
    if isinstance(exc, ApiError):
        return error(status, code, exc.message, **exc.details)
    if isinstance(exc, ValidationException):
        return error(status, code, describe(exc))
    return error(status, code, str(exc))


def _status_of(exc: Exception) -> tuple[int, ErrorCode]:
    return next(ERRORS[c] for c in type(exc).__mro__ if c in ERRORS)


@app.not_found
def _no_route(exc: NotFoundError) -> Response:
    from darkroom.api.routes import allowed_methods

    event = app.current_event
    allowed = allowed_methods(event.path)
    if allowed:
        refused = error(405, "method_not_allowed", f"{event.http_method} is not allowed here")
        refused.headers["allow"] = ", ".join(allowed)
        return refused
    return _client_page(404) or error(404, "not_found", "no such route")


def _client_page(status: int) -> Response | None:
    """A client's browser that cannot open a share link is told so in a page, with the
    gallery's CSP and no referrer; API clients keep the JSON error."""
    event = app.current_event
    if status not in gallery.NOTICES or not event.path.startswith("/share/"):
        return None
    if preferred_type(event.headers.get("accept") or "") != "text/html":
        return None
    html, policy = gallery.notice(status, shares.studio_of(app.context[SERVICE_KEY].settings))
    headers = {
        **shares.PRIVATE_HEADERS,
        "content-security-policy": policy,
        "x-robots-tag": "noindex, nofollow",
    }
    return Response(status, "text/html; charset=utf-8", html, headers)


def _unlock_page(exc: Exception) -> Response | None:
    """A browser refused by a password-protected share gets the unlock form (again, with
    why: a wrong password, too many tries, a check that could not be made)."""
    event = app.current_event
    if not isinstance(exc, PasswordRequired | TooManyAttempts | Unavailable):
        return None
    if preferred_type(event.headers.get("accept") or "") != "text/html":
        return None
    token = exc.token if isinstance(exc, PasswordRequired | TooManyAttempts) else None
    if token is None:
        # Unavailable names no token: it is the unlock route's, /share/{token}/unlock.
        parts = event.path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "share" or parts[2] != "unlock":
            return None
        token = parts[1]
    service = app.context[SERVICE_KEY]
    base = service.public_base(base_url_of_event(event))
    html, policy = unlock.render(
        unlock.UnlockPage(
            studio=shares.studio_of(service.settings),
            form_url=f"{base}/share/{token}/unlock",
            next_path=unlock.asked_for(event, token),
            wrong=isinstance(exc, PasswordRequired) and exc.wrong,
            retry_after=exc.retry_after if isinstance(exc, TooManyAttempts) else None,
            unavailable=isinstance(exc, Unavailable),
        )
    )
    headers = {
        **shares.PRIVATE_HEADERS,
        "content-security-policy": policy,
        "x-robots-tag": "noindex, nofollow",
    }
    status, _ = _status_of(exc)
    return Response(status, "text/html; charset=utf-8", html, headers)


@app.exception_handler(Exception)
def _crashed(exc: Exception) -> Response:
    event = app.current_event
    # The method only: a share path carries its token, which logs must never hold.
    logger.exception("unhandled error", extra={"method": event.http_method})
    request_id = (event.raw_event.get("requestContext") or {}).get("requestId") or "-"
    return error(500, "internal", f"internal error; quote request id {request_id}")


def describe(exc: ValidationException) -> str:
    """The resolver's findings as one message naming each field as the client wrote it
    (the first few, each cut short: a body may carry thousands of unknown fields)."""
    found_all = exc.errors()
    problems = []
    for found in found_all[:_NAMED_PROBLEMS]:
        if found.get("type") == "json_invalid":
            reason = (found.get("ctx") or {}).get("error", "")
            return f"the request body is not valid JSON ({reason})"
        loc = list(found.get("loc") or ())
        if loc[:1] == ["body"]:
            loc = loc[1:]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
        where = shorten(where.lstrip(".")) or "body"
        problems.append(f"{where}: {found.get('msg', found.get('type'))}")
    more = len(found_all) - len(problems)
    return "invalid request: " + "; ".join(problems) + (f"; and {more} more" if more > 0 else "")


# No body this API takes comes near either limit: the most files a job declares (5,000)
# with 255-byte names are about 1.5 MB, and nothing nests deeper than four levels.
# Refusing before parsing keeps a hostile body from costing memory, time or a
# RecursionError in the JSON decoder.
MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_BODY_DEPTH = 32
# A JSON string (escapes included): brackets inside one do not nest anything.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKETS = re.compile(r"[\[\]{}]")


def _refused_body(event: dict[str, Any]) -> ApiError | None:
    """Why the request's body cannot be taken, before the resolver parses it: it would also
    parse forms and multipart, fail on bytes that are not UTF-8, and recurse once per
    level of nesting."""
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    content_type = headers.get("content-type", "").strip().lower()
    method = str(((event.get("requestContext") or {}).get("http") or {}).get("method", ""))
    body = event.get("body") or ""
    sends_body = bool(body) or method.upper() in ("POST", "PUT", "PATCH")
    # The forms this API takes, which work without script: the unlock page's and the
    # proofing controls'.
    form = content_type.startswith(unlock.FORM_TYPE) and str(event.get("rawPath") or "").rstrip(
        "/"
    ).endswith("/unlock")
    if (
        sends_body
        and content_type
        and not content_type.startswith("application/json")
        and not form
        and not _proofing_form(event, method, content_type)
    ):
        return BadRequest("the request body must be JSON (Content-Type: application/json)")
    if not body:
        return None
    if event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(body).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return BadRequest("the request body is not valid JSON (it is not UTF-8 text)")
    size = len(body.encode("utf-8", "surrogatepass"))
    if size > MAX_BODY_BYTES:
        return TooLarge(
            f"the request body is {size} bytes; at most {MAX_BODY_BYTES} are accepted",
            max_body_bytes=MAX_BODY_BYTES,
        )
    if _depth(body) > MAX_BODY_DEPTH:
        return BadRequest(f"the request body nests more than {MAX_BODY_DEPTH} levels deep")
    return None


def _proofing_form(event: dict[str, Any], method: str, content_type: str) -> bool:
    """The gallery's proofing form, the one body a browser sends without script: a
    urlencoded POST to /share/{token}/favourites/{file_name} (its route reads it)."""
    path = str(event.get("rawPath") or "").strip("/").split("/")
    return (
        method.upper() == "POST"
        and content_type.startswith("application/x-www-form-urlencoded")
        and len(path) == 4
        and path[0] == "share"
        and path[2] == "favourites"
    )


def _depth(text: str) -> int:
    """How deeply JSON text nests arrays and objects (stopping once past the limit)."""
    depth = deepest = 0
    for bracket in _BRACKETS.finditer(_JSON_STRING.sub("", text)):
        depth += 1 if bracket.group() in "[{" else -1
        deepest = max(deepest, depth)
        if deepest > MAX_BODY_DEPTH:
            break
    return deepest


def _about_the_response(exc: RequestValidationError) -> bool:
    # The resolver reports a route's answer that fails its own model as a request error;
    # that is a fault here, not the client's.
    return any(list(e.get("loc") or ())[:1] == ["response"] for e in exc.errors())


def handle(
    event: dict[str, Any], context: LambdaContext | None, service: ApiService
) -> dict[str, Any]:
    """An HTTP API event (payload format 2.0) in, a proxy result out."""
    # First: a request that went around the edge learns nothing else about itself.
    bypass = edge.refused(event, service.origin_verify)
    refused = _refused_body(event) if bypass is None else None
    result: dict[str, Any]
    if bypass is not None:
        result = bypass
    elif refused is not None:
        status, code = _status_of(refused)
        body = ErrorBody(error=code, message=refused.message, **refused.details)
        result = {
            "statusCode": status,
            "headers": {"content-type": "application/json"},
            "body": body.model_dump_json(),
            "isBase64Encoded": False,
        }
    else:
        app.append_context(**{SERVICE_KEY: service})
        cookies = REQUEST_COOKIES.set(tuple(str(c) for c in event.get("cookies") or ()))
        try:
            result = app.resolve(event, context)  # type: ignore[arg-type]
        finally:
            REQUEST_COOKIES.reset(cookies)
    headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
    result["statusCode"] = int(result["statusCode"])
    result["body"] = result.get("body") or ""
    result["headers"] = {**COMMON_HEADERS, **headers}
    return result
