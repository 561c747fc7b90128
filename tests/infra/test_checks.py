"""cdk-nag AwsSolutions and cfn-lint on the synthesized app."""

from __future__ import annotations

import json

import pytest

from tests.infra.conftest import Synth

cdk = pytest.importorskip("aws_cdk", reason="install the cdk extra")

GENERIC_REASONS = {"", "n/a", "todo", "not needed", "ok", "false positive"}


# The defaults, and the options that add statements (fallback types, a volume key).
BOTH = pytest.mark.parametrize("which", ["synth", "configured_synth"])


@BOTH
def test_cdk_nag_aws_solutions_has_no_unacknowledged_finding(
    which: str, request: pytest.FixtureRequest
) -> None:
    from cdk_nag import AwsSolutionsChecks

    synth: Synth = request.getfixturevalue(which)
    report = AwsSolutionsChecks().validate_scope(synth.stack)
    findings = [
        f"{v.rule_name} at {r.construct_path}"
        for v in report.violations
        for r in v.violating_resources
    ]
    assert findings == [], "\n".join(findings)


def test_every_acknowledgment_is_specific_and_on_one_resource(synth: Synth) -> None:
    key = cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    seen = 0
    for construct in synth.stack.node.find_all():
        for entry in construct.node.metadata:
            if entry.type != key:
                continue
            for rule, reason in entry.data.items():
                if "AwsSolutions" not in rule:
                    continue  # CDK's own CloudFormation-Validate notes
                seen += 1
                where = construct.node.path
                assert isinstance(construct, cdk.CfnResource), (
                    f"{rule} acknowledged on {where}, a container: put it on the resource"
                )
                assert reason.strip().lower() not in GENERIC_REASONS and len(reason) > 60, (
                    f"{rule} on {where}: say why it is acceptable here"
                )
    assert seen, "no acknowledgments found: did nag.acknowledge run?"


@BOTH
def test_cfn_lint_is_clean(which: str, request: pytest.FixtureRequest) -> None:
    from cfnlint.api import lint

    synth: Synth = request.getfixturevalue(which)
    matches = lint(json.dumps(synth.template), regions=["us-east-1", "eu-west-1"])
    assert [str(m) for m in matches] == []
