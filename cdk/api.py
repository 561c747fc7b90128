"""The delivery API: an API Gateway HTTP API in front of one Lambda function.

Routes and their authorization come from the API's OpenAPI document, generated from the
app (darkroom.api.routes.ROUTES): IAM-signed unless the operation states no security,
which only a client's share link does. The function (tasks.api.handler) presigns uploads
to and downloads from the buckets, writes a job's submission manifest, reads the tables
and erases a job (every version of its objects, every record); its role holds exactly
those calls (darkroom/api/jobs.py, shares.py and the
adapters in darkroom/aws/).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

import aws_cdk as cdk
import jsii
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from cdk import nag
from cdk.functions import DarkroomFunction, table_statement
from cdk.raw_pipeline import execution_arns
from cdk.storage import Storage
from darkroom import names
from darkroom.api.routes import ROUTES, Route
from darkroom.names import Function
from darkroom.settings import env_key

STAGE_RATE_LIMIT: Final = 50  # requests per second, steady state, the whole stage
STAGE_BURST_LIMIT: Final = 100
# The share page: a guessed or leaked link must not be hammered at the stage rate.
SHARE_RATE_LIMIT: Final = 5
SHARE_BURST_LIMIT: Final = 10
(SHARE_ROUTE,) = (r for r in ROUTES if r.operation == "open_share")
# Unlocking a password-protected share: each try costs an scrypt check (~0.1 s), and
# guesses are for the share's own limit (5 per 15 minutes) to refuse, not the stage's.
(UNLOCK_ROUTE,) = (r for r in ROUTES if r.operation == "unlock_share")
# The other public routes take the stage's limits: a gallery page asks for each of its
# previews at once, through the share's stable links, and for its script.
# A proofing client's writes take them too: each link's writes are counted per minute
# in DynamoDB by the function itself (ApiSettings.proofing_writes_per_minute).
STAGE_LIMITED_PUBLIC: Final = frozenset(
    {
        "open_shared_file",
        "open_shared_archive",
        "gallery_script",
        # A photo's own page (the viewer without script) and the viewer's script.
        "view_shared_file",
        "viewer_script",
        "mark_favourite",
        "unmark_favourite",
        "proof_by_form",
        "proofing_script",
    }
)
# So a new public route fails the synth until someone decides its limits.
assert {r.operation for r in ROUTES if not r.iam} == {
    SHARE_ROUTE.operation,
    UNLOCK_ROUTE.operation,
    *STAGE_LIMITED_PUBLIC,
}

# One JSON object per request. The route key ("GET /share/{token}"), never the path:
# a share link's token is in its path, and whoever reads the logs must not learn it.
ACCESS_LOG_FIELDS: Final[dict[str, str]] = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTime",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "latency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "sourceIp": "$context.identity.sourceIp",
    # The signing IAM principal on the studio's routes; "-" on the public one.
    "caller": "$context.identity.userArn",
    "error": "$context.error.message",
    "integrationError": "$context.integrationErrorMessage",
}


def construct_id(route: Route) -> str:
    """A stable construct id per route, from its operation: create_job -> CreateJob."""
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", route.operation))


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogSettings:
    def __init__(self, destination: apigwv2.IAccessLogDestination, format: str) -> None:
        self._destination = destination
        self._format = apigw.AccessLogFormat.custom(format)

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return self._format


class DeliveryApi(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        storage: Storage,
        state_machine: sfn.IStateMachine,
        code: lambda_.Code,
        settings_values: Mapping[str, Any],
        log_retention: logs.RetentionDays,
        behind_edge: bool = False,
    ) -> None:
        super().__init__(scope, id)
        raw, processed = storage.raw, storage.processed
        stack_name = cdk.Stack.of(self).stack_name

        # Signs password-protected shares' unlock cookies; read by the function at start.
        self.share_cookie_key = secretsmanager.Secret(
            self,
            "ShareCookieKey",
            description="darkroom: signs the unlock cookies of password-protected shares",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True
            ),
        )
        nag.ack(
            nag._cfn(self.share_cookie_key),
            "AwsSolutions-SMG4",
            "A signing key with no one to hand it to: rotating it only logs every client "
            "out of their protected galleries. Replace it by hand if it ever leaks.",
        )

        self.server = DarkroomFunction(
            self,
            "Function",
            function=Function.API,
            code=code,
            # The limits and expiries at ApiSettings' defaults, as on the local cloud;
            # presigned URLs with regional bucket hostnames (s3_addressing_style "virtual").
            settings_values={
                **settings_values,
                "state_machine_arn": state_machine.state_machine_arn,
                "share_cookie_secret_arn": self.share_cookie_key.secret_arn,
            },
            statements=[
                # Presigned PUTs of a job's RAW files and the PUT of its submission
                # manifest, all under raw/<job_id>/ (a presigned URL carries this role's
                # permission, so this is also what a client's upload URL can do).
                # PutObject also covers a large file's multipart upload (create, each
                # presigned part, complete); its parts are listed on resume and complete,
                # and freed on abort.
                iam.PolicyStatement(
                    sid="UploadRaw",
                    actions=[
                        "s3:PutObject",
                        "s3:ListMultipartUploadParts",
                        "s3:AbortMultipartUpload",
                    ],
                    resources=[raw.arn_for_objects(f"{names.RAW_PREFIX}*")],
                ),
                # An abort finds every multipart upload of its file (ListMultipartUploads).
                iam.PolicyStatement(
                    sid="ListRawUploads",
                    actions=["s3:ListBucketMultipartUploads"],
                    resources=[raw.bucket_arn],
                ),
                # Which declared files have arrived (ListObjectsV2 on raw/<job_id>/).
                iam.PolicyStatement(
                    sid="ListRaw",
                    actions=["s3:ListBucket"],
                    resources=[raw.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{names.RAW_PREFIX}*"]}},
                ),
                # The studio's assets (a watermark PNG): presigned PUTs that may replace
                # one, a recipe's asset checked by listing the current versions (so does
                # GET /studio/assets), and DELETE /studio/assets/{name} (a delete marker: earlier
                # versions stay for past runs' manifests).
                iam.PolicyStatement(
                    sid="StudioAssets",
                    actions=["s3:PutObject", "s3:DeleteObject"],
                    resources=[raw.arn_for_objects(f"{names.ASSETS_PREFIX}*")],
                ),
                iam.PolicyStatement(
                    sid="ListAssets",
                    actions=["s3:ListBucketVersions"],
                    resources=[raw.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{names.ASSETS_PREFIX}*"]}},
                ),
                # Presigned GETs of a job's RAW originals at their registered version,
                # for `darkroom trace --originals` only (a studio route, IAM-signed):
                # no share link's route presigns anything in the RAW bucket.
                iam.PolicyStatement(
                    sid="TraceOriginals",
                    actions=["s3:GetObject", "s3:GetObjectVersion"],
                    resources=[raw.arn_for_objects(f"{names.RAW_PREFIX}*")],
                ),
                # Presigned GETs of a shared job's renditions, under processed/<job_id>/.
                iam.PolicyStatement(
                    sid="ReadRenditions",
                    actions=["s3:GetObject"],
                    resources=[processed.arn_for_objects(f"{names.PROCESSED_PREFIX}*")],
                ),
                # DELETE /jobs/{job_id} (darkroom/erasure.py): every version and delete
                # marker under raw/<job_id>/ and processed/<job_id>/, listed
                # (ListObjectVersions) and deleted by version id (DeleteObjects naming
                # each version), so nothing is left to restore.
                iam.PolicyStatement(
                    sid="ListJobVersions",
                    actions=["s3:ListBucketVersions"],
                    resources=[raw.bucket_arn, processed.bucket_arn],
                    conditions={
                        "StringLike": {
                            "s3:prefix": [f"{names.RAW_PREFIX}*", f"{names.PROCESSED_PREFIX}*"]
                        }
                    },
                ),
                # S3's DeleteObjects asks for s3:DeleteObject on every request and
                # s3:DeleteObjectVersion for each version it names; the adapter names a
                # version every time (darkroom/aws/objects.py delete_versions).
                iam.PolicyStatement(
                    sid="EraseJobObjects",
                    actions=["s3:DeleteObject", "s3:DeleteObjectVersion"],
                    resources=[
                        raw.arn_for_objects(f"{names.RAW_PREFIX}*"),
                        processed.arn_for_objects(f"{names.PROCESSED_PREFIX}*"),
                    ],
                ),
                # JobStore.find (GetItem) and JobStore.registered (BatchGetItem); reprocess
                # and erasure claim the job (conditional UpdateItems), reprocess marks a
                # stranded one FAILED first; erasure reads the job's partition (Query on
                # job_id) and deletes each item (BatchWriteItem, DeleteItem). GET /jobs/{job_id}
                # and share links read the job's file items (Query).
                table_statement(
                    storage.jobs,
                    "GetItem",
                    "BatchGetItem",
                    "UpdateItem",
                    "Query",
                    "BatchWriteItem",
                    "DeleteItem",
                    sid="Jobs",
                ),
                # UploadStore: create (PutItem, the file items by BatchWriteItem), get (Query
                # of the job's items, GetItem), mark_submitted and a file's multipart upload
                # id (UpdateItem), and erasure's delete (BatchWriteItem, DeleteItem).
                table_statement(
                    storage.uploads,
                    "GetItem",
                    "PutItem",
                    "UpdateItem",
                    "Query",
                    "BatchWriteItem",
                    "DeleteItem",
                    sid="Uploads",
                ),
                # GET /jobs: both tables' listing index, newest first (JobStore.newest,
                # UploadStore.newest). No scans.
                iam.PolicyStatement(
                    sid="ListJobs",
                    actions=["dynamodb:Query"],
                    resources=[
                        f"{table.table_arn}/index/{names.NEWEST_INDEX}"
                        for table in (storage.jobs, storage.uploads)
                    ],
                ),
                # ShareStore: put, get, revoke, extend and the view and download counts
                # (UpdateItem): by share id, with the job id as a condition where a
                # photographer acts; erasure's delete (DeleteItem).
                table_statement(
                    storage.shares, "GetItem", "PutItem", "UpdateItem", "DeleteItem", sid="Shares"
                ),
                # Listing a job's shares and erasure find them by its index
                # (ShareStore.of_job).
                iam.PolicyStatement(
                    sid="JobShares",
                    actions=["dynamodb:Query"],
                    resources=[f"{storage.shares.table_arn}/index/{names.JOB_SHARES_INDEX}"],
                ),
                # The unlock cookies' key, read once at start-up (tasks/api.py).
                iam.PolicyStatement(
                    sid="ShareCookieKey",
                    actions=["secretsmanager:GetSecretValue"],
                    resources=[self.share_cookie_key.secret_arn],
                ),
                # POST /jobs/{job_id}/reprocess starts a new execution.
                iam.PolicyStatement(
                    sid="Reprocess",
                    actions=["states:StartExecution"],
                    resources=[state_machine.state_machine_arn],
                ),
                # GET /jobs/{job_id}: the current state (history) and, for a job that never
                # registered, why its execution failed (describe).
                iam.PolicyStatement(
                    sid="ReadExecutions",
                    actions=["states:DescribeExecution", "states:GetExecutionHistory"],
                    resources=[execution_arns(self)],
                ),
            ],
            log_retention=log_retention,
            description="serves the delivery API: jobs, uploads, reprocessing, share links",
        )
        self.function = self.server.function

        # -- the HTTP API ---------------------------------------------------------------
        self.http_api = apigwv2.HttpApi(
            self,
            "HttpApi",
            api_name=names.api_name(stack_name),
            description="darkroom delivery API: IAM-signed studio routes, public share links",
            # The stage below carries throttling and access logs.
            create_default_stage=False,
        )
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            # Delivered as vended logs: the prefix keeps CloudWatch Logs' resource policy
            # small.
            log_group_name=names.api_access_log_group(stack_name),
            retention=log_retention,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.stage = apigwv2.HttpStage(
            self,
            "Stage",
            http_api=self.http_api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(
                rate_limit=STAGE_RATE_LIMIT, burst_limit=STAGE_BURST_LIMIT
            ),
            access_log_settings=_AccessLogSettings(
                apigwv2.LogGroupLogDestination(self.access_logs),
                json.dumps(ACCESS_LOG_FIELDS, separators=(",", ":")),
            ),
        )
        self.url = self.stage.url

        # One Lambda proxy integration for every route (CDK declares it under the first
        # route that uses it, hence its logical id); one invoke permission per route.
        integration = integrations.HttpLambdaIntegration(
            "Function",
            self.function,
            payload_format_version=apigwv2.PayloadFormatVersion.VERSION_2_0,
        )
        signed = authorizers.HttpIamAuthorizer()
        self.routes: dict[str, apigwv2.HttpRoute] = {
            route.key: apigwv2.HttpRoute(
                self,
                construct_id(route),
                http_api=self.http_api,
                route_key=apigwv2.HttpRouteKey.with_(route.path, apigwv2.HttpMethod(route.method)),
                integration=integration,
                authorizer=signed if route.iam else apigwv2.HttpNoneAuthorizer(),
            )
            for route in ROUTES
        }
        self.share_route = self.routes[SHARE_ROUTE.key]
        self.public_route_keys = frozenset(r.key for r in ROUTES if not r.iam)

        self.domain = (
            f"{self.http_api.api_id}.execute-api.{cdk.Stack.of(self).region}."
            f"{cdk.Stack.of(self).url_suffix}"
        )
        if behind_edge:
            # WAF's per-IP rule (cdk/edge.py) limits share links instead: one route
            # throttle is shared by every client, so one could push all into 429.
            return
        # Per-route throttling has no L2 option. CloudFormation refuses route settings
        # for a route key the API does not have yet, hence the dependency.
        cfn_stage = self.stage.node.default_child
        assert isinstance(cfn_stage, apigwv2.CfnStage)
        cfn_stage.add_property_override(
            "RouteSettings",
            {
                route.key: {
                    "ThrottlingRateLimit": SHARE_RATE_LIMIT,
                    "ThrottlingBurstLimit": SHARE_BURST_LIMIT,
                }
                for route in (SHARE_ROUTE, UNLOCK_ROUTE)
            },
        )
        cfn_stage.node.add_dependency(self.share_route)
        cfn_stage.node.add_dependency(self.routes[UNLOCK_ROUTE.key])

    def serve_through(self, secret: secretsmanager.ISecret, public_url: str) -> None:
        """Share links point at the edge, and share and asset paths answer only requests
        carrying the edge's origin-verify header (its value read at the function's start
        through the secret's ARN, never put in its environment)."""
        self.function.add_environment(env_key("origin_verify_secret_arn"), secret.secret_arn)
        self.function.add_environment(env_key("api_public_url"), public_url)
        # The function reads the value once, at its start (tasks/api.py).
        self.server.role.add_to_policy(
            iam.PolicyStatement(
                sid="OriginVerifySecret",
                actions=["secretsmanager:GetSecretValue"],
                resources=[secret.secret_arn],
            )
        )
