"""moto settings shared by tests that mock AWS in-process."""

from __future__ import annotations

from typing import Final

from moto.core.config import DefaultConfig

# moto's config is process-wide and a local cloud in this process (the integration
# tests' session cloud) turns execution on: a test's executions must stay RUNNING until
# it stops them.
IDLE_STATE_MACHINES: Final[DefaultConfig] = {"stepfunctions": {"execute_state_machine": False}}
