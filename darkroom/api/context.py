"""What a route may ask of the request besides its parameters and body: the service, the
signing caller, where the request came in, and which answer type the client prefers.

Each is a Depends() of Powertools' resolver, so routes declare them as typed parameters
and the OpenAPI document leaves them out."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Request
from aws_lambda_powertools.event_handler.depends import Depends

SERVICE_KEY = "service"  # where app.handle puts the service in the resolver's context

# The request's cookies ("name=value" each, payload 2.0's `cookies`), set by app.handle
# for the one place that reads them: the share gate (ShareOperations._shared). A
# ContextVar, so the gate needs no route to hand them over: a share route added later
# goes through the same gate without knowing of passwords. Unset, there are none.
REQUEST_COOKIES: ContextVar[tuple[str, ...]] = ContextVar("request_cookies", default=())


def current_service(request: Request) -> Any:
    """The ApiService serving this request; each router types it as the operations it uses."""
    return request.context[SERVICE_KEY]


def _context(request: Request) -> dict[str, Any]:
    context: dict[str, Any] = request.resolved_event.raw_event.get("requestContext") or {}
    return context


def caller_of(request: Request) -> str | None:
    """The IAM principal API Gateway authorised (None on open routes and locally)."""
    iam = (_context(request).get("authorizer") or {}).get("iam") or {}
    user_arn = iam.get("userArn")
    return str(user_arn) if user_arn else None


def base_url_of(request: Request) -> str:
    """Where the request came in: the base of absolute links such as share URLs."""
    return base_url_of_event(request.resolved_event)


def base_url_of_event(event: Any) -> str:
    """base_url_of, for an event outside a route (an error handler's page)."""
    context = event.raw_event.get("requestContext") or {}
    domain = context.get("domainName") or event.headers.get("host") or ""
    scheme = event.headers.get("x-forwarded-proto") or "https"
    return f"{scheme}://{domain}" if domain else ""


def prefers_html(request: Request) -> bool:
    accept = request.headers.get("accept") or ""
    return preferred_type(accept) == "text/html"


Caller = Annotated[str | None, Depends(caller_of)]
BaseUrl = Annotated[str, Depends(base_url_of)]
PrefersHtml = Annotated[bool, Depends(prefers_html)]


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
