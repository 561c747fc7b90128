"""The API's contract pieces that need no AWS: routes vs. the OpenAPI document, content
negotiation, event parsing and share tokens."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from darkroom.api import tokens
from darkroom.api.http import preferred_type, request_from_event
from darkroom.api.routes import ROUTES, resolve

OPENAPI = Path(__file__).resolve().parents[2] / "darkroom" / "api" / "openapi.yaml"


def test_the_openapi_document_describes_exactly_the_routes_the_api_serves() -> None:
    doc = yaml.safe_load(OPENAPI.read_text())
    documented = {
        (method.upper(), path, op["operationId"])
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in {"get", "post", "put", "delete", "patch"}
    }
    assert documented == {(r.method, r.path, r.operation) for r in ROUTES}


def test_only_the_share_route_is_open_and_every_other_route_needs_iam() -> None:
    doc = yaml.safe_load(OPENAPI.read_text())
    for route in ROUTES:
        security = doc["paths"][route.path][route.method.lower()]["security"]
        assert (security == [{"sigv4": []}]) is route.iam, route
    assert [r.key for r in ROUTES if not r.iam] == ["GET /share/{token}"]


def test_routes_resolve_with_their_parameters() -> None:
    match = resolve("DELETE", "/jobs/j-1/shares/abc")
    assert match.route is not None and match.route.operation == "revoke_share"
    assert match.params == {"job_id": "j-1", "share_id": "abc"}
    match = resolve("PATCH", "/jobs/j-1")
    assert match.route is None and [r.method for r in match.on_path] == ["GET"]
    assert resolve("GET", "/jobs/j-1/extra/x").on_path == ()


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


def test_an_http_api_event_becomes_a_request() -> None:
    request = request_from_event(
        {
            "rawPath": "/jobs",
            "headers": {"Host": "h.example", "X-Forwarded-Proto": "https"},
            "queryStringParameters": {"limit": "5"},
            "body": base64.b64encode(b'{"files": []}').decode(),
            "isBase64Encoded": True,
            "requestContext": {
                "domainName": "abc.execute-api.eu-west-1.amazonaws.com",
                "http": {"method": "post"},
                "authorizer": {"iam": {"userArn": "arn:aws:iam::1:user/ann"}},
                "requestId": "r1",
            },
        }
    )
    assert request.method == "POST"
    assert request.json() == {"files": []}
    assert request.base_url == "https://abc.execute-api.eu-west-1.amazonaws.com"
    assert request.caller == "arn:aws:iam::1:user/ann"
    assert request.query == {"limit": "5"}


def test_share_tokens_carry_256_random_bits_and_parse_back_to_their_id() -> None:
    issued = tokens.issue()
    share_id, secret = issued.token.split(".")
    assert tokens.share_id_of(issued.token) == issued.share_id == share_id
    assert len(base64.urlsafe_b64decode(secret + "=")) * 8 == 256
    assert tokens.matches(issued.token, issued.sha256)
    assert not tokens.matches(issued.token + "x", issued.sha256)
    assert issued.token not in issued.sha256
    for bad in ("", ".", f"{share_id}.", f"{share_id}.short", f"XYZ.{secret}", issued.token + "/"):
        assert tokens.share_id_of(bad) is None


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
