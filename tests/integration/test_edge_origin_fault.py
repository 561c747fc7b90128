"""The edge's origin check failing closed on the local cloud: an API function that
cannot read the origin-verify secret fails its start naming the secret, and serves
nothing. Its own module: it starts a cloud of its own, which the module cloud of
test_edge_origin.py must not be alive beside (tests/integration/own_process.py)."""

from __future__ import annotations

import pytest
import requests

from darkroom.local.cloud import LocalCloud, LocalCloudConfig

pytestmark = pytest.mark.integration


def test_an_api_that_cannot_read_the_secret_serves_no_share_link(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Fails closed: the function's start fails naming the secret, and nothing is served
    (not the share pages without the check)."""
    config = LocalCloudConfig(
        port=0,
        state_dir=tmp_path_factory.mktemp("edge-cloud-no-secret"),
        pool_size=1,
        api_settings={"origin_verify_secret_arn": "darkroom-origin-verify-missing"},
    )
    with LocalCloud(config) as cloud:
        api = cloud.api_url.rstrip("/")
        answer = requests.get(f"{api}/assets/gallery.js", timeout=60)
        assert answer.status_code >= 500, answer.text
        assert "javascript" not in answer.headers.get("content-type", "")
        logs = "".join(
            p.read_text(errors="replace") for p in cloud.state_dir.rglob("*.log") if p.is_file()
        )
        assert "cannot read secret darkroom-origin-verify-missing" in logs
