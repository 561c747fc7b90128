"""Every AWS call the functions and the worker make on the local cloud is allowed by the
role the synthesized template gives them; the calls AWS services make for us are allowed
by the template's permissions.

One small local cloud run (tests/infra/iam_run.py, in a process of its own) records each
call (darkroom.local.call_recorder). Principals and roles come from the template
(functions by name, the pool instances' profile), so a new function or call is checked
without a line here; aws_calls.py holds the operation -> IAM action map.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cdk.config import ExtraOutput
from darkroom import names
from darkroom.local.call_recorder import WORKER_PRINCIPAL, read
from darkroom.local.cloud import ACCOUNT_ID
from tests.infra import iam_run
from tests.infra.aws_calls import Account, requests_for
from tests.infra.conftest import REPO, Synth
from tests.infra.helpers import as_list, functions_by_name, getatt_target, role_logical_id
from tests.infra.iam_policy import Request, Resolver, decide, statement_matches

pytestmark = pytest.mark.integration

# Log and trace statements every function has; a role with nothing else makes no call.
LOCAL_QUEUES = {ExtraOutput.SUBMISSION_FAILURE_QUEUE_URL: names.SUBMISSION_FAILURES_QUEUE}
_BOOKKEEPING = ("logs:", "xray:")


@dataclass(frozen=True)
class Run:
    region: str
    instance_ids: list[str]
    endpoints: dict[str, Any]
    calls: list[dict[str, Any]]
    share_cookie_secret_arn: str


@pytest.fixture(scope="module")
def recorded(synth: Synth, tmp_path_factory: pytest.TempPathFactory) -> Run:
    state_dir = tmp_path_factory.mktemp("iam-cloud")
    workdir = tmp_path_factory.mktemp("iam-shoot")
    command = [sys.executable, "-m", "tests.infra.iam_run", str(state_dir), str(workdir)]
    result = subprocess.run(
        [*command, *scheduled_functions(synth.template)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"the recorded run failed:\n{result.stderr[-4000:]}"
    run = json.loads((state_dir / iam_run.RUN_FILE).read_text())
    return Run(
        run["region"],
        run["instance_ids"],
        run["endpoints"],
        read(Path(run["calls"])),
        run["share_cookie_secret_arn"],
    )


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


# -- the template side ------------------------------------------------------------


def resolver_for(synth: Synth, run: Run) -> Resolver:
    """Physical names: the local cloud's, matched to the template by stack output and,
    for the pool, by position."""
    template = synth.template
    resolver = Resolver(template, run.region, ACCOUNT_ID)
    for key, value in run.endpoints.items():
        output = template["Outputs"].get(key, {}).get("Value")
        if isinstance(output, dict) and "Ref" in output and isinstance(value, str):
            kind = template["Resources"][output["Ref"]]["Type"]
            if kind in ("AWS::S3::Bucket", "AWS::DynamoDB::Table"):
                resolver.physical[output["Ref"]] = value
    # The local cloud's queues are named by constants, the stack's by CloudFormation: match
    # them through the stack output that names each queue.
    for key, queue in LOCAL_QUEUES.items():
        output = template["Outputs"][key]["Value"]
        resolver.physical[output["Ref"]] = queue
    for logical_id, instance_id in zip(pool_instances(template), run.instance_ids, strict=False):
        resolver.physical[logical_id] = instance_id
    # The share cookie key, the one secret the run reads (its Ref is its ARN).
    secret = synth.logical_id(synth.stack.api.share_cookie_key)
    resolver.physical[secret] = run.share_cookie_secret_arn
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
    roles[WORKER_PRINCIPAL] = worker_roles.pop()
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


def test_every_recorded_call_is_allowed_by_its_role(synth: Synth, recorded: Run) -> None:
    calls = recorded.calls
    assert calls, "nothing was recorded"
    resolver = resolver_for(synth, recorded)
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


def test_the_run_exercised_every_function_that_has_permissions(synth: Synth, recorded: Run) -> None:
    """Without this the test above would pass by not calling a function at all."""
    calls = recorded.calls
    resolver = resolver_for(synth, recorded)
    roles = roles_by_principal(synth.template)
    local = set(names.HANDLERS) | {WORKER_PRINCIPAL}
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


def test_the_run_exercised_the_studio_assets_both_ways(recorded: Run) -> None:
    """The asset's upload URL is presigned under the API's role, and the worker reads it."""
    touched = {
        (call["principal"], call["operation"], bool(call.get("presign")))
        for call in recorded.calls
        if str(call.get("params", {}).get("Key", "")).startswith(names.ASSETS_PREFIX)
    }
    assert (names.Function.API, "PutObject", True) in touched, touched
    assert (WORKER_PRINCIPAL, "GetObject", False) in touched, touched


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
    statements = resolver.statements_of_role(roles_by_principal(synth.template)[WORKER_PRINCIPAL])
    own, other = (resolver.arn(logical_id) for logical_id in pool[:2])

    def may_stop(target: str, caller: str | None) -> bool:
        context = {"ec2:SourceInstanceARN": caller} if caller else {}
        return decide(statements, Request("ec2:StopInstances", target, context)) == "Allow"

    assert may_stop(own, caller=own)
    assert may_stop(other, caller=other)
    assert not may_stop(other, caller=own)
    assert not may_stop(own, caller=None), "the role's credentials used off the instance"
