"""One synth of the CDK app per test session, shared by every infra test.

The app is synthesized in-process (no CDK CLI, no AWS account, no Docker), with a pool
of two instances so the per-instance wiring is exercised, and without the cdk-nag
plugin: test_checks.py runs the pack itself to report findings one by one. A second
synth, `configured_synth`, changes the options a deployer is most likely to change.

Every synth runs without credentials: AWS_* variables removed, the AWS config and
credentials files pointed at paths that do not exist, and CDK_DEFAULT_ACCOUNT/REGION
(what the CDK CLI exports from a profile) set to values no template may contain. (The
jsii Node process starts at the first aws_cdk import and keeps that environment; the
CDK reads no credentials to synth.) Without Node.js or the cdk extra the infra tests
skip on a developer's machine and fail in CI (CI set, as CI services do).
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
# Every option below differs from its default (test_config.py checks the defaults), and
# the instance type is x86: the default is Graviton.
VOLUME_KEY = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
CONFIGURED_CONTEXT: dict[str, Any] = {
    # A second stack beside the default one in the same account and region.
    "stack_name": "studio-b",
    "pool_size": 3,
    "worker_instance_types": "c7i.2xlarge,c6i.2xlarge,m7i.2xlarge",
    "ebs_kms_key": VOLUME_KEY,
    "raw_infrequent_access_days": 0,  # never
    "raw_archive_after_days": 90,
    "raw_expire_after_days": 365,
    "raw_noncurrent_expire_after_days": 30,
    "processed_infrequent_access_days": 90,
    "processed_expire_days": 730,
    "cost_guard_max_idle_minutes": 45,
    "thumbnail_reserved_concurrency": 10,
    # Automatic delivery: an SES domain identity, its scoped send grant, a webhook.
    "sender_email": "photos@studio-b.example",
    "photographer_email": "lens@studio-b.example",
    "webhook_url": "https://hooks.studio-b.example/darkroom",
}
# What `cdk` exports from a profile; an environment-agnostic app never reads them.
CLI_ACCOUNT = "210987654321"
CLI_REGION = "ap-southeast-4"

# A studio's deploy through the CDK CLI with its credentials (cdk/app.py's deployer):
# the account and region it exports, and the lookups it has done and kept in
# cdk.context.json, as the CLI passes them back to the app.
STUDIO_ACCOUNT = "111122223333"
STUDIO_REGION = "eu-west-1"
STUDIO_DEPLOYER = {"CDK_DEFAULT_ACCOUNT": STUDIO_ACCOUNT, "CDK_DEFAULT_REGION": STUDIO_REGION}
LOOKED_UP_AMI = "ami-0fedcba9876543210"
AL2023_ARM64 = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.1-arm64"
STUDIO_LOOKUPS: dict[str, Any] = {
    f"ssm:account={STUDIO_ACCOUNT}:parameterName={AL2023_ARM64}:region={STUDIO_REGION}": (
        LOOKED_UP_AMI
    ),
    f"availability-zones:account={STUDIO_ACCOUNT}:region={STUDIO_REGION}": [
        f"{STUDIO_REGION}a",
        f"{STUDIO_REGION}b",
        f"{STUDIO_REGION}c",
    ],
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.infra)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def require(available: bool, missing: str) -> None:
    """Skip a developer's run without the CDK toolchain; fail CI's."""
    if available:
        return
    if in_ci():
        pytest.fail(f"CI is set but {missing}: the infra tests must run in CI")
    pytest.skip(missing)


def require_cdk() -> None:
    require(shutil.which("node") is not None, "the CDK app needs Node.js 20+ (jsii runtime)")
    try:
        import aws_cdk  # noqa: F401
    except ImportError:
        require(False, "aws_cdk is not installed: pip install -e '.[cdk]'")


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

    def functions(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """darkroom.names.Function key -> (logical id, resource), in this synth's stack."""
        from tests.infra.helpers import functions_by_name

        return functions_by_name(self.template, self.stack.stack_name)

    def resource(self, construct: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.template["Resources"][self.logical_id(construct)]
        return result


def without_aws_credentials(monkeypatch: pytest.MonkeyPatch, nowhere: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("AWS_", "CDK_DEFAULT_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(nowhere / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(nowhere / "credentials"))
    monkeypatch.setenv("CDK_DEFAULT_ACCOUNT", CLI_ACCOUNT)
    monkeypatch.setenv("CDK_DEFAULT_REGION", CLI_REGION)


def synthesize(
    context: dict[str, Any],
    factory: pytest.TempPathFactory,
    *,
    deployer: dict[str, str] | None = None,
) -> Synth:
    require_cdk()
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from cdk.app import build
    from cdk.bundling import DependencyCache

    outdir = factory.mktemp("cdk.out")
    nowhere = factory.mktemp("no-aws-profile")
    cache = DependencyCache()
    with pytest.MonkeyPatch.context() as monkeypatch:
        without_aws_credentials(monkeypatch, nowhere)
        started = time.monotonic()
        app, stack = build(
            context, outdir=str(outdir), checks=False, cache=cache, deployer=deployer
        )
        built = time.monotonic()
        assembly = app.synth()
        done = time.monotonic()
    template = assembly.get_stack_by_name(stack.stack_name).template
    (outdir / "template.pretty.json").write_text(json.dumps(template, indent=1))
    return Synth(
        app=app,
        stack=stack,
        template=template,
        outdir=outdir,
        build_seconds=built - started,
        synth_seconds=done - built,
        pip_runs=cache.pip_runs,
    )


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    yield synthesize(CONTEXT, tmp_path_factory)


@pytest.fixture(scope="session")
def studio_deploy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    """A deploy with the edge to eu-west-1 as the CDK CLI runs it with a studio's
    credentials: the account and region from its profile, its lookups from
    cdk.context.json. The web ACL is in a us-east-1 stack of the same account."""
    context = {**CONTEXT, "edge": True, "edge_rate_limit": 600, **STUDIO_LOOKUPS}
    yield synthesize(context, tmp_path_factory, deployer=STUDIO_DEPLOYER)


@pytest.fixture(scope="session")
def configured_synth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    """The app with non-default options (about 2 s more once `synth` has run)."""
    yield synthesize(CONFIGURED_CONTEXT, tmp_path_factory)
