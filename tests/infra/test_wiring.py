"""What the stack declares, resource by resource."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any

import pytest

from darkroom import names, workflow
from darkroom.names import Function
from darkroom.settings import FUNCTION_SETTINGS, WorkerSettings, env_key, env_keys
from tests.infra.conftest import CLI_ACCOUNT, CLI_REGION, CONFIGURED_CONTEXT, CONTEXT, Synth
from tests.infra.helpers import (
    all_policy_statements,
    as_list,
    functions_by_name,
    getatt_target,
    heredoc,
    name_of_function,
    render,
    role_logical_id,
    statements_of_role,
)

DATA_BUCKETS = (names.RAW_BUCKET, names.PROCESSED_BUCKET, names.INPUT_BUCKET, names.OUTPUT_BUCKET)


def buckets(synth: Synth) -> dict[str, tuple[str, dict[str, Any]]]:
    """darkroom's logical bucket name -> (logical id, resource); access logs as 'access-logs'."""
    storage = synth.stack.storage
    return {
        names.RAW_BUCKET: (synth.logical_id(storage.raw), synth.resource(storage.raw)),
        names.PROCESSED_BUCKET: (
            synth.logical_id(storage.processed),
            synth.resource(storage.processed),
        ),
        names.INPUT_BUCKET: (synth.logical_id(storage.input), synth.resource(storage.input)),
        names.OUTPUT_BUCKET: (synth.logical_id(storage.output), synth.resource(storage.output)),
        "access-logs": (
            synth.logical_id(storage.access_logs),
            synth.resource(storage.access_logs),
        ),
    }


def bucket_policy(synth: Synth, bucket_id: str) -> list[dict[str, Any]]:
    for resource in synth.resources("AWS::S3::BucketPolicy").values():
        if resource["Properties"]["Bucket"] == {"Ref": bucket_id}:
            return as_list(resource["Properties"]["PolicyDocument"]["Statement"])
    raise AssertionError(f"no bucket policy for {bucket_id}")


# -- the synth itself ---------------------------------------------------------------
def test_the_stack_synthesizes_environment_agnostic_without_credentials(synth: Synth) -> None:
    from aws_cdk import Token

    stack = synth.stack
    assert Token.is_unresolved(stack.account) and Token.is_unresolved(stack.region)
    assert stack.resolve(stack.account) == {"Ref": "AWS::AccountId"}
    manifest = json.loads((synth.outdir / "manifest.json").read_text())
    assert (
        manifest["artifacts"][stack.artifact_id]["environment"]
        == "aws://unknown-account/unknown-region"
    )
    # conftest exported a CLI profile's account and region: nothing took them in.
    text = json.dumps(synth.template)
    assert CLI_ACCOUNT not in text and CLI_REGION not in text
    assert not re.search(r":\d{12}:", text), "no account id written into an ARN"


# -- storage ------------------------------------------------------------------------
def test_every_bucket_is_private_encrypted_tls_only_without_acls(synth: Synth) -> None:
    assert len(synth.resources("AWS::S3::Bucket")) == 5, "four data buckets + access logs"
    for name, (logical_id, bucket) in buckets(synth).items():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, name
        sse = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256", name
        assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
        denies = [s for s in bucket_policy(synth, logical_id) if s["Effect"] == "Deny"]
        conditions = [json.dumps(s.get("Condition", {})) for s in denies]
        assert any('"aws:SecureTransport": "false"' in c for c in conditions), name
        assert any("s3:TlsVersion" in c for c in conditions), name
        if name != "access-logs":
            assert props["LoggingConfiguration"]["DestinationBucketName"] == {
                "Ref": buckets(synth)["access-logs"][0]
            }
            assert props["LoggingConfiguration"]["LogFilePrefix"] == f"{name}/"
        assert bucket["DeletionPolicy"] == "Retain", "client data survives `cdk destroy`"


def lifecycle(bucket: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["Id"]: r for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}


def test_raw_and_processed_data_age_by_the_configured_lifecycle(synth: Synth) -> None:
    config = synth.stack.config
    found = buckets(synth)
    raw_rules = lifecycle(found[names.RAW_BUCKET][1])
    raw = raw_rules["age-raw"]
    assert raw["Prefix"] == names.RAW_PREFIX
    assert raw["Transitions"] == [
        {"StorageClass": "STANDARD_IA", "TransitionInDays": config.raw_infrequent_access_days}
    ]
    # Nothing deletes an original by default: no expiry, no archive, every version kept.
    for deletes in ("ExpirationInDays", "NoncurrentVersionExpiration", "ExpiredObjectDeleteMarker"):
        assert all(deletes not in rule for rule in raw_rules.values()), deletes
    processed = lifecycle(found[names.PROCESSED_BUCKET][1])["age-processed"]
    assert processed["Prefix"] == names.PROCESSED_PREFIX
    assert processed["Transitions"] == [
        {
            "StorageClass": "STANDARD_IA",
            "TransitionInDays": config.processed_infrequent_access_days,
        }
    ]
    assert "ExpirationInDays" not in processed, "deliveries are kept unless configured"
    for name in DATA_BUCKETS:
        rule = lifecycle(found[name][1])["abort-incomplete-uploads"]
        assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}


