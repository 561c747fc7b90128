"""The embedded local cloud and the CDK app declare the same system.

The local side is darkroom.local.cloud.LocalCloud's own provisioning code, run against
recording clients instead of moto (nothing is started): what it would create is compared
with what the template declares.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import pytest

from darkroom import names
from darkroom.local.cloud import LocalCloud, LocalCloudConfig, function_arn
from darkroom.settings import FUNCTION_SETTINGS, WorkerSettings, env_key, env_keys
from tests.infra.conftest import CONFIGURED_CONTEXT, CONTEXT, Synth
from tests.infra.helpers import functions_by_name, getatt_target, name_of_function

# Laptop timings (seconds, not minutes: darkroom.local.cloud.LocalCloudConfig) and how
# presigned URLs name the bucket.
LAPTOP_DIFFERS = {
    env_key("worker_heartbeat_seconds"),
    env_key("job_timeout_seconds"),
    env_key("resubmit_after_seconds"),
    env_key("s3_addressing_style"),
    # The laptop's pool is fixed unless asked (`darkroom local up --pool-max`), and
    # scales in seconds.
    env_key("pool_max_instances"),
    env_key("pool_scale_up_after_seconds"),
    env_key("pool_idle_terminate_seconds"),
}


class RecordingCloud(LocalCloud):
    """LocalCloud whose AWS clients record calls instead of reaching moto."""

    def __init__(self, state_dir: Path, **config: Any) -> None:
        super().__init__(
            LocalCloudConfig(state_dir=state_dir, pool_size=CONTEXT["pool_size"], **config)
        )
        self.recorded: dict[str, MagicMock] = {}

    def client(self, service: str) -> Any:
        if service not in self.recorded:
            mock = MagicMock(name=service)
            if service == "iam":
                mock.create_role.return_value = {"Role": {"Arn": "arn:aws:iam::1:role/local"}}
            if service == "ec2":
                mock.run_instances.side_effect = lambda **kw: {
                    "Instances": [{"InstanceId": f"i-{n:017d}"} for n in range(kw["MaxCount"])]
                }
            self.recorded[service] = mock
        return self.recorded[service]

    def calls(self, service: str, method: str) -> list[dict[str, Any]]:
        return [c.kwargs for c in getattr(self.client(service), method).call_args_list]


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> RecordingCloud:
    cloud = RecordingCloud(tmp_path_factory.mktemp("local"))
    cloud.provision()
    return cloud


def test_the_same_functions_with_the_same_handlers_timeouts_and_env_keys(
    synth: Synth, local: RecordingCloud
) -> None:
    deployed = functions_by_name(synth.template)
    created = {c["FunctionName"]: c for c in local.calls("lambda", "create_function")}
    assert set(created) == set(deployed) == set(names.HANDLERS)
    for name in set(created) & set(deployed):
        aws = deployed[name][1]["Properties"]
        assert aws["Handler"] == created[name]["Handler"], name
        assert aws["Timeout"] == created[name]["Timeout"], name
        assert aws["Runtime"] == created[name]["Runtime"], name
        assert sorted(aws["Environment"]["Variables"]) == sorted(
            created[name]["Environment"]["Variables"]
        ), name
        assert sorted(aws["Environment"]["Variables"]) == sorted(
            local.function_environment(name)
        ), name
        assert set(created[name]["Environment"]["Variables"]) == env_keys(
            FUNCTION_SETTINGS[name]
        ), name
        # Neither reserves concurrency by default: a new account's quota refuses it.
        assert "ReservedConcurrentExecutions" not in aws, name
    assert not local.calls("lambda", "put_function_concurrency")


def _normalise(
    configs: list[dict[str, Any]], function_of: Any
) -> set[tuple[str, frozenset[str], frozenset[tuple[str, str]]]]:
    """(function, events, filter rules); AWS splits one config per event, local does not."""
    merged: dict[tuple[str, frozenset[tuple[str, str]]], set[str]] = {}
    for config in configs:
        rules = frozenset(
            (r["Name"].lower(), r["Value"])
            for r in config.get("Filter", {}).get("Key", {}).get("FilterRules", [])
        )
        key = (function_of(config["LambdaFunctionArn"]), rules)
        merged.setdefault(key, set()).update(config["Events"])
    return {(fn, frozenset(events), rules) for (fn, rules), events in merged.items()}


def test_the_same_s3_notifications(synth: Synth, local: RecordingCloud) -> None:
    storage = synth.stack.storage
    by_bucket_id = {
        synth.logical_id(storage.raw): names.RAW_BUCKET,
        synth.logical_id(storage.input): names.INPUT_BUCKET,
        synth.logical_id(storage.processed): names.PROCESSED_BUCKET,
        synth.logical_id(storage.output): names.OUTPUT_BUCKET,
    }
    aws: dict[str, list[dict[str, Any]]] = {}
    for resource in synth.resources("Custom::S3BucketNotifications").values():
        bucket = by_bucket_id[resource["Properties"]["BucketName"]["Ref"]]
        config = resource["Properties"]["NotificationConfiguration"]
        aws.setdefault(bucket, []).extend(config.get("LambdaFunctionConfigurations", []))
    laptop: dict[str, list[dict[str, Any]]] = {}
    for call in local.calls("s3", "put_bucket_notification_configuration"):
        config = call["NotificationConfiguration"]
        laptop.setdefault(call["Bucket"], []).extend(config.get("LambdaFunctionConfigurations", []))

    arn_to_name = {function_arn(n, local.config.region): n for n in names.HANDLERS}
    assert set(aws) == set(laptop)
    for bucket in aws:
        assert _normalise(
            aws[bucket], lambda arn: name_of_function(synth.template, getatt_target(arn) or "")
        ) == _normalise(laptop[bucket], arn_to_name.__getitem__), bucket


def test_the_same_state_machine_and_placeholders(synth: Synth, local: RecordingCloud) -> None:
    (call,) = local.calls("stepfunctions", "create_state_machine")
    assert call["name"] == names.state_machine_name()
    machine = synth.resource(synth.stack.pipeline.state_machine)["Properties"]
    # Fill the template's substitutions the way the laptop does: the function's local ARN.
    text = machine["DefinitionString"]
    for placeholder, value in machine["DefinitionSubstitutions"].items():
        function = name_of_function(synth.template, getatt_target(value) or "")
        text = text.replace("${" + placeholder + "}", function_arn(function, local.config.region))
    assert json.loads(text) == json.loads(call["definition"])


def test_the_same_pool_tables_and_buckets(synth: Synth, local: RecordingCloud) -> None:
    (run,) = local.calls("ec2", "run_instances")
    for instance in synth.stack.worker_pool.instances:
        props = synth.resource(instance)["Properties"]
        assert (
            props["InstanceInitiatedShutdownBehavior"] == run["InstanceInitiatedShutdownBehavior"]
        )
        assert props["InstanceType"] == run["InstanceType"]
        tags = {t["Key"]: t["Value"] for t in props["Tags"]}
        for tag in run["TagSpecifications"][0]["Tags"]:
            assert tags[tag["Key"]] == tag["Value"]
    assert run["MaxCount"] == len(synth.stack.worker_pool.instances)

    tables = {c["TableName"]: c for c in local.calls("dynamodb", "create_table")}
    storage = synth.stack.storage
    for name, table in (
        (names.JOBS_TABLE, storage.jobs),
        (names.WORKERS_TABLE, storage.workers),
        (names.UPLOADS_TABLE, storage.uploads),
        (names.SHARES_TABLE, storage.shares),
    ):
        props = synth.resource(table)["Properties"]
        local_table = tables[name]
        assert props["KeySchema"] == local_table["KeySchema"], name
        assert sorted(props["AttributeDefinitions"], key=str) == sorted(
            local_table["AttributeDefinitions"], key=str
        ), name
        assert props.get("GlobalSecondaryIndexes") == local_table.get("GlobalSecondaryIndexes"), (
            name
        )
    assert set(tables) == {
        names.JOBS_TABLE,
        names.WORKERS_TABLE,
        names.UPLOADS_TABLE,
        names.SHARES_TABLE,
    }

    created = {c["Bucket"] for c in local.calls("s3", "create_bucket")}
    assert {
        names.RAW_BUCKET,
        names.PROCESSED_BUCKET,
        names.INPUT_BUCKET,
        names.OUTPUT_BUCKET,
    } <= created
    versioned = {
        c["Bucket"]
        for c in local.calls("s3", "put_bucket_versioning")
        if c["VersioningConfiguration"] == {"Status": "Enabled"}
    }
    deployed = {
        name
        for name, bucket in (
            (names.RAW_BUCKET, storage.raw),
            (names.PROCESSED_BUCKET, storage.processed),
            (names.INPUT_BUCKET, storage.input),
            (names.OUTPUT_BUCKET, storage.output),
        )
        if synth.resource(bucket)["Properties"].get("VersioningConfiguration")
        == {"Status": "Enabled"}
    }
    assert versioned == deployed == {names.RAW_BUCKET}


@pytest.mark.parametrize("function", sorted(names.HANDLERS))
def test_every_literal_setting_is_the_same_in_aws_and_on_the_laptop(
    synth: Synth, local: RecordingCloud, function: str
) -> None:
    """Limits, expiries and defaults agree; resource names (references in the template)
    and the settings the laptop shortens on purpose may differ."""
    _, resource = functions_by_name(synth.template)[function]
    aws = resource["Properties"]["Environment"]["Variables"]
    laptop = local.function_environment(function)
    for key, value in aws.items():
        if isinstance(value, str) and key not in LAPTOP_DIFFERS:
            assert laptop[key] == value, key
    # Regional bucket hostnames in AWS; the local endpoint is an IP address.
    if function == names.Function.API:
        assert aws[env_key("s3_addressing_style")] == "virtual"
        assert laptop[env_key("s3_addressing_style")] == "path"


def test_the_worker_gets_the_same_settings_keys_as_the_local_worker(
    synth: Synth, local: RecordingCloud
) -> None:
    laptop = {k for k in local.worker_environment() if k.startswith("DARKROOM_")}
    aws = {k for k in synth.stack.worker_pool.environment if k.startswith("DARKROOM_")}
    assert laptop == aws == env_keys(WorkerSettings)


def test_the_same_instance_type_preference_as_the_template(
    synth: Synth, configured_synth: Synth, tmp_path: Path
) -> None:
    """Created as the first type, StartWorker told the whole list, on both sides: with
    the defaults and with the configured list."""
    configured = tuple(CONFIGURED_CONTEXT["worker_instance_types"].split(","))
    for deployed, types in ((synth, names.WORKER_INSTANCE_TYPES), (configured_synth, configured)):
        laptop = RecordingCloud(tmp_path / types[0], worker_instance_types=types)
        laptop.provision()
        (run,) = laptop.calls("ec2", "run_instances")
        for instance in deployed.resources("AWS::EC2::Instance").values():
            assert instance["Properties"]["InstanceType"] == run["InstanceType"] == types[0]
        _, start = deployed.functions()[names.Function.START_WORKER]
        key = env_key("worker_instance_types")
        aws = start["Properties"]["Environment"]["Variables"][key]
        assert aws == laptop.function_environment(names.Function.START_WORKER)[key]
        assert aws == ",".join(types)


def test_the_local_cloud_is_the_default_stack_by_its_names(
    synth: Synth, local: RecordingCloud
) -> None:
    """The local cloud's functions and state machine carry the names the default stack
    derives from its name; another stack's differ (test_wiring checks those)."""
    assert synth.stack.stack_name == names.DEFAULT_STACK
    created = {c["FunctionName"] for c in local.calls("lambda", "create_function")}
    assert created == {names.in_stack(f, names.DEFAULT_STACK) for f in names.HANDLERS}
    (machine,) = local.calls("stepfunctions", "create_state_machine")
    deployed = synth.resource(synth.stack.pipeline.state_machine)["Properties"]
    assert machine["name"] == deployed["StateMachineName"]
    (api,) = synth.resources("AWS::ApiGatewayV2::Api").values()
    assert api["Properties"]["Name"] == names.api_name(names.DEFAULT_STACK)


def test_the_edge_settings_are_off_on_the_laptop_as_in_a_stack_without_the_edge(
    synth: Synth, local: RecordingCloud
) -> None:
    """The origin check and the edge's public URL: empty (off) on both sides by default;
    the local cloud has no CloudFront, so it never turns the check on."""
    _, resource = functions_by_name(synth.template)[names.Function.API]
    aws = resource["Properties"]["Environment"]["Variables"]
    laptop = local.function_environment(names.Function.API)
    for field in ("origin_verify_secret_arn", "api_public_url"):
        assert aws[env_key(field)] == laptop[env_key(field)] == "", field
    assert not synth.stack.config.edge and not synth.stack.config.private_network
