"""The edge (cdk/edge.py) on the synthesized templates: a main stack outside us-east-1
gets a small us-east-1 stack holding the web ACL (a cross-region reference); one in
us-east-1 holds it itself; a studio's own web ACL needs no second stack. CloudFront adds
the origin-verify header from Secrets Manager by reference, the API's environment names
the secret (never its value), WAF's per-IP limit replaces the share route's throttle,
and the studio's routes are not served at the edge."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from darkroom import names
from darkroom.settings import env_key
from tests.infra.conftest import CONTEXT, Synth, synthesize

US = {
    **CONTEXT,
    "stack_name": "studio-us",
    "edge": True,
    "region": "us-east-1",
    "edge_managed_rules": False,
    "edge_domain_name": "photos.example-studio.com",
    "edge_certificate_arn": "arn:aws:acm:us-east-1:111122223333:certificate/1234abcd-12ab",
}
OWN_ACL = "arn:aws:wafv2:us-east-1:111122223333:global/webacl/studio-waf/a1b2c3d4-5678"
EU_OWN_ACL = {**CONTEXT, "stack_name": "studio-own", "edge": True, "edge_web_acl_arn": OWN_ACL}


@pytest.fixture(scope="module")
def eu(studio_deploy: Synth) -> Synth:
    return studio_deploy


@pytest.fixture(scope="module")
def us(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize(US, tmp_path_factory)


def _template(synth: Synth, stack_name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        (Path(synth.outdir) / f"{stack_name}.template.json").read_text()
    )
    return loaded


def _only(template: dict[str, Any], kind: str) -> dict[str, Any]:
    (found,) = [r for r in template["Resources"].values() if r["Type"] == kind]
    return dict(found)


def _stacks(synth: Synth) -> dict[str, Any]:
    import aws_cdk as cdk

    return {c.stack_name: c for c in synth.app.node.children if isinstance(c, cdk.Stack)}


def _rate_rule(acl: dict[str, Any]) -> dict[str, Any]:
    (rule,) = [r for r in acl["Properties"]["Rules"] if "RateBasedStatement" in r["Statement"]]
    return dict(rule)


def _api_function(synth: Synth) -> dict[str, Any]:
    return synth.functions()[names.Function.API][1]


def test_outside_us_east_1_the_web_acl_is_made_in_a_us_east_1_stack(eu: Synth) -> None:
    stacks = _stacks(eu)
    assert set(stacks) == {"darkroom", "darkroom-edge-acl"}
    assert stacks["darkroom-edge-acl"].region == "us-east-1"
    assert stacks["darkroom"].region == "eu-west-1"
    acl_template = _template(eu, "darkroom-edge-acl")
    acl = _only(acl_template, "AWS::WAFv2::WebACL")
    assert acl["Properties"]["Scope"] == "CLOUDFRONT"
    rule = _rate_rule(acl)
    assert rule["Statement"]["RateBasedStatement"] == {
        "Limit": 600,
        "AggregateKeyType": "IP",
        "EvaluationWindowSec": 300,
    }
    assert rule["Action"]["Block"]["CustomResponse"]["ResponseCode"] == 429
    groups = [
        r["Statement"]["ManagedRuleGroupStatement"]["Name"]
        for r in acl["Properties"]["Rules"]
        if "ManagedRuleGroupStatement" in r["Statement"]
    ]
    assert groups == ["AWSManagedRulesCommonRuleSet"]
    # The main stack holds no web ACL and reads the ARN across regions.
    assert not eu.resources("AWS::WAFv2::WebACL")
    distribution = _only(eu.template, "AWS::CloudFront::Distribution")
    web_acl = distribution["Properties"]["DistributionConfig"]["WebACLId"]
    (reader,) = eu.resources("Custom::CrossRegionExportReader")
    assert web_acl["Fn::GetAtt"][0] == reader


def test_in_us_east_1_the_web_acl_is_in_the_main_stack(us: Synth) -> None:
    assert set(_stacks(us)) == {"studio-us"}
    acl = _only(us.template, "AWS::WAFv2::WebACL")
    (acl_id,) = us.resources("AWS::WAFv2::WebACL")
    assert _rate_rule(acl)["Statement"]["RateBasedStatement"]["Limit"] == 1500
    # edge_managed_rules=false: the rate rule alone.
    assert len(acl["Properties"]["Rules"]) == 1
    config = _only(us.template, "AWS::CloudFront::Distribution")["Properties"]["DistributionConfig"]
    assert config["WebACLId"] == {"Fn::GetAtt": [acl_id, "Arn"]}
    # The custom domain with its certificate, and share links under it.
    assert config["Aliases"] == ["photos.example-studio.com"]
    assert config["ViewerCertificate"]["AcmCertificateArn"] == US["edge_certificate_arn"]
    assert config["ViewerCertificate"]["MinimumProtocolVersion"] == "TLSv1.2_2021"
    env = _api_function(us)["Properties"]["Environment"]["Variables"]
    assert env[env_key("api_public_url")] == "https://photos.example-studio.com"


def test_a_studios_own_web_acl_needs_no_second_stack_nor_a_region(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    own = synthesize(EU_OWN_ACL, tmp_path_factory)
    assert set(_stacks(own)) == {"studio-own"}
    assert not own.resources("AWS::WAFv2::WebACL")
    config = _only(own.template, "AWS::CloudFront::Distribution")["Properties"]
    assert config["DistributionConfig"]["WebACLId"] == OWN_ACL


def test_cloudfront_adds_the_origin_verify_header_from_the_secret_by_reference(eu: Synth) -> None:
    config = _only(eu.template, "AWS::CloudFront::Distribution")["Properties"]["DistributionConfig"]
    (origin,) = config["Origins"]
    assert origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    (header,) = origin["OriginCustomHeaders"]
    assert header["HeaderName"] == names.ORIGIN_VERIFY_HEADER
    secret_id = eu.logical_id(eu.stack.edge.secret)
    assert header["HeaderValue"] == {
        "Fn::Join": ["", ["{{resolve:secretsmanager:", {"Ref": secret_id}, ":SecretString:::}}"]]
    }
    # The origin is the API's own execute-api address.
    (api_id,) = eu.resources("AWS::ApiGatewayV2::Api")
    assert {"Ref": api_id} in origin["DomainName"]["Fn::Join"][1]


def test_the_api_env_names_the_secret_and_the_edge_url_never_the_value(eu: Synth) -> None:
    secret_id = eu.logical_id(eu.stack.edge.secret)
    (distribution_id,) = eu.resources("AWS::CloudFront::Distribution")
    function = _api_function(eu)
    env = function["Properties"]["Environment"]["Variables"]
    assert env[env_key("origin_verify_secret_arn")] == {"Ref": secret_id}
    assert env[env_key("api_public_url")] == {
        "Fn::Join": ["", ["https://", {"Fn::GetAtt": [distribution_id, "DomainName"]}]]
    }
    assert "resolve:secretsmanager" not in json.dumps(env)
    # Only the API's role may read that secret (others read their own secrets).
    statements = [
        s
        for p in eu.resources("AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if "secretsmanager" in json.dumps(s["Action"]) and secret_id in json.dumps(s["Resource"])
    ]
    assert statements == [
        {
            "Sid": "OriginVerifySecret",
            "Action": "secretsmanager:GetSecretValue",
            "Effect": "Allow",
            "Resource": {"Ref": secret_id},
        }
    ]


def test_share_pages_are_never_cached_and_assets_are(eu: Synth) -> None:
    config = _only(eu.template, "AWS::CloudFront::Distribution")["Properties"]["DistributionConfig"]
    behaviours = {b["PathPattern"]: b for b in config["CacheBehaviors"]}
    assert set(behaviours) == {f"{p}*" for p in names.EDGE_PATH_PREFIXES}
    caching_disabled = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"  # AWS's managed policy
    share = behaviours["/share/*"]
    assert share["CachePolicyId"] == caching_disabled
    request_policy = _only(eu.template, "AWS::CloudFront::OriginRequestPolicy")["Properties"][
        "OriginRequestPolicyConfig"
    ]
    assert request_policy["HeadersConfig"] == {
        "HeaderBehavior": "whitelist",
        "Headers": ["accept", "content-type"],
    }
    assert request_policy["QueryStringsConfig"]["QueryStringBehavior"] == "all"
    assert request_policy["CookiesConfig"]["CookieBehavior"] == "all"
    assets = behaviours["/assets/*"]
    assert assets["AllowedMethods"] == ["GET", "HEAD"] and "OriginRequestPolicyId" not in assets
    cache = _only(eu.template, "AWS::CloudFront::CachePolicy")["Properties"]["CachePolicyConfig"]
    assert cache["DefaultTTL"] == 300 and cache["MaxTTL"] == 86400
    key = cache["ParametersInCacheKeyAndForwardedToOrigin"]
    assert key["CookiesConfig"]["CookieBehavior"] == "none"
    assert key["QueryStringsConfig"]["QueryStringBehavior"] == "none"


def test_the_studios_routes_are_not_served_at_the_edge(eu: Synth) -> None:
    config = _only(eu.template, "AWS::CloudFront::Distribution")["Properties"]["DistributionConfig"]
    (association,) = config["DefaultCacheBehavior"]["FunctionAssociations"]
    assert association["EventType"] == "viewer-request"
    function = _only(eu.template, "AWS::CloudFront::Function")["Properties"]
    assert "statusCode: 404" in function["FunctionCode"]
    # Every studio route is IAM-signed and under neither edge prefix.
    from darkroom.api.routes import ROUTES

    for route in ROUTES:
        assert route.iam != route.path.startswith(names.EDGE_PATH_PREFIXES), route.key


def test_the_per_ip_limit_replaces_the_share_routes_throttle(eu: Synth, synth: Synth) -> None:
    (stage,) = eu.resources("AWS::ApiGatewayV2::Stage").values()
    assert "RouteSettings" not in stage["Properties"]
    (default_stage,) = synth.resources("AWS::ApiGatewayV2::Stage").values()
    assert "RouteSettings" in default_stage["Properties"]
    # Without the edge: no distribution, no secret, no check.
    assert not synth.resources("AWS::CloudFront::Distribution")
    env = _api_function(synth)["Properties"]["Environment"]["Variables"]
    assert env[env_key("origin_verify_secret_arn")] == ""


def test_edge_outputs_name_the_share_url_and_the_distribution(eu: Synth) -> None:
    outputs = eu.template["Outputs"]
    assert "EdgeUrl" in outputs and "EdgeDistributionDomain" in outputs


@pytest.mark.parametrize("which", ["eu", "us"])
def test_cdk_nag_has_no_unacknowledged_finding_on_the_edge_stacks(
    which: str, request: pytest.FixtureRequest
) -> None:
    from cdk_nag import AwsSolutionsChecks

    synth: Synth = request.getfixturevalue(which)
    findings = []
    for stack in _stacks(synth).values():
        report = AwsSolutionsChecks().validate_scope(stack)
        findings += [
            f"{v.rule_name} at {r.construct_path}"
            for v in report.violations
            for r in v.violating_resources
        ]
    assert findings == [], "\n".join(findings)


@pytest.mark.parametrize("which", ["eu", "us"])
def test_cfn_lint_is_clean_on_the_edge_stacks(which: str, request: pytest.FixtureRequest) -> None:
    from aws_cdk import Token
    from cfnlint.api import lint

    synth: Synth = request.getfixturevalue(which)
    for name, stack in _stacks(synth).items():
        matches = lint(json.dumps(_template(synth, name)), regions=[stack.region])
        # W3010 (hardcoded zone) where the CLI looked the account's zones up: the
        # subnets and the instances in them name real zones, as CDK writes them.
        looked_up = not Token.is_unresolved(stack.account)
        found = [str(m) for m in matches if not (looked_up and m.rule.id == "W3010")]
        assert found == [], name
