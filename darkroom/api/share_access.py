"""A share's optional password: how it is stored, and the cookie that proves a browser
typed it.

The password is kept only as an scrypt hash (the standard library's, OpenSSL's) whose
parameters travel with it ("scrypt$n=..,r=..,p=..$salt$hash"), so they can be raised
later without breaking shares made before. Checking costs about 0.1 s and 32 MiB on
purpose: a leaked table gives up a weak password slowly.

Once the password is right the client gets a cookie: an expiry and an HMAC-SHA256, under
the deployment's key, over the share's token hash, that expiry and the password hash's
salt. A new password has a new salt and a revoked share is refused before any cookie is
looked at, so either makes every earlier cookie worthless; a forged or stretched expiry
fails the HMAC. Nothing in the cookie says anything but "this browser knew the password".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Final

COOKIE_NAME: Final = "darkroom_share"
_COOKIE_VERSION: Final = "v1"

# 2**15 x 8 x 128 bytes = 32 MiB and ~0.1 s per check: OWASP's scrypt floor is
# N=2**17 r=8 p=1 (128 MiB); the API function has 512 MB and answers many requests at
# once, so a quarter of that, with a rate limit in front (see ShareOperations.unlock).
SCRYPT_N: Final = 2**15
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
_SALT_BYTES: Final = 16
_HASH_BYTES: Final = 32
# Room for N up to 2**17 at r=8 (what a later raise would need), and no more.
_MAX_MEM: Final = 256 * 1024 * 1024

MIN_PASSWORD: Final = 6
MAX_PASSWORD: Final = 128


class BadPasswordHash(ValueError):
    """A stored hash this code cannot read: never a match."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class PasswordHash:
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes

    def __str__(self) -> str:
        return f"scrypt$n={self.n},r={self.r},p={self.p}${_b64(self.salt)}${_b64(self.digest)}"

    @classmethod
    def parse(cls, stored: str) -> PasswordHash:
        try:
            scheme, params, salt, digest = stored.split("$")
            values = dict(part.split("=", 1) for part in params.split(","))
            parsed = cls(
                int(values["n"]), int(values["r"]), int(values["p"]), _unb64(salt), _unb64(digest)
            )
        except (ValueError, KeyError) as exc:
            raise BadPasswordHash("not an scrypt$n=..,r=..,p=..$salt$hash value") from exc
        if scheme != "scrypt" or not parsed.salt or not parsed.digest:
            raise BadPasswordHash(f"unknown password hash scheme {scheme!r}")
        return parsed


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAX_MEM, dklen=length
    )


def hash_password(password: str) -> str:
    """What the shares table keeps of a password."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, _HASH_BYTES)
    return str(PasswordHash(SCRYPT_N, SCRYPT_R, SCRYPT_P, salt, digest))


def password_matches(password: str, stored: str) -> bool:
    """Whether `password` is the one `stored` was made from, with the parameters it was
    made with; compared in constant time."""
    try:
        known = PasswordHash.parse(stored)
        typed = _scrypt(password, known.salt, known.n, known.r, known.p, len(known.digest))
    except (BadPasswordHash, ValueError):
        # A damaged hash (or parameters OpenSSL refuses) opens nothing.
        return False
    return hmac.compare_digest(typed, known.digest)


def salt_of(stored: str) -> bytes:
    return PasswordHash.parse(stored).salt


def _signature(key: bytes, token_sha256: str, expires: int, salt: bytes) -> str:
    message = f"{_COOKIE_VERSION}\n{token_sha256}\n{expires}\n{_b64(salt)}".encode()
    return _b64(hmac.new(key, message, hashlib.sha256).digest())


def sign_cookie(key: bytes, token_sha256: str, password_hash: str, expires: int) -> str:
    """The cookie's value: valid for this share, this password and until `expires`."""
    if not key:
        raise ValueError("no share cookie key: the deployment's secret was not loaded")
    signature = _signature(key, token_sha256, expires, salt_of(password_hash))
    return f"{_COOKIE_VERSION}.{expires}.{signature}"


def cookie_opens(
    key: bytes, value: str | None, token_sha256: str, password_hash: str, now: float
) -> bool:
    """Whether a cookie's value unlocks this share now: signed under `key` for this share
    and its current password, and not expired."""
    if not key or not value:
        return False
    version, _, rest = value.partition(".")
    expires_text, _, signature = rest.partition(".")
    if version != _COOKIE_VERSION or not expires_text.isdigit() or not signature:
        return False
    try:
        salt = salt_of(password_hash)
    except BadPasswordHash:
        return False
    expected = _signature(key, token_sha256, int(expires_text), salt)
    # Compare first, then the expiry: the answer's timing says nothing about the MAC.
    return hmac.compare_digest(expected, signature) and now < int(expires_text)


def set_cookie_header(value: str, path: str, max_age: int, secure: bool) -> str:
    """The Set-Cookie line: only this share's paths, never to scripts, not on cross-site
    subrequests (Lax: a link to the gallery from an e-mail still carries it)."""
    parts = [
        f"{COOKIE_NAME}={value}",
        f"Path={path}",
        f"Max-Age={max(int(max_age), 0)}",
        "HttpOnly",
        "SameSite=Lax",
    ]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


def cookie_from(cookies: list[str]) -> str | None:
    """This share's cookie among the request's ("name=value" each, as payload 2.0 has
    them). Path scoping means a browser sends only the share's own; the last wins if a
    client sends more."""
    found = None
    for cookie in cookies:
        name, eq, value = cookie.strip().partition("=")
        if eq and name == COOKIE_NAME:
            found = value.strip()
    return found
