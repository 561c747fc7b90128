"""Names derived from a stack's name: the default stack (and the local cloud) keep the
names darkroom.names writes, another stack's start with its own name."""

from __future__ import annotations

from darkroom import names


def test_the_default_stack_deploys_each_function_under_its_key_as_the_local_cloud_does() -> None:
    for function in names.HANDLERS:
        assert names.in_stack(function) == function


def test_another_stack_prefixes_every_regional_name_with_its_own() -> None:
    stack = "studio-b"
    assert names.in_stack(names.Function.REGISTER_JOB, stack) == "studio-b-register-job"
    assert names.state_machine_name(stack) == "studio-b-raw-pipeline"
    assert names.api_name(stack) == "studio-b-api"
    assert names.function_log_group(names.Function.API, stack) == "/aws/lambda/studio-b-api"
    assert names.state_machine_log_group(stack).endswith("/studio-b-raw-pipeline")
    assert names.api_access_log_group(stack).endswith("/studio-b-api")
    assert names.worker_log_group(stack) == "/studio-b/worker"
    assert names.worker_instance_name(0, stack) == "studio-b-worker-0"


def test_the_dashboard_name_carries_the_region_since_dashboards_are_global() -> None:
    assert names.dashboard_name("eu-west-1") == "darkroom-eu-west-1"
    assert names.dashboard_name("us-east-1", "studio-b") == "studio-b-us-east-1"
