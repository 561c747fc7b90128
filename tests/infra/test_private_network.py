"""private_network=true on the synthesized template: the workers in isolated subnets with
no public address and no NAT, the gateway and interface endpoints their calls need, each
interface endpoint open on 443 to the workers' security group only; the default stays
the cheapest (public subnets, no interface endpoint)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cdk.worker_pool import PRIVATE_ENDPOINTS
from tests.infra.conftest import CONTEXT, Synth, synthesize
from tests.infra.helpers import render

PRIVATE = {**CONTEXT, "stack_name": "studio-private", "private_network": True}


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize(PRIVATE, tmp_path_factory)


def _endpoints(synth: Synth) -> dict[str, dict[str, Any]]:
    """Service (the part after the region) -> endpoint resource."""
    return {
        render(r["Properties"]["ServiceName"]).rsplit(".", 1)[-1]: r
        for r in synth.resources("AWS::EC2::VPCEndpoint").values()
    }


def test_private_workers_have_no_route_out_and_no_public_address(private: Synth) -> None:
    assert not private.resources("AWS::EC2::InternetGateway")
    assert not private.resources("AWS::EC2::NatGateway")
    for route in private.resources("AWS::EC2::Route").values():
        assert "GatewayId" not in route["Properties"] or "VpcEndpoint" in json.dumps(route)
    subnets = private.resources("AWS::EC2::Subnet")
    assert subnets and all(
        not s["Properties"].get("MapPublicIpOnLaunch", False) for s in subnets.values()
    )
    for instance in private.resources("AWS::EC2::Instance").values():
        (interface,) = instance["Properties"]["NetworkInterfaces"]
        assert interface["AssociatePublicIpAddress"] is False
        assert interface["SubnetId"]["Ref"] in subnets


def test_private_workers_get_the_endpoints_their_calls_need(private: Synth) -> None:
    endpoints = _endpoints(private)
    wanted = {service for service, _ in PRIVATE_ENDPOINTS.values()}
    assert set(endpoints) == wanted | {"s3", "dynamodb"}
    assert {"ssm", "ssmmessages", "ec2messages", "ec2", "states", "logs"} == wanted
    for service in ("s3", "dynamodb"):
        assert endpoints[service]["Properties"]["VpcEndpointType"] == "Gateway"
    for service in wanted:
        props = endpoints[service]["Properties"]
        assert props["VpcEndpointType"] == "Interface" and props["PrivateDnsEnabled"] is True
        # One per AZ the workers use.
        assert len(props["SubnetIds"]) == 2


def test_interface_endpoints_take_https_from_the_workers_only(private: Synth) -> None:
    groups = private.resources("AWS::EC2::SecurityGroup")
    workers_id = private.logical_id(private.stack.worker_pool.security_group)
    (endpoint_group_id,) = set(groups) - {workers_id}
    ingress = groups[endpoint_group_id]["Properties"].get("SecurityGroupIngress", [])
    ingress += [
        r["Properties"]
        for r in private.resources("AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [endpoint_group_id, "GroupId"]}
    ]
    assert [
        (r["IpProtocol"], r["FromPort"], r["ToPort"], r["SourceSecurityGroupId"]) for r in ingress
    ] == [("tcp", 443, 443, {"Fn::GetAtt": [workers_id, "GroupId"]})]
    assert not any("CidrIp" in r for r in ingress)
    for endpoint in _endpoints(private).values():
        if endpoint["Properties"]["VpcEndpointType"] == "Interface":
            assert endpoint["Properties"]["SecurityGroupIds"] == [
                {"Fn::GetAtt": [endpoint_group_id, "GroupId"]}
            ]


def test_the_default_network_stays_the_cheapest(synth: Synth) -> None:
    assert {e["Properties"]["VpcEndpointType"] for e in _endpoints(synth).values()} == {"Gateway"}
    for instance in synth.resources("AWS::EC2::Instance").values():
        (interface,) = instance["Properties"]["NetworkInterfaces"]
        assert interface["AssociatePublicIpAddress"] is True


def test_cdk_nag_and_cfn_lint_are_clean_with_the_private_network(private: Synth) -> None:
    from cdk_nag import AwsSolutionsChecks
    from cfnlint.api import lint

    report = AwsSolutionsChecks().validate_scope(private.stack)
    findings = [
        f"{v.rule_name} at {r.construct_path}"
        for v in report.violations
        for r in v.violating_resources
    ]
    assert findings == [], "\n".join(findings)
    matches = lint(json.dumps(private.template), regions=["us-east-1", "eu-west-1"])
    assert [str(m) for m in matches] == []


def test_the_readme_prices_the_endpoints_the_stack_declares() -> None:
    from tests.infra.conftest import REPO

    readme = (REPO / "README.md").read_text()
    count, azs, hourly, hours = len(PRIVATE_ENDPOINTS), 2, 0.01, 730
    times = "\N{MULTIPLICATION SIGN}"
    assert (
        f"{count} endpoints {times} {azs} AZs {times} ${hourly} per endpoint-AZ-hour {times} "
        f"{hours} hours = **${count * azs * hourly * hours:.2f} a month**"
    ) in readme
    assert f"**${count * azs * 0.011 * hours:.2f}**" in readme
