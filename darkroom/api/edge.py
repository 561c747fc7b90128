"""The edge's origin check: share and asset paths answer only requests that came through
CloudFront (and so through its WAF rules), which adds the origin-verify header with a
secret value. Without it the execute-api address would bypass the per-IP rate limit.

Studio routes are not behind the edge and are IAM-signed: they are never checked here.
"""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import unquote

from darkroom import names
from darkroom.api.errors import ErrorBody


def on_edge(path: str) -> bool:
    return path.startswith(names.EDGE_PATH_PREFIXES)


def refused(event: dict[str, Any], expected: str) -> dict[str, Any] | None:
    """A 403 proxy result when `expected` is set, the path is one the edge serves and the
    request does not carry the header's value; None to go on."""
    if not expected:
        return None
    # Decoded: "/%73hare/..." must not slip past as a path the edge does not serve.
    path = unquote(str(event.get("rawPath") or ""))
    if not on_edge(path):
        return None
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    given = headers.get(names.ORIGIN_VERIFY_HEADER, "")
    # Constant time: the comparison must not tell a prober how much of a guess was right.
    if hmac.compare_digest(given.encode(), expected.encode()):
        return None
    body = ErrorBody(
        error="forbidden",
        message="share links are served through the studio's gallery address, not this one",
    )
    return {
        "statusCode": 403,
        "headers": {"content-type": "application/json"},
        "body": body.model_dump_json(),
        "isBase64Encoded": False,
    }
