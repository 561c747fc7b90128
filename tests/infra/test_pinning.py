"""The worker AMI pinned (worker_ami_id, or else a lookup the CDK CLI keeps in
cdk.context.json) and the pool's availability zones (availability_zones): a synth with
both set, a studio's deploy with neither, and the warning of a synth with no account."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cdk import config
from tests.infra.conftest import LOOKED_UP_AMI, STUDIO_ACCOUNT, Synth, synthesize

PINNED_AMI = "ami-0123456789abcdef0"
ZONES = ("eu-west-1b", "eu-west-1c")
PINNED_CONTEXT: dict[str, Any] = {
    "pool_size": 3,
    "worker_ami_id": PINNED_AMI,
    "availability_zones": ",".join(ZONES),
}


@pytest.fixture(scope="module")
def pinned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    yield synthesize(PINNED_CONTEXT, tmp_path_factory)


def _assert_pinned(synth: Synth, ami: str) -> None:
    instances = synth.resources("AWS::EC2::Instance")
    templates = synth.resources("AWS::EC2::LaunchTemplate")
    assert instances and templates
    for resource in instances.values():
        # A literal: not a parameter CloudFormation resolves from SSM at each deploy.
        assert resource["Properties"]["ImageId"] == ami
    for resource in templates.values():
        assert resource["Properties"]["LaunchTemplateData"]["ImageId"] == ami
    parameters = synth.template.get("Parameters", {})
    assert not [
        name
        for name, p in parameters.items()
        if p["Type"].startswith("AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>")
    ]


def test_a_pinned_ami_is_written_as_it_is_so_no_deploy_replaces_the_pool(pinned: Synth) -> None:
    _assert_pinned(pinned, PINNED_AMI)


def test_a_studios_deploy_without_a_pin_keeps_the_ami_the_cli_looked_up(
    studio_deploy: Synth,
) -> None:
    # The first `cdk deploy` with credentials looked the latest AL2023 up and kept it in
    # cdk.context.json; every later synth reads it back from there, whatever is newer.
    assert studio_deploy.stack.account == STUDIO_ACCOUNT
    _assert_pinned(studio_deploy, LOOKED_UP_AMI)
    assert not any("worker_ami_id" in w for w in _warnings(studio_deploy))
    manifest = json.loads((studio_deploy.outdir / "manifest.json").read_text())
    assert not manifest.get("missing"), "nothing left for the CLI to look up"


def _warnings(of: Synth) -> list[str]:
    # From the assembly's manifest, not jsii's message objects: those need a jsii
    # interface that is registered only if some other code imported it first.
    assembly = Path(of.app.synth().directory)
    artifact = json.loads((assembly / "manifest.json").read_text())["artifacts"][
        of.stack.artifact_id
    ]
    # Inline, or (newer CDK) in a file of its own beside the manifest.
    metadata = artifact.get("metadata") or {}
    if "additionalMetadataFile" in artifact:
        extra = assembly / artifact["additionalMetadataFile"]
        metadata = {**metadata, **json.loads(extra.read_text())}
    return [
        str(entry.get("data"))
        for entries in metadata.values()
        for entry in entries
        if entry.get("type") == "aws:cdk:warning"
    ]


def test_a_synth_with_no_account_warns_that_the_ami_floats(synth: Synth, pinned: Synth) -> None:
    assert any(
        "worker_ami_id is not set and the stack has no account" in w for w in _warnings(synth)
    )
    assert not any("worker_ami_id" in w for w in _warnings(pinned))


def test_cfn_lint_is_clean_with_a_pin_and_named_zones(pinned: Synth) -> None:
    import json

    from cfnlint.api import lint

    matches = lint(json.dumps(pinned.template), regions=["eu-west-1"])
    # W3010 (hardcoded zone) is the option itself: the deployer names the zones that
    # offer the pool's types. Only the subnets and the instances in them carry them.
    zoned = {m.path[1] for m in matches if m.rule.id == "W3010"}
    assert zoned == {*pinned.resources("AWS::EC2::Subnet"), *pinned.resources("AWS::EC2::Instance")}
    assert [str(m) for m in matches if m.rule.id != "W3010"] == []


def test_the_pool_subnets_are_in_the_named_zones(pinned: Synth) -> None:
    subnets = pinned.resources("AWS::EC2::Subnet")
    zones = {sid: s["Properties"]["AvailabilityZone"] for sid, s in subnets.items()}
    assert sorted(zones.values()) == sorted(ZONES)
    used = [
        zones[r["Properties"]["NetworkInterfaces"][0]["SubnetId"]["Ref"]]
        for r in pinned.resources("AWS::EC2::Instance").values()
    ]
    # Three instances over two zones: both zones hold workers, none is elsewhere.
    assert set(used) == set(ZONES)


@pytest.mark.parametrize(
    ("context", "complaint"),
    [
        ({"worker_ami_id": "al2023-latest"}, "worker_ami_id must be an AMI id"),
        ({"availability_zones": "eu-west-1"}, "must be zone names"),
        ({"availability_zones": "eu-west-1a,eu-west-1a"}, "lists a zone twice"),
        ({"availability_zones": "eu-west-1a,us-east-1a"}, "all be in one region"),
        ({"account": "1111-2222-3333"}, "account must be a 12-digit AWS account id"),
    ],
)
def test_a_mistyped_pin_or_zone_is_refused_before_synth(
    context: dict[str, object], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        config.DeployConfig.from_context(context.get)


def test_zones_and_pins_of_every_shape_aws_uses_are_accepted() -> None:
    got = config.DeployConfig.from_context(
        {"worker_ami_id": "ami-0abc1234", "availability_zones": "us-east-1-bos-1a,us-east-1a"}.get
    )
    assert got.zones == ("us-east-1-bos-1a", "us-east-1a")
