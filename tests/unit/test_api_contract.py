"""The API's contract pieces that need no AWS: the generated OpenAPI document and the
routes and authorization everything derives from it, content negotiation, what a route
reads from the event, and share tokens."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from aws_lambda_powertools.event_handler import Request
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from darkroom import keys
from darkroom.api import openapi, tokens
from darkroom.api.context import base_url_of, caller_of, preferred_type, prefers_html
from darkroom.api.routes import ROUTES, resolve, routes_of
from tests.checks import assert_generated

REGENERATE = "python -m darkroom.api.openapi"
# Open to anyone: the share link's page, its stable links, and the gallery's script.
SHARE_ROUTES = {
    "GET /share/{token}",
    "GET /share/{token}/files/{file_name}/{rendition}",
    "GET /share/{token}/archives/{rendition}",
    "POST /share/{token}/unlock",
    "GET /assets/gallery.js",
    "GET /share/{token}/view/{file_name}",
    "GET /assets/viewer.js",
    "PUT /share/{token}/favourites/{file_name}",
    "DELETE /share/{token}/favourites/{file_name}",
    "POST /share/{token}/favourites/{file_name}",
    "GET /assets/proofing.js",
}


def test_the_committed_openapi_document_is_the_one_the_app_generates() -> None:
    assert_generated(openapi.DOCUMENT_PATH, openapi.render(), REGENERATE)


def test_the_routes_everything_deploys_are_the_documents_operations() -> None:
    doc = yaml.safe_load(openapi.DOCUMENT_PATH.read_text(encoding="utf-8"))
    documented = {
        (method.upper(), path, op["operationId"])
        for path, item in doc["paths"].items()
        for method, op in item.items()
    }
    assert documented == {(r.method, r.path, r.operation) for r in ROUTES}
    assert len(ROUTES) == 31


def test_every_operation_states_its_authorization_sigv4_except_the_share_link() -> None:
    doc = yaml.safe_load(openapi.DOCUMENT_PATH.read_text(encoding="utf-8"))
    assert doc["security"] == [{"sigv4": []}], "a route that says nothing is signed"
    for path, item in doc["paths"].items():
        for method, op in item.items():
            key = f"{method.upper()} {path}"
            assert "security" in op, key
            assert op["security"] == ([] if key in SHARE_ROUTES else [{"sigv4": []}]), key
    assert {r.key for r in ROUTES if not r.iam} == SHARE_ROUTES


def test_an_operation_without_its_own_security_takes_the_signed_default() -> None:
    doc: dict[str, Any] = {
        "security": [{"sigv4": []}],
        "paths": {
            "/a": {"get": {"operationId": "a"}, "post": {"operationId": "b", "security": []}}
        },
    }
    assert [(r.key, r.iam) for r in routes_of(doc)] == [("GET /a", True), ("POST /a", False)]


def test_validation_answers_are_documented_as_400_with_the_error_body() -> None:
    doc = openapi.document()
    for item in doc["paths"].values():
        for op in item.values():
            assert "422" not in op["responses"], op["operationId"]
            error = op["responses"]["400"]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/ErrorBody"}
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_routes_resolve_with_their_parameters_as_the_gateway_matches_them() -> None:
    match = resolve("DELETE", "/jobs/j-1/shares/abc")
    assert match.route is not None and match.route.operation == "revoke_share"
    assert match.params == {"job_id": "j-1", "share_id": "abc"}
    match = resolve("PATCH", "/jobs/j-1")
    assert match.route is None and sorted(r.method for r in match.on_path) == ["DELETE", "GET"]
    assert resolve("GET", "/jobs/j-1/extra/x").on_path == ()
    # A stable link's file name arrives quoted, and is matched as one segment.
    match = resolve("GET", "/share/t.s/files/IMG%200001%2F.dng/web")
    assert match.route is not None and match.route.operation == "open_shared_file"
    assert match.params == {"token": "t.s", "file_name": "IMG 0001/.dng", "rendition": "web"}


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("", "application/json"),
        ("*/*", "application/json"),
        ("application/json", "application/json"),
        ("text/html", "text/html"),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "text/html"),
        ("application/json, text/html;q=0.5", "application/json"),
        ("text/*", "text/html"),
        ("text/html;q=bogus", "application/json"),
    ],
)
def test_html_is_chosen_only_when_the_client_prefers_it(accept: str, expected: str) -> None:
    assert preferred_type(accept) == expected


def _request(event: dict[str, Any]) -> Request:
    return Request("/jobs", {}, APIGatewayProxyEventV2(event), {})


def test_a_route_reads_the_caller_the_base_url_and_the_preferred_type_from_the_event() -> None:
    event = {
        "rawPath": "/jobs",
        "headers": {"host": "h.example", "x-forwarded-proto": "https", "accept": "text/html"},
        "requestContext": {
            "domainName": "abc.execute-api.eu-west-1.amazonaws.com",
            "http": {"method": "POST"},
            "authorizer": {"iam": {"userArn": "arn:aws:iam::1:user/ann"}},
            "requestId": "r1",
            "stage": "$default",
        },
    }
    request = _request(event)
    assert caller_of(request) == "arn:aws:iam::1:user/ann"
    assert base_url_of(request) == "https://abc.execute-api.eu-west-1.amazonaws.com"
    assert prefers_html(request)
    # The local gateway: no authorizer, plain HTTP, the host it listens on.
    local = {
        "rawPath": "/jobs",
        "headers": {"host": "127.0.0.1:4600", "x-forwarded-proto": "http"},
        "requestContext": {"http": {"method": "GET"}, "stage": "$default"},
    }
    assert caller_of(_request(local)) is None
    assert base_url_of(_request(local)) == "http://127.0.0.1:4600"
    assert not prefers_html(_request(local))


def test_share_tokens_carry_256_random_bits_and_parse_back_to_their_id() -> None:
    issued = tokens.issue()
    share_id, secret = issued.token.split(".")
    assert tokens.share_id_of(issued.token) == issued.share_id == share_id
    assert len(base64.urlsafe_b64decode(secret + "=")) * 8 == 256
    assert tokens.matches(issued.token, issued.sha256)
    assert not tokens.matches(issued.token + "x", issued.sha256)
    assert issued.token not in issued.sha256
    for bad in (
        "",
        ".",
        f"{share_id}.",
        f"{share_id}.short",
        f"XYZ.{secret}",
        issued.token + "/",
        issued.token + "\n",
        f"{share_id}\n.{secret}",
    ):
        assert tokens.share_id_of(bad) is None
    assert not tokens.valid_share_id(share_id + "\n")


def test_requests_to_a_deployed_api_are_signed_for_execute_api_in_its_region(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from darkroom.cli.studio_client import ApiTarget

    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    base = "https://abc123.execute-api.eu-west-1.amazonaws.com"
    target = ApiTarget.resolve(api_url=base)
    assert target.signer is not None
    headers = target.signer("GET", f"{base}/jobs?limit=5", {"Accept": "application/json"}, b"")
    authorization = headers["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/execute-api/aws4_request" in authorization
    assert "X-Amz-Date" in headers
    # The local cloud's API is open: nothing to sign.
    assert ApiTarget.resolve(api_url="http://127.0.0.1:4600").signer is None


def test_new_job_ids_are_valid_sortable_by_creation_and_distinct() -> None:
    early = keys.new_job_id(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    late = keys.new_job_id(datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC))
    assert early.startswith("20260102-030405-") and keys.validate_job_id(early) == early
    assert early < late
    assert len({keys.new_job_id() for _ in range(50)}) == 50
