"""Shared test helpers: where the shared samples are, and skipping when they aren't."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "samples"


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    if not SAMPLES.is_dir():
        pytest.skip(
            f"shared samples not present at {SAMPLES} (they live beside the repo, not in it)"
        )
    return SAMPLES
