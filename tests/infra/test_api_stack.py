"""The delivery API as the stack declares it (cdk/api.py): routes, authorisation,
throttling, access logs, its function, its tables, its permissions and its outputs."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from darkroom import names
from darkroom.api.openapi import DOCUMENT_PATH
from darkroom.api.routes import ROUTES
from darkroom.names import Function
from darkroom.settings import ApiSettings, env_key, env_keys, env_text
from tests.infra.conftest import Synth
from tests.infra.helpers import (
    as_list,
    functions_by_name,
    render,
    role_logical_id,
    statements_of_role,
)

SHARE_ROUTE_KEY = "GET /share/{token}"
# The share page's stable links and the gallery's script: open too, at the stage's rate.
LINK_ROUTE_KEYS = {
    "GET /share/{token}/files/{file_name}/{rendition}",
    "GET /share/{token}/archives/{rendition}",
    "GET /assets/gallery.js",
    "GET /share/{token}/view/{file_name}",
    "GET /assets/viewer.js",
    "PUT /share/{token}/favourites/{file_name}",
    "DELETE /share/{token}/favourites/{file_name}",
    "POST /share/{token}/favourites/{file_name}",
    "GET /assets/proofing.js",
}
# Unlocking a password-protected share: open, and throttled as the share page is.
UNLOCK_ROUTE_KEY = "POST /share/{token}/unlock"
DATA_SERVICES = ("s3:", "dynamodb:", "states:")


def api_id(synth: Synth) -> str:
    return synth.logical_id(synth.stack.api.http_api)


def routes(synth: Synth) -> dict[str, dict[str, Any]]:
    """RouteKey -> properties, for the routes of the darkroom API."""
    found: dict[str, dict[str, Any]] = {}
    for resource in synth.resources("AWS::ApiGatewayV2::Route").values():
        props = resource["Properties"]
        if props["ApiId"] == {"Ref": api_id(synth)}:
            assert props["RouteKey"] not in found, f"{props['RouteKey']} declared twice"
            found[props["RouteKey"]] = props
    return found


def stage(synth: Synth) -> tuple[str, dict[str, Any]]:
    stages = synth.resources("AWS::ApiGatewayV2::Stage")
    ((logical_id, resource),) = stages.items()
    return logical_id, resource


def api_function(synth: Synth) -> dict[str, Any]:
    _, resource = functions_by_name(synth.template)[Function.API]
    return resource


def documented_security() -> dict[str, list[dict[str, Any]]]:
    """RouteKey -> the security the committed OpenAPI document states for the operation."""
    doc = yaml.safe_load(DOCUMENT_PATH.read_text(encoding="utf-8"))
    return {
        f"{method.upper()} {path}": operation.get("security", doc.get("security", []))
        for path, item in doc["paths"].items()
        for method, operation in item.items()
    }


# -- the API and its routes -------------------------------------------------------------
def test_every_documented_route_is_deployed_iam_signed_but_the_share_link(synth: Synth) -> None:
    declared = routes(synth)
    documented = documented_security()
    assert set(declared) == set(documented), "the template's routes are the document's"
    for key, props in declared.items():
        if key in (SHARE_ROUTE_KEY, UNLOCK_ROUTE_KEY) or key in LINK_ROUTE_KEYS:
            assert documented[key] == [], key
            assert props["AuthorizationType"] == "NONE", key
        else:
            assert documented[key] == [{"sigv4": []}], key
            assert props["AuthorizationType"] == "AWS_IAM", key
        assert "AuthorizerId" not in props, f"{key}: IAM needs no authorizer resource"


def test_every_route_proxies_to_the_api_function_with_payload_format_2(synth: Synth) -> None:
    integrations = synth.resources("AWS::ApiGatewayV2::Integration")
    ((integration_id, integration),) = integrations.items()
    props = integration["Properties"]
    assert props["IntegrationType"] == "AWS_PROXY"
    assert props["PayloadFormatVersion"] == "2.0"
    function_id, _ = functions_by_name(synth.template)[Function.API]
    assert props["IntegrationUri"] == {"Fn::GetAtt": [function_id, "Arn"]}
    for key, route in routes(synth).items():
        assert (
            render(route["Target"]) == "integrations/<" + json.dumps({"Ref": integration_id}) + ">"
        ), key
    (api,) = synth.resources("AWS::ApiGatewayV2::Api").values()
    assert api["Properties"]["Name"] == names.api_name()
    assert api["Properties"]["ProtocolType"] == "HTTP"


def test_only_api_gateway_routes_of_this_api_may_invoke_the_function(synth: Synth) -> None:
    function_id, _ = functions_by_name(synth.template)[Function.API]
    permissions = [
        p["Properties"]
        for p in synth.resources("AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [function_id, "Arn"]}
    ]
    assert len(permissions) == len(ROUTES), "one permission per route"
    api_ref = "<" + json.dumps({"Ref": api_id(synth)}) + ">"
    paths = set()
    for permission in permissions:
        assert permission["Principal"] == "apigateway.amazonaws.com"
        source = render(permission["SourceArn"])
        assert ":execute-api:" in source and f":{api_ref}/*/*/" in source, source
        paths.add(source.split(f"{api_ref}/*/*", 1)[1])
    assert paths == {route.path for route in ROUTES}


def test_the_default_stage_auto_deploys_with_stage_wide_throttling(synth: Synth) -> None:
    _, resource = stage(synth)
    props = resource["Properties"]
    assert props["ApiId"] == {"Ref": api_id(synth)}
    assert props["StageName"] == "$default"
    assert props["AutoDeploy"] is True
    assert props["DefaultRouteSettings"] == {"ThrottlingRateLimit": 50, "ThrottlingBurstLimit": 100}


def test_the_share_route_is_public_and_throttled_tighter_than_the_stage(synth: Synth) -> None:
    assert routes(synth)[SHARE_ROUTE_KEY]["AuthorizationType"] == "NONE"
    public = {r.key for r in ROUTES if not r.iam}
    assert public == {SHARE_ROUTE_KEY, UNLOCK_ROUTE_KEY, *LINK_ROUTE_KEYS}, "the share links"
    _, resource = stage(synth)
    props = resource["Properties"]
    share = props["RouteSettings"][SHARE_ROUTE_KEY]
    assert share == {"ThrottlingRateLimit": 5, "ThrottlingBurstLimit": 10}
    default = props["DefaultRouteSettings"]
    assert share["ThrottlingRateLimit"] < default["ThrottlingRateLimit"]
    assert share["ThrottlingBurstLimit"] < default["ThrottlingBurstLimit"]
    assert props["RouteSettings"][UNLOCK_ROUTE_KEY] == share
    assert set(props["RouteSettings"]) == {SHARE_ROUTE_KEY, UNLOCK_ROUTE_KEY}
    # CloudFormation refuses route settings for a route it has not created yet.
    for route in (SHARE_ROUTE_KEY, UNLOCK_ROUTE_KEY):
        assert synth.logical_id(synth.stack.api.routes[route]) in as_list(resource["DependsOn"])


# -- access logs ------------------------------------------------------------------------
def access_log_format(synth: Synth) -> str:
    _, resource = stage(synth)
    fmt: str = resource["Properties"]["AccessLogSettings"]["Format"]
    return fmt


def test_access_logs_are_json_lines_with_what_an_operator_needs(synth: Synth) -> None:
    fields = json.loads(access_log_format(synth))
    values = set(fields.values())
    for variable in (
        "$context.requestId",
        "$context.routeKey",
        "$context.status",
        "$context.responseLatency",
        "$context.identity.sourceIp",
        "$context.integrationErrorMessage",
    ):
        assert variable in values, variable
    _, resource = stage(synth)
    destination = resource["Properties"]["AccessLogSettings"]["DestinationArn"]
    group = synth.resource(synth.stack.api.access_logs)
    assert destination == {"Fn::GetAtt": [synth.logical_id(synth.stack.api.access_logs), "Arn"]}
    assert group["Properties"]["RetentionInDays"] == synth.stack.config.log_retention_days


def test_access_logs_never_include_the_path_share_tokens_travel_in(synth: Synth) -> None:
    fmt = access_log_format(synth)
    assert "$context.path" not in fmt
    # Nor any other variable that carries the request path or its parameters.
    variables = re.findall(r"\$context\.[A-Za-z0-9_.]+", fmt)
    assert variables
    for variable in variables:
        assert "path" not in variable.lower(), variable
        assert "querystring" not in variable.lower(), variable


# -- the function -----------------------------------------------------------------------
def test_the_api_function_follows_darkroom_names(synth: Synth) -> None:
    props = api_function(synth)["Properties"]
    assert set(props["Environment"]["Variables"]) == env_keys(ApiSettings)
    assert props["Timeout"] == names.FUNCTION_TIMEOUT_SECONDS[Function.API] == 29
    assert props["Handler"] == names.HANDLERS[Function.API]
    assert props["Runtime"] == "python3.12"
    assert props["Architectures"] == ["arm64"]


def test_the_api_function_env_comes_from_the_stack_and_its_settings(synth: Synth) -> None:
    variables = api_function(synth)["Properties"]["Environment"]["Variables"]
    stack, storage = synth.stack, synth.stack.storage
    refs = {
        env_key("raw_bucket"): storage.raw,
        env_key("processed_bucket"): storage.processed,
        env_key("jobs_table"): storage.jobs,
        env_key("uploads_table"): storage.uploads,
        env_key("shares_table"): storage.shares,
        env_key("state_machine_arn"): stack.pipeline.state_machine,
        # The unlock cookies' key: the secret's Ref is its ARN.
        env_key("share_cookie_secret_arn"): stack.api.share_cookie_key,
    }
    for key, construct in refs.items():
        assert variables[key] == {"Ref": synth.logical_id(construct)}, key
    assert variables[env_key("s3_addressing_style")] == "virtual"
    for name, field in ApiSettings.model_fields.items():
        if env_key(name) not in refs:
            assert variables[env_key(name)] == env_text(field.default), name


def api_statements(synth: Synth) -> list[dict[str, Any]]:
    return statements_of_role(synth.template, role_logical_id(api_function(synth)))


def test_the_share_cookie_key_is_a_generated_secret_only_the_api_function_reads(
    synth: Synth,
) -> None:
    secret_id = synth.logical_id(synth.stack.api.share_cookie_key)
    secret = synth.template["Resources"][secret_id]
    generated = secret["Properties"]["GenerateSecretString"]
    assert generated["PasswordLength"] >= 64
    readers = [
        s for s in api_statements(synth) if "secretsmanager:GetSecretValue" in as_list(s["Action"])
    ]
    assert [r["Resource"] for r in readers] == [{"Ref": secret_id}]
    assert {r.get("Sid") for r in readers} == {"ShareCookieKey"}


def test_the_api_function_policy_grants_no_star_resource_for_data_actions(synth: Synth) -> None:
    data = [
        s
        for s in api_statements(synth)
        if any(a.startswith(DATA_SERVICES) for a in as_list(s["Action"]))
    ]
    assert data
    for statement in data:
        assert statement["Effect"] == "Allow"
        for resource in as_list(statement["Resource"]):
            assert resource != "*", statement
            text = render(resource)
            assert text != "*" and not text.startswith("arn:*"), statement


def test_the_api_function_policy_is_scoped_to_prefixes_tables_and_the_machine(
    synth: Synth,
) -> None:
    stack, storage = synth.stack, synth.stack.storage
    by_sid = {s["Sid"]: s for s in api_statements(synth)}

    def arn(construct: Any) -> dict[str, Any]:
        return {"Fn::GetAtt": [synth.logical_id(construct), "Arn"]}

    def objects(bucket: Any, prefix: str) -> dict[str, Any]:
        return {"Fn::Join": ["", [arn(bucket), f"/{prefix}*"]]}

    # A large file's multipart upload: PutObject (create, parts, complete), list, abort.
    assert by_sid["UploadRaw"]["Action"] == [
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
        "s3:PutObject",
    ]
    assert by_sid["ListRawUploads"]["Action"] == "s3:ListBucketMultipartUploads"
    assert by_sid["ListRawUploads"]["Resource"] == arn(storage.raw)
    assert by_sid["UploadRaw"]["Resource"] == objects(storage.raw, names.RAW_PREFIX)
    assert by_sid["ListRaw"]["Resource"] == arn(storage.raw)
    assert by_sid["ListRaw"]["Condition"] == {"StringLike": {"s3:prefix": ["raw/*"]}}
    assert by_sid["ReadRenditions"]["Action"] == "s3:GetObject"
    assert by_sid["ReadRenditions"]["Resource"] == objects(storage.processed, "processed/")
    # `darkroom trace --originals`: a job's originals, read at a version, and nothing
    # else of the RAW bucket (not the studio's assets).
    assert by_sid["TraceOriginals"]["Action"] == ["s3:GetObject", "s3:GetObjectVersion"]
    assert by_sid["TraceOriginals"]["Resource"] == objects(storage.raw, names.RAW_PREFIX)
    assert by_sid["Jobs"]["Resource"] == arn(storage.jobs)
    assert set(by_sid["Jobs"]["Action"]) == {
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
        "dynamodb:BatchWriteItem",
        "dynamodb:DeleteItem",
    }
    assert by_sid["Uploads"]["Resource"] == arn(storage.uploads)
    # GET /jobs reads the listing indexes only: no scan of any table.
    assert by_sid["ListJobs"]["Action"] == "dynamodb:Query"
    assert by_sid["ListJobs"]["Resource"] == [
        {"Fn::Join": ["", [arn(table), f"/index/{names.NEWEST_INDEX}"]]}
        for table in (storage.jobs, storage.uploads)
    ]
    assert "dynamodb:Scan" not in json.dumps(api_statements(synth))
    assert by_sid["Shares"]["Resource"] == arn(storage.shares)
    assert "dynamodb:Scan" not in by_sid["Shares"]["Action"], "shares are read by id only"
    # Erasure finds a job's shares through their job index, never by a scan.
    assert by_sid["JobShares"]["Action"] == "dynamodb:Query"
    assert by_sid["JobShares"]["Resource"] == {
        "Fn::Join": ["", [arn(storage.shares), f"/index/{names.JOB_SHARES_INDEX}"]]
    }
    assert by_sid["Reprocess"]["Resource"] == {
        "Ref": synth.logical_id(stack.pipeline.state_machine)
    }
    executions = render(by_sid["ReadExecutions"]["Resource"])
    assert executions.endswith(f":execution:{names.state_machine_name()}:*"), executions
    # Nothing of the other buckets or tables.
    everything = json.dumps(api_statements(synth))
    for other in (storage.input, storage.output, storage.workers, storage.access_logs):
        assert synth.logical_id(other) not in everything


def test_the_api_erases_only_under_the_job_prefixes(
    synth: Synth,
) -> None:
    storage = synth.stack.storage
    statements = api_statements(synth)
    by_sid = {s["Sid"]: s for s in statements}

    def arn(construct: Any) -> dict[str, Any]:
        return {"Fn::GetAtt": [synth.logical_id(construct), "Arn"]}

    listing = by_sid["ListJobVersions"]
    assert listing["Action"] == "s3:ListBucketVersions"
    assert sorted(listing["Resource"], key=str) == sorted(
        [arn(storage.raw), arn(storage.processed)], key=str
    )
    assert listing["Condition"] == {
        "StringLike": {"s3:prefix": [names.RAW_PREFIX + "*", names.PROCESSED_PREFIX + "*"]}
    }
    erase = by_sid["EraseJobObjects"]
    assert set(erase["Action"]) == {"s3:DeleteObject", "s3:DeleteObjectVersion"}
    assert sorted(erase["Resource"], key=str) == sorted(
        [
            {"Fn::Join": ["", [arn(storage.raw), f"/{names.RAW_PREFIX}*"]]},
            {"Fn::Join": ["", [arn(storage.processed), f"/{names.PROCESSED_PREFIX}*"]]},
        ],
        key=str,
    )
    # Only there, and a studio asset's current version (a delete marker: never a
    # version, so past runs' manifests keep naming what they laid on their renditions).
    s3_deletes = {
        (s["Sid"], action)
        for s in statements
        for action in as_list(s["Action"])
        if action.startswith("s3:Delete")
    }
    assert s3_deletes == {
        ("EraseJobObjects", "s3:DeleteObject"),
        ("EraseJobObjects", "s3:DeleteObjectVersion"),
        ("StudioAssets", "s3:DeleteObject"),
    }
    assets = by_sid["StudioAssets"]
    assert assets["Resource"] == {"Fn::Join": ["", [arn(storage.raw), f"/{names.ASSETS_PREFIX}*"]]}
    ddb_deletes = {
        (s["Sid"], action)
        for s in statements
        for action in as_list(s["Action"])
        if action in ("dynamodb:DeleteItem", "dynamodb:BatchWriteItem")
    }
    assert ddb_deletes == {
        ("Jobs", "dynamodb:DeleteItem"),
        ("Jobs", "dynamodb:BatchWriteItem"),
        ("Uploads", "dynamodb:DeleteItem"),
        ("Uploads", "dynamodb:BatchWriteItem"),
        ("Shares", "dynamodb:DeleteItem"),
    }


# -- tables -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("table", "keys", "indexes"),
    [
        # An upload's item and one item per declared file share the job's partition.
        ("uploads", [("job_id", "HASH"), ("sk", "RANGE")], [names.NEWEST_INDEX]),
        ("shares", [("share_id", "HASH")], [names.JOB_SHARES_INDEX]),
    ],
)
def test_the_api_tables_expire_items_by_ttl(
    synth: Synth, table: str, keys: list[tuple[str, str]], indexes: list[str]
) -> None:
    resource = synth.resource(getattr(synth.stack.storage, table))
    props = resource["Properties"]
    assert props["KeySchema"] == [{"AttributeName": k, "KeyType": t} for k, t in keys]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_ttl", "Enabled": True}
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    # Uploads are listed newest first beside the jobs; shares are read by id, and found
    # by their job only to erase it.
    assert [i["IndexName"] for i in props.get("GlobalSecondaryIndexes", [])] == indexes
    assert resource["DeletionPolicy"] == "Retain"


# -- alarms and outputs -----------------------------------------------------------------
def test_api_alarms_watch_5xx_p99_latency_and_function_errors(synth: Synth) -> None:
    alarms = synth.stack.monitoring.alarms
    topic = {"Ref": synth.logical_id(synth.stack.monitoring.topic)}
    server = synth.resource(alarms["ApiServerErrors"])["Properties"]
    latency = synth.resource(alarms["ApiLatency"])["Properties"]
    errors = synth.resource(alarms["ApiFunctionErrors"])["Properties"]
    api_dimension = [{"Name": "ApiId", "Value": {"Ref": api_id(synth)}}]
    assert (server["Namespace"], server["MetricName"]) == ("AWS/ApiGateway", "5xx")
    assert server["Dimensions"] == api_dimension
    assert (latency["MetricName"], latency["ExtendedStatistic"]) == ("Latency", "p99")
    assert latency["Dimensions"] == api_dimension
    function_id, _ = functions_by_name(synth.template)[Function.API]
    assert (errors["Namespace"], errors["MetricName"]) == ("AWS/Lambda", "Errors")
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function_id}}]
    for alarm in (server, latency, errors):
        assert alarm["AlarmActions"] == [topic]


def test_outputs_name_the_api_url_and_its_tables(synth: Synth) -> None:
    outputs = synth.template["Outputs"]
    storage = synth.stack.storage
    url = render(outputs[names.Output.API_URL]["Value"])
    assert url.startswith("https://<" + json.dumps({"Ref": api_id(synth)}) + ">.execute-api.")
    assert url.endswith("/")
    assert outputs[names.Output.UPLOADS_TABLE]["Value"] == {
        "Ref": synth.logical_id(storage.uploads)
    }
    assert outputs[names.Output.SHARES_TABLE]["Value"] == {"Ref": synth.logical_id(storage.shares)}
