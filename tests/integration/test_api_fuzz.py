"""The committed OpenAPI document (generated from the app) against the running API:
property-based requests to every route (schemathesis), over real HTTP to the local
cloud's gateway and function."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from darkroom.api.client import ApiClient
from darkroom.api.openapi import DOCUMENT_PATH
from darkroom.cli.studio_client import StudioClient
from darkroom.imaging.fixtures import make_demo_shoot
from darkroom.local.cloud import LocalCloud

pytestmark = pytest.mark.integration
# Auth is IAM in AWS and open locally, so the auth checks do not apply here.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


# Loaded eagerly: the lazy (fixture) loader does not run under this pytest; the base
# URL, known only once the local cloud runs, is given per call instead.
schema = schemathesis.openapi.from_path(DOCUMENT_PATH)
# Valid requests and invalid ones (wrong types, missing fields, bad JSON): neither may
# ever get a 5xx, and both must get an answer the document describes.
schema.config.generation.update(modes=list(schemathesis.GenerationMode))


FUZZ_SETTINGS = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_route_answers_within_its_documented_schema_and_never_5xx(
    case: schemathesis.Case, cloud: LocalCloud
) -> None:
    case.call_and_validate(base_url=cloud.api_url, checks=CHECKS, timeout=30)


@pytest.fixture(scope="module")
def shared_job(cloud: LocalCloud, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A finished job and a share of it: random ids only ever meet 404s, real ones reach
    the answers a photographer and a client actually get."""
    client = StudioClient(ApiClient(cloud.api_url))
    shoot = make_demo_shoot(tmp_path_factory.mktemp("fuzz"), count=1, width=600, height=400)
    job_id = client.upload(shoot, name="fuzzed")
    assert client.wait(job_id, timeout=240)["status"] == "DONE"
    share = client.share(job_id)
    return {"job_id": job_id, "token": share["token"]}


# The answer the real-id run must reach on the routes a photographer and a client use.
SUCCESS = {
    ("GET", "/jobs/{job_id}"): 200,
    ("POST", "/jobs/{job_id}/shares"): 201,
    ("DELETE", "/jobs/{job_id}/shares/{share_id}"): 204,
    ("GET", "/share/{token}"): 200,
}


@pytest.fixture(scope="module")
def answered() -> Iterator[dict[tuple[str, str], set[int]]]:
    """(method, path) -> the status codes the real-id run got; checked once the module is
    over, on the routes it exercised (in whatever order, on whichever worker, they ran):
    real ids reach the success answers, not only 4xx."""
    seen: dict[tuple[str, str], set[int]] = {}
    yield seen
    missed = {op: seen[op] for op, code in SUCCESS.items() if op in seen and code not in seen[op]}
    assert not missed, f"the real-id run never reached the success answer of {missed}"


@schema.parametrize()
@FUZZ_SETTINGS
def test_on_a_real_shared_job_every_route_still_answers_within_its_schema(
    case: schemathesis.Case,
    cloud: LocalCloud,
    shared_job: dict[str, str],
    answered: dict[tuple[str, str], set[int]],
) -> None:
    path = case.operation.path
    if path.endswith("/reprocess"):
        # A real reprocess would take the job away from the share for the rest of the run
        # (409 everywhere after); reprocess has its own tests.
        return
    if case.method.upper() == "DELETE" and path == "/jobs/{job_id}":
        # Erasing the job would leave nothing to answer for the rest of the run (404
        # everywhere after); erasure has its own tests.
        return
    params = case.path_parameters or {}
    if "job_id" in params:
        params["job_id"] = shared_job["job_id"]
    if "token" in params:
        params["token"] = shared_job["token"]
    if "share_id" in params:
        # A share of its own to revoke, so the shared link itself stays open.
        client = StudioClient(ApiClient(cloud.api_url))
        params["share_id"] = client.share(shared_job["job_id"])["share_id"]
    response = case.call_and_validate(base_url=cloud.api_url, checks=CHECKS, timeout=30)
    answered.setdefault((case.method.upper(), path), set()).add(response.status_code)
