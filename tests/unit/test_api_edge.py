"""The edge's origin check (darkroom/api/edge.py): with the edge on, share and asset
paths answer only requests carrying CloudFront's origin-verify value; the studio's
routes and a stack without the edge are unchanged; the value is read once at start-up
and a secret that cannot be read stops the start, never opens the check."""

# The `api` fixture comes from test_api; each test names it as a parameter.
# ruff: noqa: F811
from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from darkroom import names
from darkroom.aws.secrets import SecretUnreadable, secret_value
from tests.unit.test_api import REGION, Api, api  # noqa: F401

SECRET = "s3cr3t-value-from-secrets-manager"
VERIFIED = {names.ORIGIN_VERIFY_HEADER: SECRET}
HTML = {"accept": "text/html"}


@pytest.fixture
def edge_api(api: Api) -> Api:
    api.service.origin_verify = SECRET
    return api


def test_share_and_asset_paths_without_the_origin_header_are_403_and_touch_nothing(
    edge_api: Api,
) -> None:
    edge_api.finish("shoot", {"A.dng": 1})
    token = edge_api.share("shoot")["token"]
    views_before = edge_api.ddb.scan(TableName=names.SHARES_TABLE)["Items"][0].get("views")
    for path in (f"/share/{token}", "/assets/gallery.js", f"/%73hare/{token}"):
        for headers in ({}, HTML, {names.ORIGIN_VERIFY_HEADER: "wrong"}):
            status, answer_headers, body = edge_api.call("GET", path, headers=headers)
            assert status == 403, (path, headers, body)
            assert body["error"] == "forbidden"
            assert answer_headers["cache-control"] == "no-store"
    # The refused requests counted no view: they never reached the share.
    views_after = edge_api.ddb.scan(TableName=names.SHARES_TABLE)["Items"][0].get("views")
    assert views_after == views_before


def test_share_and_asset_paths_through_the_edge_are_served(edge_api: Api) -> None:
    edge_api.finish("shoot", {"A.dng": 1})
    token = edge_api.share("shoot")["token"]
    status, _, body = edge_api.call("GET", f"/share/{token}", headers=VERIFIED)
    assert status == 200, body
    status, headers, _ = edge_api.call("GET", "/assets/gallery.js", headers=VERIFIED)
    assert status == 200 and headers["content-type"].startswith("text/javascript")


def test_the_studio_routes_are_not_behind_the_edge_and_need_no_header(edge_api: Api) -> None:
    edge_api.finish("shoot", {"A.dng": 1})
    status, _, body = edge_api.call("GET", "/jobs/shoot")
    assert status == 200, body
    status, _, body = edge_api.call("POST", "/jobs/shoot/shares", {})
    assert status == 201, body


def test_without_the_edge_share_links_open_with_no_header(api: Api) -> None:
    assert api.service.origin_verify == ""
    api.finish("shoot", {"A.dng": 1})
    token = api.share("shoot")["token"]
    assert api.call("GET", f"/share/{token}")[0] == 200


def test_share_links_name_the_edge_domain_when_it_is_the_public_url(api: Api) -> None:
    api.service.settings = api.service.settings.model_copy(
        update={"api_public_url": "https://d111111abcdef8.cloudfront.net"}
    )
    api.finish("shoot", {"A.dng": 1})
    doc = api.share("shoot")
    assert doc["url"].startswith("https://d111111abcdef8.cloudfront.net/share/"), doc


def test_the_secret_is_read_by_its_arn() -> None:
    client = boto3.client("secretsmanager", region_name=REGION)
    arn = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:darkroom-origin-AbCdEf"
    with Stubber(client) as stub:
        stub.add_response("get_secret_value", {"SecretString": SECRET}, {"SecretId": arn})
        assert secret_value(arn, client) == SECRET


@pytest.mark.parametrize("code", ["AccessDeniedException", "ResourceNotFoundException"])
def test_a_secret_that_cannot_be_read_fails_the_start_naming_it(code: str) -> None:
    client = boto3.client("secretsmanager", region_name=REGION)
    arn = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:darkroom-origin-AbCdEf"
    with Stubber(client) as stub:
        stub.add_client_error(
            "get_secret_value",
            service_error_code=code,
            expected_params={"SecretId": arn},
        )
        with pytest.raises(SecretUnreadable, match="darkroom-origin-AbCdEf"):
            secret_value(arn, client)
