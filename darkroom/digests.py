"""SHA-256 digests for a run's manifest: of a file on disk, of bytes as they stream in,
and of a resolved recipe (darkroom.recipes.resolved).

Standard library only: the worker's own process, the CLI's transfers and the Lambdas all
hash, and none of them should load more than hashing needs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

_CHUNK = 1024 * 1024


def sha256_file(path: Path) -> str:
    """The file's SHA-256 (hex), read a chunk at a time: a RAW is tens of MB."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_chunks(chunks: Iterable[bytes]) -> tuple[str, int]:
    """The SHA-256 (hex) and length of bytes arriving in chunks."""
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def recipe_sha256(resolved: Mapping[str, Any]) -> str:
    """A resolved recipe's digest over canonical JSON (sorted keys, no spaces): the same
    settings give the same digest wherever they are hashed."""
    canonical = json.dumps(resolved, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
