"""Test modules that start a local cloud of their own. moto's backends are one per
process, and the session's cloud (conftest.py) may already hold them in this process
(an xdist worker runs many modules): a second cloud there collides with the first
("Role darkroom-local already exists"). Beside other modules, such a module therefore
runs in a pytest process of its own (test_own_process.py); run alone, it runs here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Set in the child process: there the module runs as it is.
ENV = "DARKROOM_OWN_PROCESS"
MODULES = ("test_edge_origin.py", "test_edge_origin_fault.py", "test_pool_scaling.py")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def runs_apart(module_file: str, collected: set[str]) -> bool:
    """Whether this session leaves the module to a process of its own: it is one of
    MODULES, this is not that process, and other modules share the session."""
    name = Path(module_file).name
    return name in MODULES and not os.environ.get(ENV) and bool(collected - {name})


def run_apart(module: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, ENV: module}
    env.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            str(HERE / module),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
