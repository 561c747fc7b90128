"""The studio on its clients' pages: its name, an optional logo and an accent colour.

Deployment settings, checked the same way wherever they are given (the API's settings,
the CDK context, the local cloud): each value ends up in a page or its CSP, so what
could break out of either is refused here, at start-up or at synth, not on a page.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final
from urllib.parse import urlsplit

DEFAULT_ACCENT_COLOUR: Final = "#2b6cb0"
MAX_STUDIO_NAME: Final = 80
MAX_LOGO_URL: Final = 500
_COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
# A logo is fetched by the client's browser: only over TLS, except from this machine.
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def accent_colour(value: str) -> str:
    """#rgb or #rrggbb, as #rrggbb in lower case (empty: the default)."""
    value = value.strip()
    if not value:
        return DEFAULT_ACCENT_COLOUR
    if not _COLOUR.fullmatch(value):
        raise ValueError(f"{value[:20]!r} is not a colour: use #rgb or #rrggbb, e.g. #2b6cb0")
    if len(value) == 4:
        value = "#" + "".join(c * 2 for c in value[1:])
    return value.lower()


def studio_name(value: str) -> str:
    """Printable text of at most MAX_STUDIO_NAME characters (empty: no name shown)."""
    value = " ".join(value.split())
    if len(value) > MAX_STUDIO_NAME:
        raise ValueError(f"a studio name has at most {MAX_STUDIO_NAME} characters")
    if any(unicodedata.category(c).startswith("C") for c in value):
        raise ValueError("a studio name cannot hold control or format characters")
    return value


def logo_url(value: str) -> str:
    """An absolute https URL of an image (http only from this machine); empty: none.
    Its origin joins the page's img-src, so nothing may escape a CSP source list."""
    value = value.strip()
    if not value:
        return ""
    parts = urlsplit(value)
    host = parts.hostname or ""
    local = parts.scheme == "http" and host in _LOCAL_HOSTS
    if len(value) > MAX_LOGO_URL or not (parts.scheme == "https" or local) or not host:
        raise ValueError(
            f"a logo must be an https URL of at most {MAX_LOGO_URL} characters "
            "(http only from localhost)"
        )
    if any(c.isspace() or c in "\"'<>;,\\" or ord(c) < 32 for c in value) or parts.username:
        raise ValueError("a logo URL cannot hold spaces, quotes, ';', ',' or credentials")
    return value
