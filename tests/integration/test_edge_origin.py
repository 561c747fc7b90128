"""The edge's origin check on the local cloud, through the real API function (its
handler reads the secret from the local Secrets Manager at its start) and the local
gateway: a share or asset path without CloudFront's header is refused, with it the
request reaches the app, and the studio's routes never need it. The local cloud has no
CloudFront: the check is off there by default, on here by the API's settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from darkroom import names
from darkroom.local.cloud import LocalCloud, LocalCloudConfig

pytestmark = pytest.mark.integration

# GetSecretValue takes a secret's name as well as its ARN; moto makes the ARN's suffix
# only when the secret is created, after the cloud (and the API's settings) exist.
SECRET_NAME = "darkroom-origin-verify"
VALUE = "local-origin-verify-value-0123456789"
EDGE_URL = "https://d111111abcdef8.cloudfront.net"


@pytest.fixture(scope="module")
def edge_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    config = LocalCloudConfig(
        port=0,
        state_dir=tmp_path_factory.mktemp("edge-cloud"),
        pool_size=1,
        api_settings={"origin_verify_secret_arn": SECRET_NAME, "api_public_url": EDGE_URL},
    )
    with LocalCloud(config) as running:
        # Before the API function's first (cold) start, which reads it.
        running.client("secretsmanager").create_secret(Name=SECRET_NAME, SecretString=VALUE)
        yield running


def test_without_the_origin_header_share_and_asset_paths_are_403(edge_cloud: LocalCloud) -> None:
    api = edge_cloud.api_url.rstrip("/")
    for path in ("/share/" + "x" * 43, "/assets/gallery.js"):
        for headers in ({}, {names.ORIGIN_VERIFY_HEADER: "a guess"}):
            answer = requests.get(f"{api}{path}", headers=headers, timeout=60)
            assert answer.status_code == 403, (path, headers, answer.text)
            assert answer.json()["error"] == "forbidden"


def test_with_the_origin_header_the_request_reaches_the_app(edge_cloud: LocalCloud) -> None:
    api = edge_cloud.api_url.rstrip("/")
    through_edge = {names.ORIGIN_VERIFY_HEADER: VALUE}
    script = requests.get(f"{api}/assets/gallery.js", headers=through_edge, timeout=60)
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    unknown = requests.get(f"{api}/share/" + "x" * 43, headers=through_edge, timeout=60)
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"


def test_the_studio_routes_need_no_origin_header(edge_cloud: LocalCloud) -> None:
    api = edge_cloud.api_url.rstrip("/")
    assert requests.get(f"{api}/jobs", timeout=60).status_code == 200
    created = requests.post(
        f"{api}/jobs", json={"files": [{"name": "A.dng", "size": 10}]}, timeout=60
    )
    assert created.status_code == 201, created.text
