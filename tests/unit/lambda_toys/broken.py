"""Cannot be imported: depends on a module that does not exist."""

from __future__ import annotations

from typing import Any

import darkroom_no_such_module  # noqa: F401


def handler(event: Any, context: Any) -> Any:
    return None
