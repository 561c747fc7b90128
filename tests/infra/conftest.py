"""One synth of the CDK app per test session, shared by every infra test.

The app is synthesized in-process (no CDK CLI, no AWS account, no Docker), with a pool
of two instances so the per-instance wiring is exercised, and without the cdk-nag
plugin: test_checks.py runs the pack itself to report findings one by one.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
# jsii warns loudly about Node 20's end of life on every start; it is not our finding.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

CONTEXT: dict[str, Any] = {"pool_size": 2, "alarm_email": "studio-ops@example.com"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.infra)


@dataclass
class Synth:
    app: Any
    stack: Any
    template: dict[str, Any]
    outdir: Path
    build_seconds: float
    synth_seconds: float
    pip_runs: int

    def resources(self, kind: str) -> dict[str, dict[str, Any]]:
        return {k: r for k, r in self.template["Resources"].items() if r["Type"] == kind}

    def logical_id(self, construct: Any) -> str:
        from aws_cdk import CfnResource

        cfn = construct if isinstance(construct, CfnResource) else construct.node.default_child
        return str(self.stack.resolve(cfn.logical_id))

    def resource(self, construct: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.template["Resources"][self.logical_id(construct)]
        return result


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    if shutil.which("node") is None:
        pytest.skip("the CDK app needs Node.js (jsii runtime); install Node.js 20+")
    pytest.importorskip("aws_cdk", reason="install the cdk extra: pip install -e '.[cdk]'")
    sys.path.insert(0, str(REPO))
    from cdk.app import build
    from cdk.bundling import DependencyCache

    outdir = tmp_path_factory.mktemp("cdk.out")
    cache = DependencyCache()
    started = time.monotonic()
    app, stack = build(CONTEXT, outdir=str(outdir), checks=False, cache=cache)
    built = time.monotonic()
    assembly = app.synth()
    done = time.monotonic()
    template = assembly.get_stack_by_name(stack.stack_name).template
    (outdir / "template.pretty.json").write_text(json.dumps(template, indent=1))
    yield Synth(
        app=app,
        stack=stack,
        template=template,
        outdir=outdir,
        build_seconds=built - started,
        synth_seconds=done - built,
        pip_runs=cache.pip_runs,
    )
