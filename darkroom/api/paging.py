"""Pages of a job's files (its status, a share of it): their sizes and their cursors.

A cursor is the name of the last file a page read, base64url-encoded so that clients
treat it as opaque. It is not signed: the next page is read from the job's own file
items, after whatever name the cursor holds, so a forged cursor can only skip ahead
within what its bearer may list anyway. One that does not decode to a plain file name
is refused (400), never a 500.
"""

from __future__ import annotations

import base64
import binascii

from darkroom import keys
from darkroom.api.errors import BadRequest

DEFAULT_FILES = 100
MAX_FILES = 500


def encode_cursor(file_name: str) -> str:
    return base64.urlsafe_b64encode(file_name.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    """The file name a page continues after (None: from the first file)."""
    if cursor is None:
        return None
    refused = BadRequest("cursor is not one this API issued; pass a page's next_cursor as is")
    if not cursor or len(cursor) > 400:  # 255 bytes encode to 340 characters
        raise refused
    try:
        raw = base64.urlsafe_b64decode(cursor.encode("ascii") + b"=" * (-len(cursor) % 4))
        # Only the alphabet: b64decode would skip stray characters, so two cursors
        # could mean one name.
        if encode_cursor(raw.decode("utf-8")) != cursor:
            raise ValueError(cursor)
        return keys.validate_file_name(raw.decode("utf-8"))
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise refused from exc
