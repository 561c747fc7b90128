"""Template hygiene the CDK constructs do not offer as options."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import jsii


@jsii.implements(cdk.IResolvable)
class _DependsOnWithout:
    """The resource's DependsOn minus one entry, computed when the template is rendered
    (construct-level dependencies only become DependsOn entries during synthesis)."""

    def __init__(self, resource: cdk.CfnResource, implied: cdk.CfnResource) -> None:
        self.resource = resource
        self.implied = implied
        self.creation_stack: list[str] = []

    def resolve(self, context: Any) -> Any:
        stack = cdk.Stack.of(self.resource)
        keep = sorted(
            stack.resolve(d.logical_id)
            for d in self.resource.obtain_dependencies()
            if isinstance(d, cdk.CfnResource) and d.node.path != self.implied.node.path
        )
        return keep or None  # None drops the key

    def to_string(self) -> str:
        return cdk.Token.as_string(self)


def drop_implied_role_dependency(resource: Any, role: Any) -> None:
    """Lambda and Step Functions L2s add an explicit DependsOn on their role, which the
    role ARN's GetAtt already implies; cfn-lint (W3005) rightly calls it redundant. The
    DependsOn on the role's policy, which nothing else implies, stays."""
    assert isinstance(resource, cdk.CfnResource) and isinstance(role, cdk.CfnResource)
    resource.add_override("DependsOn", _DependsOnWithout(resource, role))
