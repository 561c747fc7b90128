"""The studio's webhook: each job event's JSON, POSTed and signed with HMAC-SHA256.

Headers: `X-Darkroom-Timestamp: <epoch seconds>` and
`X-Darkroom-Signature: sha256=<hex HMAC of "<timestamp>.<body>">`. Signing the timestamp
with the body lets a receiver refuse an old request replayed (compare it with its clock);
`verify` is what a receiver runs.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from darkroom import names

TIMEOUT_SECONDS = 10


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: str,
    timestamp: str,
    body: bytes,
    header: str,
    *,
    now: float | None = None,
    tolerance: float = 300,
) -> bool:
    """Whether a request's signature header matches, and its timestamp is recent."""
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance and hmac.compare_digest(signature(secret, timestamp, body), header)


@dataclass(frozen=True)
class Delivered:
    attempts: int
    status: int | None
    error: str | None


def post(
    url: str,
    body: bytes,
    secret: str,
    *,
    attempts: int = 3,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> Delivered:
    """POST with retries (0.5 s, 1 s, 2 s... apart) on a network error, a 5xx or a 429;
    another 4xx is the receiver's refusal and is not tried again. Never raises."""
    error = None
    status = None
    for attempt in range(1, attempts + 1):
        # Signed afresh each try: a receiver checking the timestamp's age accepts a retry.
        timestamp = str(int(clock()))
        request = Request(
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "darkroom-webhook",
                names.WEBHOOK_TIMESTAMP_HEADER: timestamp,
                names.WEBHOOK_SIGNATURE_HEADER: signature(secret, timestamp, body),
            },
        )
        try:
            with urlopen(request, timeout=TIMEOUT_SECONDS) as answer:
                return Delivered(attempt, answer.status, None)
        except HTTPError as exc:
            status, error = exc.code, f"HTTP {exc.code} from the webhook"
            if exc.code < 500 and exc.code != 429:
                return Delivered(attempt, status, error)
        except (URLError, OSError) as exc:
            status, error = None, f"webhook unreachable: {getattr(exc, 'reason', exc)}"
        if attempt < attempts:
            sleep(0.5 * 2 ** (attempt - 1))
    return Delivered(attempts, status, f"{error} (after {attempts} tries)")
