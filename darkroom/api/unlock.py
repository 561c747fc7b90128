"""Unlocking a password-protected share: the page a browser is shown instead of the
gallery (a plain form, no script, the gallery's look and strict CSP), and the route its
form posts to.

A browser posts the form (application/x-www-form-urlencoded) and is sent back, with
the unlock cookie, to what it asked for (`next`: the gallery, or the file link it
followed). An API client posts JSON {"password": ...} and gets 204 with the cookie.
The check itself is ShareOperations.unlock_share; the gate that asks for the cookie is
ShareOperations._shared, which every share route goes through.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from html import escape
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from aws_lambda_powertools.event_handler import Request, Response
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import ValidationError

from darkroom.api import gallery
from darkroom.api.context import BaseUrl, current_service
from darkroom.api.errors import BadRequest, answers
from darkroom.api.models import StudioView, UnlockShareIn
from darkroom.api.openapi import PUBLIC
from darkroom.api.shares import PRIVATE_HEADERS, ShareOperations

FORM_TYPE = "application/x-www-form-urlencoded"

# What the unlock page adds to the gallery's stylesheet (hashed with it, for the CSP).
_CSS = """
.unlock form{margin:1.25rem 0 0;text-align:left}
.unlock label{display:block;font-weight:600;margin:0 0 .35rem}
.unlock input[type=password]{display:block;width:100%;font:inherit;padding:.6rem .75rem;
border:1px solid #8c959f;border-radius:.375rem;background:#fff;color:#1f2328}
.unlock input[type=password]:focus{outline:3px solid var(--accent);outline-offset:1px}
.unlock button{margin-top:1rem;width:100%;font:inherit;font-weight:600;border:0;
border-radius:.375rem;padding:.65rem 1rem;background:var(--accent);color:var(--on-accent);
cursor:pointer}
.unlock .problem{color:#a40e26;background:#fff0f0;border-radius:.375rem;padding:.5rem .75rem;
margin:1rem 0 0;text-align:left}
""".strip()


@dataclass(frozen=True)
class UnlockPage:
    studio: StudioView
    form_url: str  # absolute: the share link + /unlock
    next_path: str  # relative to the share link: "" (the gallery) or "/files/..."
    wrong: bool = False
    retry_after: int | None = None
    unavailable: bool = False


def _minutes(seconds: int) -> str:
    minutes = max(1, -(-seconds // 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def render(page: UnlockPage) -> tuple[str, str]:
    """The unlock page and its Content-Security-Policy."""
    css = f"{gallery.stylesheet(page.studio.accent_colour)}\n{_CSS}"
    problem = ""
    if page.retry_after is not None:
        problem = (
            "There have been too many tries with the wrong password. To keep these photos "
            f"safe, please wait {_minutes(page.retry_after)} and try again."
        )
    elif page.unavailable:
        problem = "We could not check the password just now. Please try again in a minute."
    elif page.wrong:
        problem = "That password is not right. Please check it and try again."
    # role=alert: a screen reader announces why the page came back.
    problem_html = f'<p class="problem" role="alert">{escape(problem)}</p>\n' if problem else ""
    who = escape(page.studio.name) if page.studio.name else "Your photographer"
    body = f"""{gallery._studio_bar(page.studio)}
<main>
<section class="notice unlock">
<h1>These photos are protected</h1>
<p>{who} has kept this gallery private. Please enter the password that came with your link.</p>
{problem_html}<form method="post" action="{escape(page.form_url)}">
<input type="hidden" name="next" value="{escape(page.next_path)}">
<label for="password">Password</label>
<input type="password" id="password" name="password" required autocomplete="current-password"
 autofocus maxlength="1024">
<button type="submit">Open the gallery</button>
</form>
</section>
</main>"""
    html = gallery._document("Enter the password", css, body)
    # The form posts to the API: form-action names it (the gallery's policy has 'none').
    policy = gallery._policy(css, gallery._logo_sources(page.studio)).replace(
        "form-action 'none'", f"form-action {gallery.origin(page.form_url)}"
    )
    return html, policy


def next_path(value: str | None) -> str:
    """Where to go back to after unlocking, relative to the share link: only a path under
    it (the redirect is always the share link plus this), never anything that could
    leave it or split a header."""
    if not value:
        return ""
    if (
        not value.startswith(("/", "?"))
        or value.startswith("//")
        or "\\" in value
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)
        or len(value) > 2048
        or "/../" in f"{value}/"
    ):
        return ""
    return value


def asked_for(event: Any, token: str) -> str:
    """What a refused request asked for, relative to its share link, for the form's
    `next`: the path after /share/{token} and the query; for a failed unlock, the
    `next` its form posted."""
    path: str = event.path
    prefix = f"/share/{token}"
    if path.rstrip("/").endswith("/unlock"):
        if (event.headers.get("content-type") or "").split(";")[0].strip().lower() != FORM_TYPE:
            return ""
        raw = event.raw_event.get("body") or ""
        if event.raw_event.get("isBase64Encoded"):
            try:
                raw = base64.b64decode(raw).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                return ""
        return next_path((parse_qs(raw, max_num_fields=10).get("next") or [""])[0])
    rest = path[len(prefix) :] if path.startswith(prefix) else ""
    query = event.raw_event.get("rawQueryString") or ""
    return next_path(rest + (f"?{query}" if query else ""))


@dataclass(frozen=True)
class UnlockRequest:
    password: str
    next_path: str
    from_form: bool


def unlock_request(request: Request) -> UnlockRequest:
    """The unlock route's body: a browser's form, or an API client's JSON."""
    event = request.resolved_event
    content_type = (event.headers.get("content-type") or "").split(";")[0].strip().lower()
    raw = event.raw_event.get("body") or ""
    if event.raw_event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(raw).decode("utf-8")
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest("the request body is not UTF-8 text") from exc
    if content_type == FORM_TYPE:
        fields = parse_qs(raw, keep_blank_values=True, max_num_fields=10)
        password = (fields.get("password") or [""])[0]
        if len(password) > 1024:
            raise BadRequest("password: at most 1024 characters")
        return UnlockRequest(password, next_path((fields.get("next") or [""])[0]), True)
    try:
        body = UnlockShareIn.model_validate(json.loads(raw or "null"))
    except (ValueError, ValidationError) as exc:
        # Never the input itself: it is a password.
        raise BadRequest(
            'the body must be JSON {"password": "..."} (at most 1024 characters)'
        ) from exc
    return UnlockRequest(body.password, "", False)


_PASSWORD = {"type": "string", "maxLength": 1024, "format": "password"}
_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"password": _PASSWORD},
                "required": ["password"],
                "additionalProperties": False,
            }
        },
        FORM_TYPE: {
            "schema": {
                "type": "object",
                "properties": {
                    "password": _PASSWORD,
                    "next": {
                        "type": "string",
                        "description": "Where to go back to, under the share link: "
                        '"" (the gallery) or e.g. "/files/{file_name}/{rendition}".',
                    },
                },
                "required": ["password"],
            }
        },
    },
}

