"""The answers other than success. Each is sent as JSON {"error", "message", ...}; the
status and code of each class are in the app's one exception-handler table (app.py)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from darkroom import keys


class ApiError(Exception):
    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class BadRequest(ApiError):
    pass


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    pass


class Gone(ApiError):
    pass


class TooLarge(ApiError):
    pass


class Forbidden(ApiError):
    pass


class TooManyRequests(ApiError):
    """Over a rate; `retry_after` (seconds) goes out as the Retry-After header too."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after


class Unavailable(ApiError):
    """A dependency failed where going on would be unsafe (the unlock counter): try
    again shortly."""


class PasswordRequired(ApiError):
    """A password-protected share asked for without its cookie, or with a wrong
    password. `wrong` tells the unlock page to say the password was not right."""

    def __init__(self, message: str, *, token: str, wrong: bool = False) -> None:
        super().__init__(message)
        self.token = token
        self.wrong = wrong


class TooManyAttempts(TooManyRequests):
    """Too many wrong passwords for one share: try again after `retry_after` seconds."""

    def __init__(self, message: str, *, token: str, retry_after: int) -> None:
        super().__init__(message, retry_after=retry_after)
        self.token = token


ErrorCode = Literal[
    "bad_request",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "conflict",
    "gone",
    "too_large",
    "too_many_requests",
    "internal",
    "password_required",
    "too_many_attempts",
    "unavailable",
]


class ErrorBody(BaseModel):
    """Every error answer: a stable code, a message for people, and details by error."""

    model_config = ConfigDict(extra="allow")

    error: ErrorCode
    message: str


def known_job_id(value: str) -> str:
    """A job id from a path; one that cannot exist is simply not found."""
    try:
        return keys.validate_job_id(value)
    except ValueError as exc:
        raise NotFound(f"job {value!r} not found") from exc


# What each error status means, as the OpenAPI document says it.
_MEANINGS = {
    400: "Bad input; the message names what and why.",
    403: "The share link does not allow this (proofing is off for it).",
    404: "No such job, share or link.",
    409: "The job is not in a state that allows this.",
    410: "The link expired or was revoked.",
    401: "The share is protected by a password: unlock it first (POST /share/{token}/unlock).",
    503: "Could not be checked safely right now; try again shortly.",
    413: "More files or bytes than a job may have, or a request body too large to read.",
    429: "Too many writes or wrong passwords through this share link; wait `Retry-After` seconds.",
}


# The errors a client's browser is shown as a page (darkroom.api.gallery.NOTICES).
PAGE_ERRORS = frozenset({401, 403, 404, 409, 410, 429})


def answers(
    status: int,
    description: str,
    *errors: int,
    content: dict[str, Any] | None = None,
    pages: bool = False,
) -> dict[int, Any]:
    """A route's documented responses: its success (by default the route's return type, in
    JSON) and its errors; with `pages`, those a browser asking for HTML gets as a page."""
    success: dict[str, Any] = {"description": description}
    if content is not None:
        success["content"] = content
    documented: dict[int, Any] = {status: success}
    for error in errors:
        kinds: dict[str, Any] = {"application/json": {"model": ErrorBody}}
        if pages and error in PAGE_ERRORS:
            kinds["text/html"] = {"schema": {"type": "string"}}
        documented[error] = {"description": _MEANINGS[error], "content": kinds}
    return documented
