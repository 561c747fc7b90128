"""The modules with a local cloud of their own, each run whole in a pytest process of
its own when other modules share the session (tests/integration/own_process.py)."""

from __future__ import annotations

import pytest

from tests.integration.own_process import ENV, MODULES, run_apart

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("module", MODULES)
def test_a_module_with_a_cloud_of_its_own_passes_in_a_process_of_its_own(module: str) -> None:
    completed = run_apart(module)
    tail = (completed.stdout[-6000:] + "\n" + completed.stderr[-3000:]).strip()
    assert completed.returncode == 0, f"{module} in its own process ({ENV}):\n{tail}"
    assert " passed" in completed.stdout, tail
