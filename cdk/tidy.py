"""Template hygiene the CDK constructs do not offer as options."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import constructs
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


# CDK's cross-region reference providers (a writer in the producing stack, a reader in
# the consuming one), made while references are resolved: after every construct and
# aspect has run.
CROSS_REGION_PROVIDERS = (
    "Custom::CrossRegionExportWriterCustomResourceProvider",
    "Custom::CrossRegionExportReaderCustomResourceProvider",
)


@jsii.implements(constructs.IValidation)
class _TidyCrossRegionProviders:
    """Validations run once references are resolved and before the template is
    rendered: the one hook that sees the providers. It finds nothing wrong; it only
    drops their handlers' implied DependsOn on their roles, as drop_implied_role_dependency
    does for ours."""

    def __init__(self, stack: cdk.Stack) -> None:
        self.stack = stack

    def validate(self) -> list[str]:
        for provider_id in CROSS_REGION_PROVIDERS:
            provider = self.stack.node.try_find_child(provider_id)
            if provider is None:
                continue
            handler = provider.node.find_child("Handler")
            role = provider.node.find_child("Role")
            drop_implied_role_dependency(handler, role)
        return []


def tidy_cross_region_providers(stack: cdk.Stack) -> None:
    stack.node.add_validation(_TidyCrossRegionProviders(stack))
