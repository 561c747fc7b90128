"""Checks several test modules share: a committed file that must equal what its generator
makes, and code run in a fresh interpreter with handler settings and no ambient AWS."""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from darkroom.settings import RUNTIME_SETTINGS, env_key
from tests.conftest import REPO

# Handlers read their settings at import: every required one, any value.
HANDLER_ENV = {
    **{
        env_key(name): "i-1" if name == "worker_instance_ids" else f"test-{name}"
        for model in RUNTIME_SETTINGS
        for name, field in model.model_fields.items()
        if field.is_required()
    },
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}


def assert_generated(committed: Path, expected: str, regenerate: str) -> None:
    """Fail with a short diff when the committed file is not what the generator makes."""
    current = committed.read_text(encoding="utf-8")
    if current == expected:
        return
    diff = "".join(
        difflib.unified_diff(
            current.splitlines(keepends=True),
            expected.splitlines(keepends=True),
            "committed",
            "generated",
            n=1,
        )
    )
    pytest.fail(f"{committed.name} is stale; run `{regenerate}` and commit it.\n{diff[:4000]}")


def run_fresh_python(code: str, extra_env: Mapping[str, str] | None = None) -> None:
    """Run `code` in a new interpreter with HANDLER_ENV (plus `extra_env`) and none of this
    process's DARKROOM_ or AWS_ variables; fail with its stderr if it does not exit 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DARKROOM_", "AWS_"))}
    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, **HANDLER_ENV, **(extra_env or {})},
        cwd=REPO,
    )
    assert completed.returncode == 0, completed.stderr
