"""Every AWS call the functions and the worker make on the local cloud is allowed by the
role the synthesized template gives them; the calls AWS services make for us are allowed
by the template's permissions.

One small local cloud run records each call (darkroom.local.call_recorder): a RAW job
through the API end to end, a reprocess, a share opened and revoked, a job that fails
at registration, a thumbnail created and removed, each scheduled function, every other
API route once, and the worker's idle self-stop. Principals and roles come from the template
(functions by name, the pool instances' profile), so a new function or call is checked
without a line here; aws_calls.py holds the operation -> IAM action map.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from darkroom import keys, names
from darkroom.api.routes import ROUTES
from darkroom.cli.studio_client import ApiTarget, StudioClient
from darkroom.local import call_recorder
from darkroom.local.cloud import ACCOUNT_ID, LocalCloud, LocalCloudConfig, state_machine_arn
from tests.infra.aws_calls import Account, requests_for
from tests.infra.conftest import Synth
from tests.infra.helpers import as_list, functions_by_name, getatt_target, role_logical_id
from tests.infra.iam_policy import Request, Resolver, decide, statement_matches

pytestmark = pytest.mark.integration

TERMINAL = {"DONE", "DONE_WITH_ERRORS", "FAILED"}
# Log and trace statements every function has; a role with nothing else makes no call.
_BOOKKEEPING = ("logs:", "xray:")


@pytest.fixture(scope="module")
def recorded(
    synth: Synth, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LocalCloud, list[dict[str, Any]]]]:
    config = LocalCloudConfig(
        port=0,
        state_dir=tmp_path_factory.mktemp("iam-cloud"),
        pool_size=1,
        worker_heartbeat_interval_seconds=1.0,
        worker_poll_seconds=0.2,
        worker_idle_shutdown_seconds=2,
        record_calls=True,
    )
    with LocalCloud(config) as cloud:
        exercise(cloud, tmp_path_factory.mktemp("iam-shoot"), scheduled_functions(synth.template))
        yield cloud, call_recorder.read(cloud.calls_path)


def exercise(cloud: LocalCloud, workdir: Path, scheduled: list[str]) -> None:
    from PIL import Image

    from darkroom.imaging.fixtures import make_demo_shoot

    make_demo_shoot(workdir / "shoot", count=2, width=240, height=160)
    studio = StudioClient.at(ApiTarget(cloud.api_url))
    job_id = studio.upload(sorted((workdir / "shoot").iterdir()), name="iam")
    # A thumbnail, made while the RAW job runs (nothing they share).
    s3 = cloud.client("s3")
    image = workdir / "thumb.png"
    Image.new("RGB", (64, 48), (200, 120, 40)).save(image)
    s3.upload_file(str(image), names.INPUT_BUCKET, "iam/thumb.png")
    first = studio.wait(job_id, timeout=120, poll=0.2)
    assert first["status"] == "DONE", first
    wait_for(lambda: thumbnail_count(s3) > 0)
    studio.jobs()
    execution = studio.reprocess(job_id)
    wait_for(
        lambda: (
            (job := studio.job(job_id))["status"] in TERMINAL
            and job.get("execution_arn") == execution
        ),
        timeout=120,
    )
    share = studio.share(job_id)
    studio.shared(share["url"])
    requests.get(share["url"], headers={"Accept": "text/html"}, timeout=30)
    studio.revoke(job_id, share["share_id"])

    # A submission naming a file never uploaded fails at registration: MarkFailed runs.
    failing = keys.new_job_id()
    manifest = {"job_id": failing, "name": "missing", "files": [{"name": "gone.dng", "size": 1}]}
    s3.put_object(
        Bucket=names.RAW_BUCKET, Key=keys.raw_manifest_key(failing), Body=json.dumps(manifest)
    )
    sfn = cloud.client("stepfunctions")
    failed_run = f"{state_machine_arn(cloud.config.region)}:{failing}".replace(
        ":stateMachine:", ":execution:"
    )
    wait_for(lambda: execution_status(sfn, failed_run) not in (None, "RUNNING"))

    s3.delete_object(Bucket=names.INPUT_BUCKET, Key="iam/thumb.png")
    wait_for(lambda: thumbnail_count(s3) == 0)

    # What EventBridge schedules in AWS runs here once, as a scheduled event would.
    event = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
    for function in scheduled:
        cloud.client("lambda").invoke(FunctionName=function, Payload=json.dumps(event).encode())
    live = studio.share(job_id)
    sweep_routes(
        cloud.api_url, {"job_id": job_id, "share_id": live["share_id"], "token": live["token"]}
    )
    # Started with no lease (as an operator might), the worker stops its own instance.
    instances = cloud.instances
    assert instances is not None
    (instance,) = cloud.instance_ids
    wait_for(lambda: instances.pid(instance) is None)
    boots = instances.boots.get(instance, 0)
    cloud.client("ec2").start_instances(InstanceIds=[instance])
    wait_for(lambda: instances.boots.get(instance, 0) > boots)
    wait_for(lambda: instances.pid(instance) is None)


def scheduled_functions(template: dict[str, Any]) -> list[str]:
    """Names of the functions EventBridge schedules."""
    found = []
    for rule in template["Resources"].values():
        if rule["Type"] != "AWS::Events::Rule" or "ScheduleExpression" not in rule["Properties"]:
            continue
        for target in rule["Properties"]["Targets"]:
            target_id = getatt_target(target["Arn"])
            resource = template["Resources"].get(target_id or "", {})
            if resource.get("Type") == "AWS::Lambda::Function":
                found.append(resource["Properties"]["FunctionName"])
    assert found, "the cost guard, at least, runs on a schedule"
    return found


def execution_status(sfn: Any, arn: str) -> str | None:
    try:
        return str(sfn.describe_execution(executionArn=arn)["status"])
    except sfn.exceptions.ExecutionDoesNotExist:
        return None


def thumbnail_count(s3: Any) -> int:
    listed = s3.list_objects_v2(Bucket=names.OUTPUT_BUCKET, Prefix="thumbnails/iam/")
    return int(listed.get("KeyCount", 0))


# The routes the run above calls on purpose; sweep_routes calls every other one.
EXERCISED = {
    "create_job",
    "submit_job",
    "get_job",
    "list_jobs",
    "reprocess_job",
    "create_share",
    "open_share",
    "revoke_share",
}


def sweep_routes(api_url: str, path_params: dict[str, str]) -> None:
    """Every route the run does not call on purpose, once, with the finished job and a
    live share, whatever it answers: a route added later is recorded too. Deletions
    last: they may erase the job."""
    assert {r.operation for r in ROUTES} >= EXERCISED, "a route the run calls was renamed"
    order = {"GET": 0, "DELETE": 2}
    routes = [r for r in ROUTES if r.operation not in EXERCISED]
    for route in sorted(routes, key=lambda r: order.get(r.method, 1)):
        path = route.path
        for name, value in path_params.items():
            path = path.replace("{" + name + "}", value)
        requests.request(route.method, f"{api_url.rstrip('/')}{path}", json={}, timeout=30)


def wait_for(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


# -- the template side ------------------------------------------------------------


def resolver_for(synth: Synth, cloud: LocalCloud) -> Resolver:
    """Physical names: the local cloud's, matched to the template by stack output and,
    for the pool, by position."""
    template = synth.template
    resolver = Resolver(template, cloud.config.region, ACCOUNT_ID)
    for key, value in cloud.endpoints().items():
        output = template["Outputs"].get(key, {}).get("Value")
        if isinstance(output, dict) and "Ref" in output and isinstance(value, str):
            kind = template["Resources"][output["Ref"]]["Type"]
            if kind in ("AWS::S3::Bucket", "AWS::DynamoDB::Table"):
                resolver.physical[output["Ref"]] = value
    for logical_id, instance_id in zip(pool_instances(template), cloud.instance_ids, strict=False):
        resolver.physical[logical_id] = instance_id
    return resolver


def pool_instances(template: dict[str, Any]) -> list[str]:
    return sorted(
        logical_id
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::EC2::Instance"
        and {"Key": names.WORKER_POOL_TAG_KEY, "Value": names.WORKER_POOL_TAG_VALUE}
        in resource["Properties"].get("Tags", [])
    )


def roles_by_principal(template: dict[str, Any]) -> dict[str, str]:
    roles = {name: role_logical_id(fn) for name, (_, fn) in functions_by_name(template).items()}
    worker_roles = set()
    for logical_id in pool_instances(template):
        profile = template["Resources"][logical_id]["Properties"]["IamInstanceProfile"]["Ref"]
        for role in template["Resources"][profile]["Properties"]["Roles"]:
            worker_roles.add(role["Ref"])
    assert len(worker_roles) == 1, worker_roles
    roles[call_recorder.WORKER_PRINCIPAL] = worker_roles.pop()
    return roles


def account_of(resolver: Resolver) -> Account:
    resources = resolver.resources
    (machine,) = [
        k for k, r in resources.items() if r["Type"] == "AWS::StepFunctions::StateMachine"
    ]
    tags = {
        resolver.name(logical_id): {
            t["Key"]: str(resolver.resolve(t["Value"]))
            for t in resources[logical_id]["Properties"].get("Tags", [])
        }
        for logical_id in pool_instances(dict(resolver.template))
    }
    return Account(resolver.region, resolver.account, resolver.ref(machine), tags)


# -- the tests ----------------------------------------------------------------------


def test_every_recorded_call_is_allowed_by_its_role(
    synth: Synth, recorded: tuple[LocalCloud, list[dict[str, Any]]]
) -> None:
    cloud, calls = recorded
    assert calls, "nothing was recorded"
    resolver = resolver_for(synth, cloud)
    where = account_of(resolver)
    roles = roles_by_principal(synth.template)
    statements = {role: resolver.statements_of_role(role) for role in set(roles.values())}

    denied: dict[str, dict[str, Any]] = {}
    for call in calls:
        principal = call["principal"]
        assert principal in roles, f"{principal} made AWS calls but has no role in the template"
        role = roles[principal]
        for request in requests_for(call, where):
            verdict = decide(statements[role], request)
            if verdict != "Allow":
                line = (
                    f"{principal} (role {role}): {request.action} on {request.resource}"
                    f"{' ' + json.dumps(dict(request.context)) if request.context else ''}"
                    f"{' [presigned]' if call['presign'] else ''} -> {verdict}"
                )
                denied.setdefault(line, call)
    assert not denied, "calls their role does not allow:\n" + "\n".join(sorted(denied))


def test_the_run_exercised_every_function_that_has_permissions(
    synth: Synth, recorded: tuple[LocalCloud, list[dict[str, Any]]]
) -> None:
    """Without this the test above would pass by not calling a function at all."""
    cloud, calls = recorded
    resolver = resolver_for(synth, cloud)
    roles = roles_by_principal(synth.template)
    local = set(names.HANDLERS) | {call_recorder.WORKER_PRINCIPAL}
    expected = {
        principal
        for principal, role in roles.items()
        if principal in local
        and any(
            s["Effect"] == "Allow"
            and not all(str(a).startswith(_BOOKKEEPING) for a in as_list(s.get("Action", [])))
            for s in resolver.statements_of_role(role)
        )
    }
    seen = {call["principal"] for call in calls}
    assert expected <= seen, f"never called AWS in the run: {sorted(expected - seen)}"


def invoke_permission_allows(
    resolver: Resolver, function_id: str, principal: str, source_arn: str
) -> bool:
    """A resource policy statement of the function lets the service principal invoke it
    on behalf of source_arn."""
    function_arn = resolver.arn(function_id)
    for resource in resolver.resources.values():
        if resource["Type"] != "AWS::Lambda::Permission":
            continue
        props = resolver.resolve(resource["Properties"])
        if props["Principal"] != principal or props["FunctionName"] not in (
            function_arn,
            resolver.name(function_id),
        ):
            continue
        statement = {"Effect": "Allow", "Action": props["Action"], "Resource": function_arn}
        if "SourceArn" in props:
            statement["Condition"] = {"ArnLike": {"aws:SourceArn": props["SourceArn"]}}
        request = Request("lambda:InvokeFunction", function_arn, {"aws:SourceArn": source_arn})
        if statement_matches(statement, request):
            return True
    return False


def test_step_functions_may_invoke_every_task_function(synth: Synth) -> None:
    resolver = Resolver(synth.template, "us-east-1", ACCOUNT_ID)
    machines = synth.resources("AWS::StepFunctions::StateMachine")
    assert machines
    for props in machines.values():
        role = getatt_target(props["Properties"]["RoleArn"])
        assert role is not None
        statements = resolver.statements_of_role(role)
        substitutions = props["Properties"].get("DefinitionSubstitutions", {})
        functions = [getatt_target(v) for v in substitutions.values()]
        assert functions and all(functions)
        for function_id in functions:
            assert function_id is not None
            request = Request("lambda:InvokeFunction", resolver.arn(function_id))
            assert decide(statements, request) == "Allow", (role, function_id)


def test_s3_notifications_may_invoke_their_functions(synth: Synth) -> None:
    resolver = Resolver(synth.template, "us-east-1", ACCOUNT_ID)
    wired = synth.resources("Custom::S3BucketNotifications")
    assert wired
    for notification in wired.values():
        bucket = notification["Properties"]["BucketName"]["Ref"]
        configs = notification["Properties"]["NotificationConfiguration"]
        for config in configs.get("LambdaFunctionConfigurations", []):
            function_id = getatt_target(config["LambdaFunctionArn"])
            assert function_id is not None
            assert invoke_permission_allows(
                resolver, function_id, "s3.amazonaws.com", resolver.arn(bucket)
            ), (bucket, function_id)


def test_eventbridge_rules_may_invoke_their_targets(synth: Synth) -> None:
    resolver = Resolver(synth.template, "us-east-1", ACCOUNT_ID)
    rules = synth.resources("AWS::Events::Rule")
    assert rules
    for rule_id, rule in rules.items():
        for target in rule["Properties"]["Targets"]:
            target_id = getatt_target(target["Arn"]) or target["Arn"].get("Ref")
            kind = synth.template["Resources"][target_id]["Type"]
            if kind == "AWS::Lambda::Function":
                assert invoke_permission_allows(
                    resolver, target_id, "events.amazonaws.com", resolver.arn(rule_id)
                ), (rule_id, target_id)
            else:  # any other target is reached with the role the target names
                role = getatt_target(target["RoleArn"])
                assert role is not None, (rule_id, target_id)
                action = {"AWS::StepFunctions::StateMachine": "states:StartExecution"}[kind]
                request = Request(action, str(resolver.ref(target_id)))
                assert decide(resolver.statements_of_role(role), request) == "Allow"


def test_api_gateway_may_invoke_each_route_integration(synth: Synth) -> None:
    resolver = Resolver(synth.template, "us-east-1", ACCOUNT_ID)
    integrations = synth.resources("AWS::ApiGatewayV2::Integration")
    routes = synth.resources("AWS::ApiGatewayV2::Route")
    assert routes
    for route in routes.values():
        props = route["Properties"]
        target = resolver.resolve(props["Target"])
        integration = next(
            i for lid, i in integrations.items() if target == f"integrations/{resolver.name(lid)}"
        )
        function_id = getatt_target(integration["Properties"]["IntegrationUri"])
        assert function_id is not None
        method, path = props["RouteKey"].split(" ", 1)
        api = resolver.ref(props["ApiId"]["Ref"])
        source = f"arn:aws:execute-api:us-east-1:{ACCOUNT_ID}:{api}/$default/{method}{path}"
        assert invoke_permission_allows(
            resolver, function_id, "apigateway.amazonaws.com", source
        ), props["RouteKey"]


def test_async_failure_destinations_are_writable_by_their_functions(synth: Synth) -> None:
    """Lambda sends a failed event to its destination with the function's own role."""
    resolver = Resolver(synth.template, "us-east-1", ACCOUNT_ID)
    functions = synth.resources("AWS::Lambda::Function")
    for config in synth.resources("AWS::Lambda::EventInvokeConfig").values():
        props = config["Properties"]
        destination = props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        if destination is None:
            continue
        function_id = props["FunctionName"]["Ref"]
        role = role_logical_id(functions[function_id])
        arn = str(resolver.resolve(destination))
        action = "sqs:SendMessage" if ":sqs:" in arn else "sns:Publish"
        assert decide(resolver.statements_of_role(role), Request(action, arn)) == "Allow"


def test_a_worker_may_stop_its_own_instance_and_no_other(synth: Synth) -> None:
    resolver = Resolver(synth.template, "us-east-1", ACCOUNT_ID)
    pool = pool_instances(synth.template)
    assert len(pool) >= 2
    for index, logical_id in enumerate(pool):
        resolver.physical[logical_id] = f"i-{index:017x}"
    statements = resolver.statements_of_role(roles_by_principal(synth.template)["worker"])
    own, other = (resolver.arn(logical_id) for logical_id in pool[:2])

    def may_stop(target: str, caller: str | None) -> bool:
        context = {"ec2:SourceInstanceARN": caller} if caller else {}
        return decide(statements, Request("ec2:StopInstances", target, context)) == "Allow"

    assert may_stop(own, caller=own)
    assert may_stop(other, caller=other)
    assert not may_stop(other, caller=own)
    assert not may_stop(own, caller=None), "the role's credentials used off the instance"
