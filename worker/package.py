"""Packaging a run's "download all" ZIPs (a placeholder until packaging is written)."""

from __future__ import annotations

import threading
from typing import Any

from darkroom.aws.job_store import JobStore
from darkroom.aws.objects import Objects


def package_run(
    job_id: str,
    run: str,
    *,
    jobs: JobStore,
    objects: Objects,
    bucket: str,
    lost: threading.Event,
) -> dict[str, Any]:
    """No ZIPs yet: the run is delivered without archives."""
    return {"archives": {}}
