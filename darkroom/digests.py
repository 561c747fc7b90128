"""SHA-256 digests for a run's manifest: of a file on disk, of bytes as they stream in,
and of a recipe as resolved (every default spelled out).

Standard library only: the worker's own process, the CLI and the Lambdas all use it, and
none of them should load an imaging library to hash."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from darkroom.recipes import Recipe, parse_recipe

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


def resolved_recipe(recipe: Mapping[str, Any] | Recipe | None) -> dict[str, Any]:
    """The recipe with every default in place: what a file was developed with, even when
    the job named only what it changed (or nothing)."""
    return parse_recipe(recipe).model_dump(mode="json")


def recipe_sha256(resolved: Mapping[str, Any]) -> str:
    """A resolved recipe's digest over canonical JSON (sorted keys, no spaces): the same
    settings give the same digest wherever they are hashed."""
    canonical = json.dumps(resolved, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
