#!/usr/bin/env python3
"""The darkroom CDK app.

    cd cdk && npx aws-cdk@2 synth     # or deploy; cdk.json runs this file with ../.venv
    .venv/bin/python cdk/app.py       # the same synth, without the CDK CLI

Context options (cdk.json, or `-c key=value`) are listed in cdk/config.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# Run as a script, this file's directory shadows nothing but the project root is not on
# the path; the constructs import as the `cdk` package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aws_cdk as cdk

from cdk import nag
from cdk.bundling import DependencyCache
from cdk.config import DeployConfig
from cdk.stack import DarkroomStack

# Set here rather than in cdk.json so a synth from the tests and one from the CLI agree.
FEATURE_FLAGS: dict[str, Any] = {
    # Access logs are delivered under a bucket policy (the log bucket has ACLs off).
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
    "@aws-cdk/aws-s3:createDefaultLoggingPolicy": True,
    "@aws-cdk/aws-iam:minimizePolicies": True,
    "@aws-cdk/aws-ec2:ebsDefaultGp3Volume": True,
    "@aws-cdk/core:enablePartitionLiterals": True,
}


def build(
    context: dict[str, Any] | None = None,
    *,
    outdir: str | None = None,
    checks: bool = True,
    cache: DependencyCache | None = None,
) -> tuple[cdk.App, DarkroomStack]:
    app = cdk.App(context={**FEATURE_FLAGS, **(context or {})}, outdir=outdir)
    config = DeployConfig.from_context(app.node.try_get_context)
    stack = DarkroomStack(app, config.stack_name, config=config, cache=cache)
    if checks:
        nag.add_checks(app)
    return app, stack


if __name__ == "__main__":
    app, _ = build()
    app.synth()
