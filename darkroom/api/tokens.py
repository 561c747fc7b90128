"""Share tokens: "<share id>.<secret>", where only a SHA-256 of the whole token is stored.

The id locates the record with one key lookup (no index on the hash); the secret, 256
random bits, is what makes the link unguessable. A leaked table reveals no usable link.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

SECRET_BYTES = 32  # 256 bits: far past guessing, whatever the rate limit
# Matched in full: `$` alone would let a trailing newline through.
_SHARE_ID = re.compile(r"[0-9a-f]{20}")
_SECRET = re.compile(r"[A-Za-z0-9_-]{43}")  # token_urlsafe(32)


@dataclass(frozen=True)
class IssuedToken:
    share_id: str
    token: str
    sha256: str


def issue() -> IssuedToken:
    share_id = secrets.token_hex(10)
    token = f"{share_id}.{secrets.token_urlsafe(SECRET_BYTES)}"
    return IssuedToken(share_id, token, digest(token))


def digest(token: str) -> str:
    # A plain hash suffices: the secret is random, so there is nothing to brute-force
    # that a slow hash would protect.
    return hashlib.sha256(token.encode()).hexdigest()


def share_id_of(token: str) -> str | None:
    """The share id a well-formed token names, else None (malformed tokens are unknown)."""
    share_id, dot, secret = token.partition(".")
    if not dot or not _SHARE_ID.fullmatch(share_id) or not _SECRET.fullmatch(secret):
        return None
    return share_id


def valid_share_id(share_id: str) -> bool:
    return bool(_SHARE_ID.fullmatch(share_id))


def matches(token: str, stored_sha256: str) -> bool:
    return hmac.compare_digest(digest(token), stored_sha256)
