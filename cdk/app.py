#!/usr/bin/env python3
"""The darkroom CDK app.

    cd cdk && npx aws-cdk@2 synth     # or deploy; cdk.json runs this file with ../.venv
    .venv/bin/python cdk/app.py       # the same synth, without the CDK CLI

Context options (cdk.json, or `-c key=value`) are listed in cdk/config.py.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Run as a script, this file's directory shadows nothing but the project root is not on
# the path; the constructs import as the `cdk` package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aws_cdk as cdk

from cdk import nag
from cdk.bundling import DependencyCache
from cdk.config import EDGE_REGION, DeployConfig
from cdk.edge import EdgeAclStack, edge_acl_stack_name
from cdk.stack import DarkroomStack
from cdk.tidy import tidy_cross_region_providers

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
    deployer: Mapping[str, str] | None = None,
) -> tuple[cdk.App, DarkroomStack]:
    """The app and its main stack. `deployer` is the CDK CLI's environment variables
    (CDK_DEFAULT_ACCOUNT/REGION, its profile's): what the stack is for where the context
    does not say (DeployConfig.account)."""
    app = cdk.App(context={**FEATURE_FLAGS, **(context or {})}, outdir=outdir)
    config = DeployConfig.from_context(app.node.try_get_context, deployer)
    # Environment-agnostic unless a region or an account is known (the edge needs a
    # region: cdk/edge.py; pinning the worker AMI by lookup an account: worker_pool.py).
    env = (
        cdk.Environment(account=config.account or None, region=config.region or None)
        if config.region or config.account
        else None
    )
    web_acl_arn = config.edge_web_acl_arn or None
    if config.edge and not web_acl_arn and config.region != EDGE_REGION:
        # CloudFront takes its web ACL from us-east-1 only: a small stack there.
        acl_stack = EdgeAclStack(app, edge_acl_stack_name(config.stack_name), config=config)
        tidy_cross_region_providers(acl_stack)
        web_acl_arn = acl_stack.acl.arn
    stack = DarkroomStack(
        app,
        config.stack_name,
        config=config,
        cache=cache,
        env=env,
        edge_web_acl_arn=web_acl_arn,
        # The web ACL's ARN comes from us-east-1 (an SSM parameter CDK keeps there).
        cross_region_references=web_acl_arn is not None and not config.edge_web_acl_arn,
    )
    tidy_cross_region_providers(stack)
    if checks:
        nag.add_checks(app)
    return app, stack


if __name__ == "__main__":
    app, _ = build(deployer=os.environ)
    app.synth()