def test_jobs_and_workers_tables(synth: Synth) -> None:
    storage = synth.stack.storage
    jobs = synth.resource(storage.jobs)["Properties"]
    # The job item and, beside it in the same partition, its files' and runs' items.
    assert jobs["KeySchema"] == [
        {"AttributeName": "job_id", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    (index,) = jobs["GlobalSecondaryIndexes"]
    assert index == {
        "IndexName": names.NEWEST_INDEX,
        "KeySchema": [
            {"AttributeName": names.ENTITY, "KeyType": "HASH"},
            {"AttributeName": names.CREATED_KEY, "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "ALL"},
    }
    workers = synth.resource(storage.workers)["Properties"]
    assert workers["KeySchema"] == [{"AttributeName": "instance_id", "KeyType": "HASH"}]
    assert "GlobalSecondaryIndexes" not in workers
    for props in (jobs, workers):
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


# -- the state machine --------------------------------------------------------------
def test_state_machine_runs_the_committed_asl_with_every_placeholder_filled(synth: Synth) -> None:
    machine = synth.resource(synth.stack.pipeline.state_machine)["Properties"]
    template = workflow.load_template()
    assert machine["DefinitionString"] == template, "the ASL exactly as committed"
    assert machine["StateMachineName"] == names.state_machine_name()
    substitutions = machine["DefinitionSubstitutions"]
    assert set(substitutions) == workflow.placeholders(template)
    for placeholder, value in substitutions.items():
        target = getatt_target(value)
        assert target is not None and value["Fn::GetAtt"][1] == "Arn"
        assert (
            name_of_function(synth.template, target) == names.ASL_FUNCTION_PLACEHOLDERS[placeholder]
        )


def test_state_machine_logs_all_events_without_execution_data_and_traces(synth: Synth) -> None:
    pipeline = synth.stack.pipeline
    machine = synth.resource(pipeline.state_machine)["Properties"]
    logging = machine["LoggingConfiguration"]
    assert logging["Level"] == "ALL"
    assert logging["IncludeExecutionData"] is False, "execution data holds task tokens"
    assert logging["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"] == {
        "Fn::GetAtt": [synth.logical_id(pipeline.log_group), "Arn"]
    }
    assert machine["TracingConfiguration"] == {"Enabled": True}
    assert machine["StateMachineType"] == "STANDARD"


# -- the functions ------------------------------------------------------------------
DEPLOYED_FROM_NAMES = set(names.HANDLERS)


@pytest.mark.parametrize("function", sorted(DEPLOYED_FROM_NAMES))
def test_each_function_follows_darkroom_names(synth: Synth, function: str) -> None:
    _, resource = functions_by_name(synth.template)[function]
    props = resource["Properties"]
    assert props["Runtime"] == "python3.12"
    assert props["Architectures"] == ["arm64"]
    assert props["Handler"] == names.HANDLERS[function]
    assert props["Timeout"] == names.FUNCTION_TIMEOUT_SECONDS[function]
    # Exactly the keys of its settings model: nothing it would not read.
    assert set(props["Environment"]["Variables"]) == env_keys(FUNCTION_SETTINGS[function])
    assert props["TracingConfig"] == {"Mode": "Active"}, "traced with the state machine"
    assert "LogGroup" in props["LoggingConfig"], "its own log group, with retention"


def test_every_function_has_a_role_of_its_own(synth: Synth) -> None:
    roles = [
        getatt_target(r["Properties"]["Role"])
        for r in synth.resources("AWS::Lambda::Function").values()
    ]
    assert len(roles) == len(set(roles))


def test_environment_values_come_from_the_stack(synth: Synth) -> None:
    stack, fns = synth.stack, functions_by_name(synth.template)

    def env(function: str) -> dict[str, Any]:
        variables: dict[str, Any] = fns[function][1]["Properties"]["Environment"]["Variables"]
        return variables

    storage = stack.storage
    assert env(Function.REGISTER_JOB)[env_key("raw_bucket")] == {
        "Ref": synth.logical_id(storage.raw)
    }
    assert env(Function.MARK_DONE)[env_key("jobs_table")] == {"Ref": synth.logical_id(storage.jobs)}
    assert env(Function.ORCHESTRATOR)[env_key("state_machine_arn")] == {
        "Ref": synth.logical_id(stack.pipeline.state_machine)
    }
    assert env(Function.REGISTER_JOB)[env_key("worker_heartbeat_seconds")] == "300"
    assert env(Function.REGISTER_JOB)[env_key("job_timeout_seconds")] == "21600"
    assert env(Function.THUMBNAIL)[env_key("thumbnail_sizes")] == "256,1024"
    assert env(Function.THUMBNAIL)[env_key("max_image_pixels")] == "100000000"
    ids = env(Function.START_WORKER)[env_key("worker_instance_ids")]
    assert ids == {
        "Fn::Join": [",", [{"Ref": synth.logical_id(i)} for i in stack.worker_pool.instances]]
    }
    assert len(stack.worker_pool.instances) == CONTEXT["pool_size"]


def notification_configs(synth: Synth, bucket: Any) -> list[dict[str, Any]]:
    logical_id = synth.logical_id(bucket)
    for resource in synth.resources("Custom::S3BucketNotifications").values():
        if resource["Properties"]["BucketName"] == {"Ref": logical_id}:
            configs: list[dict[str, Any]] = resource["Properties"]["NotificationConfiguration"][
                "LambdaFunctionConfigurations"
            ]
            return configs
    raise AssertionError(f"no notifications on {logical_id}")


def test_only_a_submission_manifest_invokes_the_orchestrator(synth: Synth) -> None:
    (config,) = notification_configs(synth, synth.stack.storage.raw)
    assert config["Events"] == ["s3:ObjectCreated:*"]
    rules = {r["Name"]: r["Value"] for r in config["Filter"]["Key"]["FilterRules"]}
    assert rules == {"prefix": names.RAW_PREFIX, "suffix": "/" + names.MANIFEST_NAME}
    target = getatt_target(config["LambdaFunctionArn"])
    assert target and name_of_function(synth.template, target) == Function.ORCHESTRATOR


def event_invoke_config(synth: Synth, function: str) -> dict[str, Any]:
    logical_id, _ = functions_by_name(synth.template)[function]
    for resource in synth.resources("AWS::Lambda::EventInvokeConfig").values():
        if resource["Properties"]["FunctionName"] == {"Ref": logical_id}:
            props: dict[str, Any] = resource["Properties"]
            return props
    raise AssertionError(f"no async invoke config for {function}")


@pytest.mark.parametrize(
    ("function", "queue_attr"),
    [
        (Function.THUMBNAIL, "thumbnails.failures"),
        (Function.ORCHESTRATOR, "pipeline.submission_failures"),
        (Function.RECONCILE_ENDING, "pipeline.ending_failures"),
    ],
)
def test_async_functions_retry_then_park_the_event_on_a_queue(
    synth: Synth, function: str, queue_attr: str
) -> None:
    queue: Any = synth.stack
    for part in queue_attr.split("."):
        queue = getattr(queue, part)
    props = event_invoke_config(synth, function)
    assert props["MaximumRetryAttempts"] == 2
    assert props["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": [synth.logical_id(queue), "Arn"]
    }
    queue_props = synth.resource(queue)["Properties"]
    assert queue_props["SqsManagedSseEnabled"] is True
    assert queue_props["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_thumbnail_function_memory_concurrency_and_notification(synth: Synth) -> None:
    _, resource = functions_by_name(synth.template)[Function.THUMBNAIL]
    props = resource["Properties"]
    from cdk.config import DeployConfig

    assert props["MemorySize"] == DeployConfig().thumbnail_memory_mb, (
        "memory set from the thumbnail benchmark's figures, see README"
    )
    assert "ReservedConcurrentExecutions" not in props, "a new account's quota refuses any"
    configs = notification_configs(synth, synth.stack.storage.input)
    assert sorted(e for c in configs for e in c["Events"]) == [
        "s3:ObjectCreated:*",
        "s3:ObjectRemoved:*",
    ]
    for config in configs:
        assert "Filter" not in config
        target = getatt_target(config["LambdaFunctionArn"])
        assert target and name_of_function(synth.template, target) == Function.THUMBNAIL


# -- the worker pool ----------------------------------------------------------------
def test_pool_instances(synth: Synth) -> None:
    pool = synth.stack.worker_pool
    parameters = synth.template["Parameters"]
    for instance in pool.instances:
        props = synth.resource(instance)["Properties"]
        assert props["InstanceType"] == "c7g.xlarge"
        image = parameters[props["ImageId"]["Ref"]]
        assert image["Type"] == "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"
        assert re.fullmatch(
            r"/aws/service/ami-amazon-linux-latest/al2023-ami-.*-arm64", image["Default"]
        )
        assert props["MetadataOptions"]["HttpTokens"] == "required"
        assert props["InstanceInitiatedShutdownBehavior"] == "stop"
        assert "KeyName" not in props, "no SSH key: Session Manager only"
        assert props["Monitoring"] is True
        devices = {d["DeviceName"]: d["Ebs"] for d in props["BlockDeviceMappings"]}
        assert set(devices) == {"/dev/xvda", "/dev/sdf"}
        for ebs in devices.values():
            assert ebs["Encrypted"] is True and ebs["VolumeType"] == "gp3"
        assert devices["/dev/sdf"]["VolumeSize"] == synth.stack.config.worker_scratch_gb
        tags = {t["Key"]: t["Value"] for t in props["Tags"]}
        assert tags[names.WORKER_POOL_TAG_KEY] == names.WORKER_POOL_TAG_VALUE


def test_the_pool_accepts_no_inbound_traffic(synth: Synth) -> None:
    (group,) = synth.resources("AWS::EC2::SecurityGroup").values()
    assert "SecurityGroupIngress" not in group["Properties"]
    assert not synth.resources("AWS::EC2::SecurityGroupIngress")
    egress = group["Properties"]["SecurityGroupEgress"]
    assert [(e["IpProtocol"], e["FromPort"], e["ToPort"]) for e in egress] == [("tcp", 443, 443)]
    assert not synth.resources("AWS::EC2::NatGateway"), "no NAT gateway to pay for"
    endpoints = {
        render(r["Properties"]["ServiceName"])
        for r in synth.resources("AWS::EC2::VPCEndpoint").values()
    }
    assert any(".s3" in e for e in endpoints) and any(".dynamodb" in e for e in endpoints)
    assert synth.resources("AWS::EC2::FlowLog")


@pytest.fixture(scope="module")
def user_data(synth: Synth) -> str:
    instance = synth.resource(synth.stack.worker_pool.instances[0])
    return render(instance["Properties"]["UserData"])


def test_user_data_writes_the_worker_settings(synth: Synth, user_data: str) -> None:
    env_file = heredoc(user_data, "/etc/darkroom/worker.env")
    values = dict(line.split("=", 1) for line in env_file.splitlines())
    assert values[env_key("shutdown_mode")] == "ec2-api"
    assert values[env_key("scratch_dir")] == "/var/lib/darkroom/scratch"
    assert values[env_key("heartbeat_interval_seconds")] == "60"
    assert values[env_key("idle_shutdown_seconds")] == "600"
    assert (
        values[env_key("raw_bucket")]
        == "<" + json.dumps({"Ref": synth.logical_id(synth.stack.storage.raw)}) + ">"
    )
    # Exactly the WorkerSettings keys (an unknown one would be ignored).
    assert {k for k in values if k.startswith("DARKROOM_")} == env_keys(WorkerSettings)


def test_user_data_runs_the_worker_as_a_service_at_every_boot(user_data: str) -> None:
    setup = heredoc(user_data, "/etc/systemd/system/darkroom-worker-setup.service")
    unit = heredoc(user_data, "/etc/systemd/system/darkroom-worker.service")
    assert "ExecStart=/opt/darkroom/venv/bin/python -m worker" in unit
    assert "Restart=on-failure" in unit
    assert "WantedBy=multi-user.target" in unit
    assert "EnvironmentFile=/etc/darkroom/worker.env" in unit
    assert "User=darkroom-worker" in unit
    # Mount and install are re-checked at every boot, as root, before the worker starts.
    assert "Requires=darkroom-worker-setup.service" in unit
    assert setup.index("ExecStart=/opt/darkroom/scratch.sh") < setup.index(
        "ExecStart=/opt/darkroom/install.sh"
    )
    assert "User=" not in setup
    assert "systemctl enable darkroom-worker-setup.service darkroom-worker.service" in user_data
    assert "useradd --system" in user_data
    assert user_data.index("useradd") < user_data.index("systemctl start")
    install = heredoc(user_data, "/opt/darkroom/install.sh")
    assert "--no-index --find-links /opt/darkroom/src/wheels --require-hashes" in install
    assert "python3.12 -m venv /opt/darkroom/venv" in install
    scratch = heredoc(user_data, "/opt/darkroom/scratch.sh")
    assert "chown -R darkroom-worker:darkroom-worker /var/lib/darkroom/scratch" in scratch


def test_a_code_change_updates_the_pool_in_place_at_its_next_start(
    synth: Synth, user_data: str
) -> None:
    """The bundle's address is a parameter the install script reads at every boot: the
    user data names the parameter, never the asset, so a new bundle replaces nothing."""
    pool = synth.stack.worker_pool
    parameter = synth.resource(pool.bundle_parameter)
    value = render(parameter["Properties"]["Value"])
    assert '"Fn::Sub": "s3://' in value and pool.source.s3_object_key in value
    assert pool.source.s3_object_key not in user_data
    source = dict(
        line.split("=", 1) for line in heredoc(user_data, "/opt/darkroom/source.env").splitlines()
    )
    assert source["DARKROOM_BUNDLE_PARAMETER"] == (
        "<" + json.dumps({"Ref": synth.logical_id(pool.bundle_parameter)}) + ">"
    )
    install = heredoc(user_data, "/opt/darkroom/install.sh")
    read = install.index('aws ssm get-parameter --region "$AWS_REGION"')
    assert read < install.index('if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$bundle" ]')
    assert install.index('echo "$bundle" > "$stamp"') > install.index("pip install")
    statements = statements_of_role(synth.template, synth.logical_id(pool.role))
    reads = [s for s in statements if "ssm:GetParameter" in as_list(s["Action"])]
    assert len(reads) == 1
    parameter_ref = json.dumps({"Ref": synth.logical_id(pool.bundle_parameter)})
    assert parameter_ref in render(reads[0]["Resource"])


def test_scratch_volume_is_formatted_only_when_blank(user_data: str) -> None:
    script = heredoc(user_data, "/opt/darkroom/scratch.sh")
    guard = script.index('if ! blkid "$device"')
    assert guard < script.index("mkfs.xfs")
    label = re.search(r"mkfs\.xfs -q -L (\S+)", script)
    assert label and len(label.group(1)) <= 12, "XFS labels are 12 characters at most"
    assert "nofail" in script, "a missing volume must not stop the boot"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_user_data_scripts_parse(user_data: str) -> None:
    for text in (
        user_data,
        heredoc(user_data, "/opt/darkroom/scratch.sh"),
        heredoc(user_data, "/opt/darkroom/install.sh"),
    ):
        result = subprocess.run(["bash", "-n"], input=text, text=True, capture_output=True)
        assert result.returncode == 0, result.stderr


def test_the_worker_source_asset_holds_what_pip_needs_and_nothing_else(synth: Synth) -> None:
    key = synth.stack.resolve(synth.stack.worker_pool.source.s3_object_key)
    asset = synth.outdir / f"asset.{key.removesuffix('.zip')}"
    files = {p.relative_to(asset).as_posix() for p in asset.rglob("*") if p.is_file()}
    assert {"pyproject.toml", "README.md", "worker/__main__.py", "darkroom/settings.py"} <= files
    assert "workflows/raw_pipeline.asl.json" in files
    assert not any(f.startswith(("tests/", "cdk/", ".venv/", "benchmarks/")) for f in files)
    assert not any("__pycache__" in f for f in files)


# -- cost guard, monitoring, outputs --------------------------------------------------
def test_cost_guard_runs_every_five_minutes(synth: Synth) -> None:
    rule = synth.resource(synth.stack.cost_guard.rule)
    assert rule["Properties"]["ScheduleExpression"] == "rate(5 minutes)"
    logical_id, function = functions_by_name(synth.template)[Function.COST_GUARD]
    assert rule["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [logical_id, "Arn"]}
    variables = function["Properties"]["Environment"]["Variables"]
    assert variables[env_key("cost_guard_max_idle_seconds")] == str(30 * 60)


def test_every_log_group_has_a_retention(synth: Synth) -> None:
    groups = synth.resources("AWS::Logs::LogGroup")
    assert groups
    for logical_id, group in groups.items():
        assert group["Properties"].get("RetentionInDays") == 30, logical_id
    # Every function logs to a declared group: none falls back to an implicit one.
    handler_groups = [render(g["Properties"].get("LogGroupName", "")) for g in groups.values()]
    for logical_id, function in synth.resources("AWS::Lambda::Function").items():
        if "LoggingConfig" in function["Properties"]:
            target = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
            assert target in groups
        else:  # CDK's bucket-notifications handler: a group named after it
            assert "/aws/lambda/<" + json.dumps({"Ref": logical_id}) + ">" in handler_groups


def test_alarms_notify_the_topic(synth: Synth) -> None:
    alarms = synth.stack.monitoring.alarms
    assert set(alarms) == {
        "FailedExecutions",
        "ThumbnailQueued",
        "SubmissionQueued",
        "EndingQueued",
        "NotifyQueued",
        "WorkerRunningTooLong",
        "ShardsWaiting",
        "CostGuardFailing",
        "ApiServerErrors",
        "ApiLatency",
        "ApiFunctionErrors",
    }
    topic = {"Ref": synth.logical_id(synth.stack.monitoring.topic)}
    for alarm in alarms.values():
        assert synth.resource(alarm)["Properties"]["AlarmActions"] == [topic]
    overrun = synth.resource(alarms["WorkerRunningTooLong"])["Properties"]
    assert overrun["Threshold"] == 21600 + 1800
    assert overrun["MetricName"] == "WorkerLongestRunSeconds"
    # The pool scaler's own count, every minute: waiting without a break for 30 minutes.
    waiting = synth.resource(alarms["ShardsWaiting"])["Properties"]
    assert (waiting["MetricName"], waiting["Statistic"]) == ("ShardsWaitingForWorker", "Minimum")
    assert (waiting["Period"], waiting["EvaluationPeriods"], waiting["Threshold"]) == (300, 6, 1)
    assert waiting["TreatMissingData"] == "notBreaching"
    (subscription,) = synth.resources("AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Endpoint"] == CONTEXT["alarm_email"]


def test_cloudwatch_may_publish_alarms_to_the_topic_over_tls_only(synth: Synth) -> None:
    """The topic policy replaces SNS's default one: it must allow CloudWatch itself."""
    topic = {"Ref": synth.logical_id(synth.stack.monitoring.topic)}
    (policy,) = synth.resources("AWS::SNS::TopicPolicy").values()
    assert policy["Properties"]["Topics"] == [topic]
    statements = as_list(policy["Properties"]["PolicyDocument"]["Statement"])
    (allow,) = [s for s in statements if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert allow["Action"] == "sns:Publish"
    assert allow["Resource"] == topic
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert render(allow["Condition"]["ArnLike"]["aws:SourceArn"]).endswith(":alarm:*")
    (deny,) = [s for s in statements if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Principal"] in ("*", {"AWS": "*"}) and deny["Action"] == "sns:Publish"


def test_dashboard_shows_what_issue_6_lists(synth: Synth) -> None:
    (dashboard,) = synth.resources("AWS::CloudWatch::Dashboard").values()
    body = render(dashboard["Properties"]["DashboardBody"])
    for needle in (
        "ExecutionsSucceeded",
        "ExecutionsFailed",
        "ExecutionTime",
        "FilesDeveloped",
        "FilesFailed",
        "WorkerInstancesRunning",
        "Invocations",
        "Errors",
        "Duration",
    ):
        assert needle in body, needle
    filters = {
        f["Properties"]["MetricTransformations"][0]["MetricName"]: f["Properties"]["FilterPattern"]
        for f in synth.resources("AWS::Logs::MetricFilter").values()
    }
    assert filters == {
        "FilesDeveloped": '{ $.message = "file developed" }',
        "FilesFailed": '{ $.message = "file failed" }',
    }


def test_outputs(synth: Synth) -> None:
    from cdk.config import ExtraOutput

    outputs = synth.template["Outputs"]
    for key in (
        names.Output.RAW_BUCKET,
        names.Output.PROCESSED_BUCKET,
        names.Output.INPUT_BUCKET,
        names.Output.OUTPUT_BUCKET,
        names.Output.JOBS_TABLE,
        names.Output.WORKERS_TABLE,
        names.Output.STATE_MACHINE_ARN,
        ExtraOutput.STATE_MACHINE_CONSOLE_URL,
        ExtraOutput.DASHBOARD_URL,
    ):
        assert key in outputs, key
    # The state machine an operator finds by the stack's outputs.
    assert outputs[names.Output.STATE_MACHINE_ARN]["Value"] == {
        "Ref": synth.logical_id(synth.stack.pipeline.state_machine)
    }
    console = render(outputs[ExtraOutput.STATE_MACHINE_CONSOLE_URL]["Value"])
    assert "console.aws.amazon.com/states/home" in console and "#/statemachines/view/" in console
    dashboard = render(outputs[ExtraOutput.DASHBOARD_URL]["Value"])
    assert '#dashboards:name=darkroom-<{"Ref": "AWS::Region"}>' in dashboard


def on_stack(synth: Synth, path: str) -> Any:
    """A construct by its attribute path from the stack, e.g. 'thumbnails.failures'."""
    found: Any = synth.stack
    for part in path.split("."):
        found = getattr(found, part)
    return found


def token(value: dict[str, Any]) -> str:
    if "Ref" in value:
        return "${" + value["Ref"] + "}"
    return "${" + ".".join(value["Fn::GetAtt"]) + "}"


def dashboard_widgets(synth: Synth) -> dict[str, dict[str, Any]]:
    """Title -> widget properties, the body parsed with references shown as ${...}."""
    (dashboard,) = synth.resources("AWS::CloudWatch::Dashboard").values()
    body = json.loads(render(dashboard["Properties"]["DashboardBody"], token))
    return {
        w["properties"]["title"]: w["properties"]
        for w in body["widgets"]
        if "title" in w["properties"]
    }


def metric_rows(widget: dict[str, Any]) -> list[tuple[str, str, dict[str, str], dict[str, Any]]]:
    """(namespace, metric name, dimensions, options); a math expression has no name."""
    rows: list[tuple[str, str, dict[str, str], dict[str, Any]]] = []
    for row in widget["metrics"]:
        options = row[-1] if isinstance(row[-1], dict) else {}
        ident = row[:-1] if isinstance(row[-1], dict) else row
        namespace, name, *dims = ident or ["", ""]
        rows.append((namespace, name, dict(zip(dims[::2], dims[1::2], strict=True)), options))
    return rows


def test_dashboard_shows_executions_by_every_outcome_of_the_state_machine(synth: Synth) -> None:
    machine = "${" + synth.logical_id(synth.stack.pipeline.state_machine) + "}"
    rows = metric_rows(dashboard_widgets(synth)["RAW executions by outcome"])
    outcomes: set[str] = set()
    for namespace, name, dims, options in rows:
        assert (namespace, dims) == ("AWS/States", {"StateMachineArn": machine}), name
        assert options["stat"] == "Sum"
        outcomes.add(name)
    assert outcomes >= {
        "ExecutionsSucceeded",
        "ExecutionsFailed",
        "ExecutionsTimedOut",
        "ExecutionsAborted",
    }


def test_dashboard_thumbnail_widgets_watch_the_thumbnail_function(synth: Synth) -> None:
    thumbnail, _ = functions_by_name(synth.template)[Function.THUMBNAIL]
    widgets = dashboard_widgets(synth)
    rows = [
        *metric_rows(widgets["Thumbnails: invocations, errors, throttles"]),
        *metric_rows(widgets["Thumbnails: duration (ms)"]),
    ]
    for namespace, name, dims, _ in rows:
        assert (namespace, dims) == ("AWS/Lambda", {"FunctionName": "${" + thumbnail + "}"}), name
    assert {name for _, name, _, _ in rows} >= {"Invocations", "Errors", "Duration"}


def test_dashboard_counts_worker_instance_hours_from_the_cost_guard_samples(
    synth: Synth,
) -> None:
    widgets = dashboard_widgets(synth)
    for title in ("Worker instance hours (per hour)", "Worker instance hours (dashboard range)"):
        rows = metric_rows(widgets[title])
        (hours,) = [o for _, name, _, o in rows if o.get("label") == "worker instance hours"]
        # The cost guard samples the running count every COST_GUARD_SCHEDULE_MINUTES.
        assert hours["expression"] == (
            f"FILL(running, 0) * {names.COST_GUARD_SCHEDULE_MINUTES} / 60"
        ), title
        (running,) = [r for r in rows if r[3].get("id") == "running"]
        assert running[:3] == ("Darkroom", "WorkerInstancesRunning", {"service": "darkroom"})
        assert running[3]["stat"] == "Sum" and running[3]["visible"] is False
    assert widgets["Worker instance hours (dashboard range)"]["setPeriodToTimeRange"] is True


@pytest.mark.parametrize(
    ("alarm", "queue_path"),
    [
        ("ThumbnailQueued", "thumbnails.failures"),
        ("SubmissionQueued", "pipeline.submission_failures"),
        ("EndingQueued", "pipeline.ending_failures"),
        ("NotifyQueued", "notify_failures"),
    ],
)
def test_an_event_parked_on_an_on_failure_queue_raises_its_alarm(
    synth: Synth, alarm: str, queue_path: str
) -> None:
    props = synth.resource(synth.stack.monitoring.alarms[alarm])["Properties"]
    assert (props["Namespace"], props["MetricName"]) == (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
    )
    queue = synth.logical_id(on_stack(synth, queue_path))
    assert props["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}
    ]
    assert props["Threshold"] == 1
    assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_a_failed_or_timed_out_execution_raises_the_failed_executions_alarm(
    synth: Synth,
) -> None:
    props = synth.resource(synth.stack.monitoring.alarms["FailedExecutions"])["Properties"]
    machine = {"Ref": synth.logical_id(synth.stack.pipeline.state_machine)}
    (expression,) = [m for m in props["Metrics"] if "Expression" in m]
    assert expression["ReturnData"] is True
    counted: dict[str, str] = {}
    for metric in props["Metrics"]:
        if "MetricStat" not in metric:
            continue
        stat = metric["MetricStat"]
        assert stat["Metric"]["Namespace"] == "AWS/States"
        assert stat["Metric"]["Dimensions"] == [{"Name": "StateMachineArn", "Value": machine}]
        assert stat["Stat"] == "Sum"
        assert re.search(rf"\b{metric['Id']}\b", expression["Expression"]), metric["Id"]
        counted[stat["Metric"]["MetricName"]] = metric["Id"]
    assert set(counted) == {"ExecutionsFailed", "ExecutionsTimedOut"}
    assert props["Threshold"] == 1
    assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


# -- options a deployer changes (the second synth) ------------------------------------
def test_a_configured_instance_type_boots_the_image_of_its_architecture(
    configured_synth: Synth,
) -> None:
    instances = configured_synth.resources("AWS::EC2::Instance").values()
    parameters = configured_synth.template["Parameters"]
    for instance in instances:
        props = instance["Properties"]
        assert props["InstanceType"] == CONFIGURED_CONTEXT["worker_instance_types"].split(",")[0]
        image = parameters[props["ImageId"]["Ref"]]
        assert image["Type"] == "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"
        assert re.fullmatch(
            r"/aws/service/ami-amazon-linux-latest/al2023-ami-.*-x86_64", image["Default"]
        )
    assert not any("arm64" in str(p.get("Default")) for p in parameters.values())


def test_the_configured_pool_size_is_the_number_of_workers(configured_synth: Synth) -> None:
    pool = configured_synth.stack.worker_pool.instances
    assert len(configured_synth.resources("AWS::EC2::Instance")) == CONFIGURED_CONTEXT["pool_size"]
    assert len(pool) == CONFIGURED_CONTEXT["pool_size"]
    _, start = configured_synth.functions()[Function.START_WORKER]
    ids = start["Properties"]["Environment"]["Variables"][env_key("worker_instance_ids")]
    assert ids == {"Fn::Join": [",", [{"Ref": configured_synth.logical_id(i)} for i in pool]]}


def test_the_raw_bucket_alone_is_versioned(synth: Synth) -> None:
    for name, (_, bucket) in buckets(synth).items():
        versioning = bucket["Properties"].get("VersioningConfiguration")
        if name == names.RAW_BUCKET:
            assert versioning == {"Status": "Enabled"}
        else:
            assert versioning is None, name


def test_the_configured_lifecycle_reaches_the_buckets(configured_synth: Synth) -> None:
    found = buckets(configured_synth)
    raw_rules = lifecycle(found[names.RAW_BUCKET][1])
    raw = raw_rules["age-raw"]
    # raw_infrequent_access_days 0: no IA move, straight to the archive class.
    assert raw["Transitions"] == [
        {
            "StorageClass": "GLACIER_IR",
            "TransitionInDays": CONFIGURED_CONTEXT["raw_archive_after_days"],
        }
    ]
    assert raw["ExpirationInDays"] == CONFIGURED_CONTEXT["raw_expire_after_days"]
    assert raw["NoncurrentVersionExpiration"] == {
        "NoncurrentDays": CONFIGURED_CONTEXT["raw_noncurrent_expire_after_days"]
    }
    markers = raw_rules["remove-expired-delete-markers"]
    assert (markers["Prefix"], markers["ExpiredObjectDeleteMarker"]) == (names.RAW_PREFIX, True)
    processed = lifecycle(found[names.PROCESSED_BUCKET][1])["age-processed"]
    assert processed["Transitions"] == [
        {
            "StorageClass": "STANDARD_IA",
            "TransitionInDays": CONFIGURED_CONTEXT["processed_infrequent_access_days"],
        }
    ]
    assert processed["ExpirationInDays"] == CONFIGURED_CONTEXT["processed_expire_days"]


def test_the_configured_idle_limit_reaches_the_cost_guard(configured_synth: Synth) -> None:
    _, guard = configured_synth.functions()[Function.COST_GUARD]
    variables = guard["Properties"]["Environment"]["Variables"]
    minutes = CONFIGURED_CONTEXT["cost_guard_max_idle_minutes"]
    assert variables[env_key("cost_guard_max_idle_seconds")] == str(minutes * 60)


# Every name the template fixes, by resource type and property: what would collide.
NAMED = {
    "AWS::Lambda::Function": "FunctionName",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::CloudWatch::Dashboard": "DashboardName",
    "AWS::ApiGatewayV2::Api": "Name",
}


def fixed_names(synth: Synth) -> dict[str, set[str]]:
    """Resource type -> the names the template gives, references shown as <...>; not
    those built on another resource's generated name (CDK's bucket-notifications
    handler's log group), unique already."""
    found: dict[str, set[str]] = {}
    for resource in synth.template["Resources"].values():
        prop = NAMED.get(resource["Type"])
        if prop and prop in resource["Properties"]:
            name = render(resource["Properties"][prop])
            if re.search(r'<\{"Ref": "(?!AWS::)', name) is None:
                found.setdefault(resource["Type"], set()).add(name)
    return found


def test_a_second_stack_names_everything_after_itself(
    synth: Synth, configured_synth: Synth
) -> None:
    """Two stacks in one region share no name; the dashboard, global to the account,
    carries the region too, so two regions' stacks do not collide either."""
    first, second = fixed_names(synth), fixed_names(configured_synth)
    assert set(first) == set(second) == set(NAMED)
    stack = CONFIGURED_CONTEXT["stack_name"]
    for kind, given in second.items():
        assert not given & first[kind], kind
        for name in given:
            assert stack in name, (kind, name)
    region = '<{"Ref": "AWS::Region"}>'
    assert first["AWS::CloudWatch::Dashboard"] == {f"darkroom-{region}"}
    (topic,) = configured_synth.resources("AWS::SNS::Topic").values()
    assert topic["Properties"]["DisplayName"] == f"{stack} alarms", "the alarm mails' sender"
    assert second["AWS::CloudWatch::Dashboard"] == {f"{stack}-{region}"}
    assert set(functions_by_name(configured_synth.template, stack)) == set(names.HANDLERS)
    assert names.worker_log_group(stack) in second["AWS::Logs::LogGroup"]
    for instance in configured_synth.resources("AWS::EC2::Instance").values():
        tags = {t["Key"]: t["Value"] for t in instance["Properties"]["Tags"]}
        assert tags["Name"].startswith(f"{stack}-worker-")


def _start_worker_statements(synth: Synth) -> list[dict[str, Any]]:
    _, start = synth.functions()[Function.START_WORKER]
    return statements_of_role(synth.template, role_logical_id(start))


@pytest.mark.parametrize("which", ["synth", "configured_synth"])
def test_start_worker_may_move_a_pool_instance_only_to_a_preferred_type(
    which: str, request: pytest.FixtureRequest
) -> None:
    synth: Synth = request.getfixturevalue(which)
    types = list(synth.stack.config.instance_types)
    _, start = synth.functions()[Function.START_WORKER]
    variables = start["Properties"]["Environment"]["Variables"]
    assert variables[env_key("worker_instance_types")] == ",".join(types)
    statements = _start_worker_statements(synth)
    modifies = [s for s in statements if "ec2:ModifyInstanceAttribute" in as_list(s["Action"])]
    # The declared instances by id, and those the pool scaler launched by their tags.
    (modify,) = [s for s in modifies if s["Sid"] == "FallbackInstanceType"]
    (launched,) = [s for s in modifies if s["Sid"] == "FallbackInstanceTypeLaunched"]
    assert launched["Condition"] == {
        "StringEquals": {
            f"aws:ResourceTag/{names.WORKER_POOL_TAG_KEY}": names.WORKER_POOL_TAG_VALUE,
            f"aws:ResourceTag/{names.WORKER_SCALED_TAG_KEY}": names.WORKER_SCALED_TAG_VALUE,
            "ec2:Attribute/InstanceType": types,
        }
    }
    assert modify["Action"] == "ec2:ModifyInstanceAttribute"
    # Only the type, only to one of the deploy's: any other change lacks the key.
    assert modify["Condition"] == {"StringEquals": {"ec2:Attribute/InstanceType": types}}
    pool = {render(r) for r in as_list(modify["Resource"])}
    assert len(pool) == len(synth.stack.worker_pool.instances)
    assert all(":instance/<" in arn for arn in pool)
    (describe,) = [s for s in statements if "ec2:DescribeInstances" in as_list(s["Action"])]
    assert describe["Resource"] == "*"
    # Nobody else changes an instance.
    for logical_id, statement in all_policy_statements(synth.template):
        if "ec2:ModifyInstanceAttribute" in as_list(statement.get("Action", [])):
            assert statement in (modify, launched), logical_id


def test_fallback_types_must_boot_the_same_image() -> None:
    from cdk.worker_pool import _one_architecture

    assert _one_architecture(("c7g.xlarge", "m7g.xlarge")).to_string() == "c7g.xlarge"
    with pytest.raises(ValueError, match=r"c7i\.xlarge not of c7g\.xlarge's architecture"):
        _one_architecture(("c7g.xlarge", "c7i.xlarge"))


def test_without_ebs_kms_key_volumes_use_the_default_key_and_nobody_touches_kms(
    synth: Synth,
) -> None:
    for instance in synth.resources("AWS::EC2::Instance").values():
        for device in instance["Properties"]["BlockDeviceMappings"]:
            assert device["Ebs"]["Encrypted"] is True and "KmsKeyId" not in device["Ebs"]
    for logical_id, statement in all_policy_statements(synth.template):
        actions = as_list(statement.get("Action", []))
        assert not [a for a in actions if a.startswith("kms:")], logical_id


def test_ebs_kms_key_encrypts_the_volumes_and_lets_start_worker_use_it_through_ec2(
    configured_synth: Synth,
) -> None:
    key = CONFIGURED_CONTEXT["ebs_kms_key"]
    for instance in configured_synth.resources("AWS::EC2::Instance").values():
        devices = instance["Properties"]["BlockDeviceMappings"]
        assert len(devices) == 2
        for device in devices:
            assert device["Ebs"]["Encrypted"] is True and device["Ebs"]["KmsKeyId"] == key
    via_ec2 = {"kms:ViaService": 'ec2.<{"Ref": "AWS::Region"}>.amazonaws.com'}
    kms = [
        s
        for s in _start_worker_statements(configured_synth)
        if any(a.startswith("kms:") for a in as_list(s["Action"]))
    ]
    by_sid = {s["Sid"]: s for s in kms}
    assert set(by_sid) == {"VolumeKeyGrant", "VolumeKeyUse"}
    for statement in kms:
        assert statement["Resource"] == key
        assert {k: render(v) for k, v in statement["Condition"]["StringEquals"].items()} == via_ec2
    grant = by_sid["VolumeKeyGrant"]
    assert grant["Action"] == "kms:CreateGrant"
    assert grant["Condition"]["Bool"] == {"kms:GrantIsForAWSResource": "true"}
    assert sorted(as_list(by_sid["VolumeKeyUse"]["Action"])) == [
        "kms:Decrypt",
        "kms:DescribeKey",
        "kms:GenerateDataKey",
        "kms:GenerateDataKeyWithoutPlaintext",
        "kms:ReEncryptFrom",
        "kms:ReEncryptTo",
    ]
    # StartWorker starts instances and the pool scaler launches them; no other role
    # gets the key.
    functions = configured_synth.functions()
    starters = [
        {"Ref": role_logical_id(functions[name][1])}
        for name in (Function.START_WORKER, Function.POOL_SCALER)
    ]
    for logical_id, statement in all_policy_statements(configured_synth.template):
        if any(a.startswith("kms:") for a in as_list(statement.get("Action", []))):
            assert statement in kms, logical_id
            policy = configured_synth.template["Resources"][logical_id]
            assert any(role in policy["Properties"]["Roles"] for role in starters), logical_id


def test_reserved_thumbnail_concurrency_is_an_option(configured_synth: Synth) -> None:
    _, thumbnail = configured_synth.functions()[Function.THUMBNAIL]
    reserved = CONFIGURED_CONTEXT["thumbnail_reserved_concurrency"]
    assert thumbnail["Properties"]["ReservedConcurrentExecutions"] == reserved


def test_every_function_deploys_with_the_memory_the_local_cloud_enforces(synth: Synth) -> None:
    deployed = {
        name: resource["Properties"]["MemorySize"]
        for name, (_, resource) in functions_by_name(synth.template).items()
    }
    assert deployed == names.FUNCTION_MEMORY_MB


def test_ses_bounces_complaints_and_rejects_reach_the_notify_function(synth: Synth) -> None:
    delivery = synth.stack.delivery
    destinations = synth.resources("AWS::SES::ConfigurationSetEventDestination")
    [destination] = destinations.values()
    props = destination["Properties"]
    assert props["ConfigurationSetName"] == {"Ref": synth.logical_id(delivery.configuration_set)}
    dest = props["EventDestination"]
    assert dest["Enabled"] is True
    # CloudFormation spells the types in lower case (the SES API in upper).
    assert sorted(dest["MatchingEventTypes"]) == ["bounce", "complaint", "reject"]
    bus = json.dumps(dest["EventBridgeDestination"]["EventBusArn"])
    assert "event-bus/default" in bus, bus

    rule = synth.resource(delivery.feedback_rule)["Properties"]
    assert rule["EventPattern"] == {
        "source": [names.SES_EVENT_SOURCE],
        "detail-type": list(names.SES_FEEDBACK_DETAIL_TYPES),
    }
    [target] = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [synth.logical_id(delivery.notify.function), "Arn"]}
    # Parked on the same queue as the job events when the function never takes them.
    assert target["DeadLetterConfig"]["Arn"] == {
        "Fn::GetAtt": [synth.logical_id(synth.stack.notify_failures), "Arn"]
    }


def test_the_readmes_idle_costs_count_the_alarms_the_stack_declares(synth: Synth) -> None:
    from tests.infra.conftest import REPO

    alarms = synth.resources("AWS::CloudWatch::Alarm")
    # An alarm on one metric bills one alarm metric; one on an expression, each it reads.
    metrics = sum(
        len([m for m in a["Properties"]["Metrics"] if "MetricStat" in m])
        if "Metrics" in a["Properties"]
        else 1
        for a in alarms.values()
    )
    readme = (REPO / "README.md").read_text()
    times = "\N{MULTIPLICATION SIGN}"
    row = f"| alarms | {metrics} alarm metrics ({len(alarms)} alarms; "
    assert row in readme, (metrics, len(alarms))
    assert f"{times} $0.10 | ${metrics * 0.1:.2f} |" in readme
