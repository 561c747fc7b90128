"""The OpenAPI document against the running API: property-based requests to every
route (schemathesis), over real HTTP to the local cloud's gateway and function."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from darkroom.local.cloud import LocalCloud

pytestmark = pytest.mark.integration
OPENAPI = Path(__file__).resolve().parents[2] / "darkroom" / "api" / "openapi.yaml"
# Auth is IAM in AWS and open locally, so the auth checks do not apply here.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


# Loaded eagerly: the lazy (fixture) loader does not run under this pytest; the base
# URL, known only once the local cloud runs, is given per call instead.
schema = schemathesis.openapi.from_path(OPENAPI)
# Valid requests and invalid ones (wrong types, missing fields, bad JSON): neither may
# ever get a 5xx, and both must get an answer the document describes.
schema.config.generation.update(modes=list(schemathesis.GenerationMode))


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_route_answers_within_its_documented_schema_and_never_5xx(
    case: schemathesis.Case, cloud: LocalCloud
) -> None:
    case.call_and_validate(base_url=cloud.api_url, checks=CHECKS, timeout=30)
