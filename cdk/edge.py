"""The edge: CloudFront + WAF in front of the client's share links and the gallery's assets.

What a client's browser reaches goes through CloudFront, whose web ACL limits each client
IP (a rate-based rule) after AWS's common rule set; the studio's own routes stay on the
API's execute-api address, IAM-signed, and CloudFront answers them 404. CloudFront adds
an origin-verify header whose value is a Secrets Manager secret (a dynamic reference in
the template, resolved by CloudFormation), and the API answers share and asset paths only
when it is present (darkroom/api/edge.py), so the execute-api address cannot go around
WAF.

us-east-1: a CloudFront web ACL (and its certificate) must live there whatever region the
stack is in. cdk/app.py creates a small stack there (EdgeAclStack) holding the web ACL
alone when the main stack is elsewhere, with CDK's cross-region references (an SSM
parameter written in us-east-1, read back by a custom resource in the main region), so
one `cdk deploy --all` makes both and a change to the rate limit is one deploy. When the
main stack is in us-east-1 the web ACL is in it. A studio that runs its own WAF names its
web ACL instead (edge_web_acl_arn) and no second stack is made. The certificate is never
created here: ACM's DNS validation needs the studio's DNS, so it comes as an ARN.
"""

from __future__ import annotations

from typing import Any, Final

import aws_cdk as cdk
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from cdk.config import EDGE_REGION, DeployConfig
from darkroom import names

# WAF's window for the rate-based rule: the limit counts requests per 5 minutes.
RATE_WINDOW_SECONDS: Final = 300
COMMON_RULE_SET: Final = "AWSManagedRulesCommonRuleSet"
# The studio's routes are not served at the edge: the default behaviour answers 404
# before CloudFront asks the API.
NOT_HERE_FUNCTION: Final = """function handler(event) {
  return { statusCode: 404, statusDescription: 'Not Found' };
}"""
# The gallery's script is the same for everyone: the API says max-age=300; CloudFront
# keeps it at most a day when an answer says more.
ASSET_DEFAULT_TTL: Final = cdk.Duration.minutes(5)
ASSET_MAX_TTL: Final = cdk.Duration.days(1)


def _visibility(metric: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True
    )


class EdgeAcl(Construct):
    """The CloudFront web ACL: AWS's common rules, then a per-IP rate limit."""

    def __init__(self, scope: Construct, id: str, *, config: DeployConfig) -> None:
        super().__init__(scope, id)
        stack_name = config.stack_name
        rules: list[Any] = []
        if config.edge_managed_rules:
            # Checked against the gallery: its pages and links are GETs with no body and
            # short query strings (?download=1), it sends a User-Agent like any browser,
            # and previews and downloads are redirects to S3, which the rules never see.
            rules.append(
                wafv2.CfnWebACL.RuleProperty(
                    name="AwsCommonRules",
                    priority=0,
                    statement=wafv2.CfnWebACL.StatementProperty(
                        managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                            vendor_name="AWS", name=COMMON_RULE_SET
                        )
                    ),
                    override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                    visibility_config=_visibility(f"{stack_name}-common"),
                )
            )
        rules.append(
            wafv2.CfnWebACL.RuleProperty(
                name="PerClientIp",
                priority=1,
                statement=wafv2.CfnWebACL.StatementProperty(
                    rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                        limit=config.edge_rate_limit,
                        aggregate_key_type="IP",
                        evaluation_window_sec=RATE_WINDOW_SECONDS,
                    )
                ),
                # 429 with Retry-After, as a browser and a script expect of a rate limit.
                action=wafv2.CfnWebACL.RuleActionProperty(
                    block=wafv2.CfnWebACL.BlockActionProperty(
                        custom_response=wafv2.CfnWebACL.CustomResponseProperty(
                            response_code=429,
                            response_headers=[
                                wafv2.CfnWebACL.CustomHTTPHeaderProperty(
                                    name="retry-after", value=str(RATE_WINDOW_SECONDS)
                                )
                            ],
                        )
                    )
                ),
                visibility_config=_visibility(f"{stack_name}-per-ip"),
            )
        )
        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="CLOUDFRONT",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            description=f"{stack_name} - share links edge, per-IP rate limit",
            rules=rules,
            visibility_config=_visibility(f"{stack_name}-edge"),
        )
        self.arn = self.web_acl.attr_arn


class EdgeAclStack(cdk.Stack):
    """The web ACL in us-east-1, for a main stack in another region."""

    def __init__(self, scope: Construct, id: str, *, config: DeployConfig, **kwargs: Any) -> None:
        super().__init__(
            scope,
            id,
            description=f"darkroom {config.stack_name}: the CloudFront web ACL (us-east-1)",
            # The main stack's account (if known), so the cross-region reference joins
            # stacks of one account.
            env=cdk.Environment(account=config.account or None, region=EDGE_REGION),
            cross_region_references=True,
            **kwargs,
        )
        self.acl = EdgeAcl(self, "Acl", config=config)