router = APIGatewayHttpRouter()
Shares = Annotated[ShareOperations, Depends(current_service)]
Unlocking = Annotated[UnlockRequest, Depends(unlock_request)]


@router.post(
    "/share/<token>/unlock",
    operation_id="unlock_share",
    tags=["client"],
    summary="Unlock a password-protected share: sets the cookie its links ask for.",
    description=(
        'A JSON body {"password": "..."} (API clients: 204), or the unlock page\'s form '
        "(`application/x-www-form-urlencoded`, fields `password` and `next`: 303 back to "
        "the gallery or the link the client followed). Either sets `darkroom_share`, a "
        "signed cookie (HttpOnly, SameSite=Lax, Secure over https) scoped to the share's "
        "path, valid 7 days by default and never past the share's expiry; a new "
        "password or revoking the share makes it worthless. A wrong password answers "
        "401; after 5 wrong ones in 15 minutes (per share) 429 with Retry-After. A share "
        "without a password needs no unlocking: 204 (or 303) with no cookie. 503 when "
        "the attempt could not be counted: nothing is unlocked then."
    ),
    responses={
        **answers(
            204,
            "Unlocked (JSON); the answer sets the cookie.",
            400,
            401,
            404,
            410,
            429,
            503,
            content={},
            pages=True,
        ),
        303: {
            "description": "Unlocked (the form): the cookie, and `Location` back to the "
            "gallery or the link the client followed.",
            "content": {},
        },
    },
    # The body is read by unlock_request (a form or JSON), so the resolver does not
    # know it: the document says it here.
    openapi_extensions={**PUBLIC, "requestBody": _BODY},
)
def unlock_share(
    token: str, shares: Shares, unlocking: Unlocking, base_url: BaseUrl
) -> Response[None]:
    cookie = shares.unlock_share(token, unlocking.password, base_url)
    headers: dict[str, Any] = {**PRIVATE_HEADERS}
    if cookie is not None:
        headers["set-cookie"] = cookie
    if unlocking.from_form:
        # 303: the browser GETs what it asked for, now with the cookie.
        back = f"{shares.public_base(base_url)}/share/{quote(token, safe='.')}"
        headers["location"] = back + unlocking.next_path
        return Response(303, None, None, headers)
    return Response(204, None, None, headers)