def edge_acl_stack_name(stack_name: str) -> str:
    return f"{stack_name}-edge-acl"


class Edge(Construct):
    """The distribution, its origin-verify secret and its behaviours, over the API."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: DeployConfig,
        api_domain: str,
        web_acl_arn: str,
    ) -> None:
        super().__init__(scope, id)
        stack_name = cdk.Stack.of(self).stack_name
        # Not rotated: CloudFront holds the value the template resolved at deploy time and
        # the API reads it at a cold start; a rotation is a deploy (README).
        self.secret = secretsmanager.Secret(
            self,
            "OriginVerify",
            description=f"{stack_name}: the header CloudFront adds so the API knows the edge",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=48, exclude_punctuation=True
            ),
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        origin = origins.HttpOrigin(
            api_domain,
            protocol_policy=cloudfront.OriginProtocolPolicy.HTTPS_ONLY,
            origin_ssl_protocols=[cloudfront.OriginSslPolicy.TLS_V1_2],
            # A dynamic reference ({{resolve:secretsmanager:...}}): the template never
            # holds the value.
            custom_headers={names.ORIGIN_VERIFY_HEADER: self.secret.secret_value.unsafe_unwrap()},
        )
        # The policies and the function are named by CDK (the construct path and the
        # region): their names are global to the account, and two stacks, or one stack
        # name in two regions, must not collide.
        # Share pages and their links: never cached (each answer is per token, counts a
        # view, and a preview or download is a short-lived presigned redirect). Forwarded:
        # Accept (a browser gets a page, a script JSON), Content-Type (the JSON bodies
        # share routes take), the query string (?download=1, a page's cursor) and
        # cookies (a share's session). Never Host: the API is reached by its own name.
        self.share_request_policy = cloudfront.OriginRequestPolicy(
            self,
            "ShareRequests",
            comment="darkroom share links: what the API reads of a client's request",
            header_behavior=cloudfront.OriginRequestHeaderBehavior.allow_list(
                "accept", "content-type"
            ),
            query_string_behavior=cloudfront.OriginRequestQueryStringBehavior.all(),
            cookie_behavior=cloudfront.OriginRequestCookieBehavior.all(),
        )
        self.asset_cache_policy = cloudfront.CachePolicy(
            self,
            "Assets",
            comment="darkroom gallery scripts: the same for everyone, cached as the API says",
            default_ttl=ASSET_DEFAULT_TTL,
            min_ttl=cdk.Duration.seconds(0),
            max_ttl=ASSET_MAX_TTL,
            header_behavior=cloudfront.CacheHeaderBehavior.none(),
            query_string_behavior=cloudfront.CacheQueryStringBehavior.none(),
            cookie_behavior=cloudfront.CacheCookieBehavior.none(),
            enable_accept_encoding_gzip=True,
            enable_accept_encoding_brotli=True,
        )
        not_here = cloudfront.Function(
            self,
            "NotHere",
            comment="the studio's routes are not served at the edge",
            code=cloudfront.FunctionCode.from_inline(NOT_HERE_FUNCTION),
            runtime=cloudfront.FunctionRuntime.JS_2_0,
        )
        share = cloudfront.BehaviorOptions(
            origin=origin,
            viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
            allowed_methods=cloudfront.AllowedMethods.ALLOW_ALL,
            cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
            origin_request_policy=self.share_request_policy,
            compress=True,
        )
        assets = cloudfront.BehaviorOptions(
            origin=origin,
            viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
            allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
            cache_policy=self.asset_cache_policy,
            compress=True,
        )
        custom_domain = bool(config.edge_domain_name)
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment=f"{stack_name}: client share links and gallery assets",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origin,
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
                function_associations=[
                    cloudfront.FunctionAssociation(
                        function=not_here, event_type=cloudfront.FunctionEventType.VIEWER_REQUEST
                    )
                ],
            ),
            additional_behaviors={
                f"{prefix}*": share if prefix == "/share/" else assets
                for prefix in names.EDGE_PATH_PREFIXES
            },
            web_acl_id=web_acl_arn,
            domain_names=[config.edge_domain_name] if custom_domain else None,
            certificate=(
                acm.Certificate.from_certificate_arn(
                    self, "Certificate", config.edge_certificate_arn
                )
                if custom_domain
                else None
            ),
            minimum_protocol_version=cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            # Clients anywhere; the cheapest class that still serves Europe and America.
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
        )
        self.url = (
            f"https://{config.edge_domain_name}"
            if custom_domain
            else f"https://{self.distribution.distribution_domain_name}"
        )
