"""The committed RAW pipeline ASL: fresh, SDK-free at runtime, and shaped as the Lambdas expect."""

from __future__ import annotations

import json
import re
from itertools import pairwise
from typing import Any

import pytest

from darkroom import names
from darkroom.task_events import TASK_EVENTS
from darkroom.workflow import ASL_PATH, load_template, placeholders, render_definition
from tests.checks import assert_generated, run_fresh_python

REGENERATE = "python -m workflows.raw_pipeline"
LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
CALLBACK = f"{LAMBDA_INVOKE}.waitForTaskToken"
MAIN_PATH = ("RegisterJob", "StartWorker", "WaitForWorker", "StopWorker", "MarkDone")
TRANSIENT_RETRY = {
    "ErrorEquals": [
        "Lambda.Unknown",
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
        "Runtime.ExitError",
        "Sandbox.Timedout",
        "TransientError",
    ],
    "IntervalSeconds": 1,
    "MaxAttempts": 5,
    "BackoffRate": 2,
    "MaxDelaySeconds": 15,
    "JitterStrategy": "FULL",
}


def fake_arns() -> dict[str, str]:
    return {
        placeholder: f"arn:aws:lambda:us-east-1:123456789012:function:{function}"
        for placeholder, function in names.ASL_FUNCTION_PLACEHOLDERS.items()
    }


@pytest.fixture(scope="module")
def asl() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(load_template())
    return document


@pytest.fixture(scope="module")
def states(asl: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = asl["States"]
    return result


def payload(state: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = state["Parameters"]["Payload"]
    return result


# -- the committed file -------------------------------------------------------------------
def test_committed_asl_is_what_the_generator_renders() -> None:
    pytest.importorskip(
        "stepfunctions",
        reason="the stepfunctions SDK (extra 'workflows') is not installed, so the "
        "generator cannot run; install darkroom[dev] to check the committed ASL",
    )
    from workflows.raw_pipeline import render

    assert_generated(ASL_PATH, render(), f"{REGENERATE}` (or `make workflow")


def test_rendering_is_deterministic() -> None:
    pytest.importorskip("stepfunctions", reason="the stepfunctions SDK is not installed")
    from workflows.raw_pipeline import render

    assert render() == render()


# What runs: every Lambda handler, the EC2 worker, the local cloud (with its Lambda
# bootstrap) and the CLI. The SDK that authors the ASL drags in sagemaker v2.
RUNTIME_MODULES = (
    *sorted({handler.rsplit(".", 1)[0] for handler in names.HANDLERS.values()}),
    "worker.main",
    "worker.job",
    "darkroom.local.cloud",
    "darkroom.local.lambda_bootstrap",
    "darkroom.cli.main",
)


def test_nothing_that_runs_imports_the_stepfunctions_sdk() -> None:
    assert "tasks.register_job" in RUNTIME_MODULES and "tasks.api" in RUNTIME_MODULES
    code = (
        "import importlib, json, sys\n"
        f"for module in {list(RUNTIME_MODULES)!r}:\n"
        "    importlib.import_module(module)\n"
        "import darkroom.workflow as w\n"
        "json.loads(w.render_definition({p: 'x' for p in w.placeholders(w.load_template())}))\n"
        "leaked = sorted(m for m in ('stepfunctions', 'sagemaker') if m in sys.modules)\n"
        "assert not leaked, leaked\n"
    )
    run_fresh_python(code)


# -- placeholders and substitution ---------------------------------------------------------
def test_the_placeholders_are_exactly_the_function_arns_names_declares() -> None:
    assert placeholders(load_template()) == set(names.ASL_FUNCTION_PLACEHOLDERS)


def test_every_task_invokes_lambda_through_a_function_arn_placeholder(
    states: dict[str, dict[str, Any]],
) -> None:
    tasks = {name: s for name, s in states.items() if s["Type"] == "Task"}
    assert set(tasks) == {*MAIN_PATH, "ReleaseWorker", "MarkFailed"}
    for name, state in tasks.items():
        expected = CALLBACK if name == "WaitForWorker" else LAMBDA_INVOKE
        assert state["Resource"] == expected, name
        assert re.fullmatch(r"\$\{\w+FunctionArn\}", state["Parameters"]["FunctionName"]), name
        assert payload(state)["execution_arn.$"] == "$$.Execution.Id", name


def test_render_definition_fills_every_placeholder() -> None:
    arns = fake_arns()
    definition = render_definition(arns)
    assert "${" not in definition
    functions = {
        s["Parameters"]["FunctionName"]
        for s in json.loads(definition)["States"].values()
        if s["Type"] == "Task"
    }
    assert functions == set(arns.values())


def test_render_definition_names_a_missing_placeholder() -> None:
    arns = fake_arns()
    del arns["MarkDoneFunctionArn"]
    with pytest.raises(KeyError, match="MarkDoneFunctionArn"):
        render_definition(arns)


def test_render_definition_names_an_unused_substitution() -> None:
    with pytest.raises(KeyError, match="ThumbnailFunctionArn"):
        render_definition({**fake_arns(), "ThumbnailFunctionArn": "arn"})


def test_render_definition_keeps_the_json_valid_whatever_the_value() -> None:
    template = '{"a": "${One}", "b": "x-${One}-${Two}"}'
    rendered = render_definition({"One": 'quote " and \\', "Two": "2"}, template=template)
    assert json.loads(rendered) == {"a": 'quote " and \\', "b": 'x-quote " and \\-2'}


# -- payloads: each Task hands its function the event that function parses --------------
# A value of the shape each path holds in a running execution.
PATH_SAMPLES: dict[str, Any] = {
    "$": {"job_id": "job-1"},
    "$$.Execution.Input": {"job_id": "job-1"},
    "$$.Execution.Id": "arn:aws:states:us-east-1:123456789012:execution:m:job-1",
    "$$.Task.Token": "token",
    "$.job.job_id": "job-1",
    "$.worker.instance_id": "i-1",
    "$.result": {"manifest_key": "processed/job-1/manifest.json"},
    "$.error": {"Error": "States.TaskFailed", "Cause": "boom"},
}


def test_every_task_payload_is_the_event_model_of_the_function_it_invokes(
    states: dict[str, dict[str, Any]],
) -> None:
    invoked = set()
    for name, state in states.items():
        if state["Type"] != "Task":
            continue
        placeholder = state["Parameters"]["FunctionName"].removeprefix("${").removesuffix("}")
        function = names.ASL_FUNCTION_PLACEHOLDERS[placeholder]
        invoked.add(function)
        model = TASK_EVENTS[function]
        sent = {key.removesuffix(".$") for key in payload(state)}
        declared = set(model.model_fields)
        required = {n for n, f in model.model_fields.items() if f.is_required()}
        assert sent <= declared, f"{name} sends {sorted(sent - declared)} {model.__name__} lacks"
        assert required <= sent, f"{name} omits {sorted(required - sent)}"
        event = {
            key.removesuffix(".$"): PATH_SAMPLES[value] if key.endswith(".$") else value
            for key, value in payload(state).items()
        }
        model.model_validate(event)
    assert invoked == set(TASK_EVENTS)


# -- structure ----------------------------------------------------------------------------
def test_the_happy_path_runs_in_order_and_every_transition_exists(
    asl: dict[str, Any], states: dict[str, dict[str, Any]]
) -> None:
    assert asl["StartAt"] == "RegisterJob"
    assert asl["Comment"]
    for current, following in pairwise(MAIN_PATH):
        assert states[current]["Next"] == following
    assert states["MarkDone"]["End"] is True
    targets = [s["Next"] for s in states.values() if "Next" in s] + [
        c["Next"] for s in states.values() for c in s.get("Catch", [])
    ]
    assert set(targets) <= set(states)
    assert set(states) == set(targets) | {"RegisterJob"}


def test_every_main_state_catches_everything_into_release_worker(
    states: dict[str, dict[str, Any]],
) -> None:
    for name in MAIN_PATH:
        assert states[name]["Catch"] == [
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "ReleaseWorker"}
        ], name


def test_the_data_flow_between_states(states: dict[str, dict[str, Any]]) -> None:
    register = states["RegisterJob"]
    assert payload(register)["input.$"] == "$"
    assert register["ResultPath"] == "$.job"
    assert set(register["ResultSelector"]) == {
        "job_id.$",
        "file_count.$",
        "heartbeat_seconds.$",
        "timeout_seconds.$",
    }
    assert payload(states["StartWorker"])["job_id.$"] == "$.job.job_id"
    assert states["StartWorker"]["ResultSelector"] == {"instance_id.$": "$.Payload.instance_id"}
    assert states["StartWorker"]["ResultPath"] == "$.worker"
    assert payload(states["StopWorker"])["instance_id.$"] == "$.worker.instance_id"
    assert states["StopWorker"]["ResultPath"] is None
    assert payload(states["MarkDone"])["result.$"] == "$.result"
    # The execution's output is MarkDone's return value, not the Invoke envelope.
    assert states["MarkDone"]["OutputPath"] == "$.Payload"
    assert "ResultPath" not in states["MarkDone"]


def test_start_worker_queues_on_no_idle_worker_before_anything_else(
    states: dict[str, dict[str, Any]],
) -> None:
    first, *others = states["StartWorker"]["Retry"]
    assert first == {
        "ErrorEquals": ["NoIdleWorker"],
        "IntervalSeconds": 2,
        "MaxAttempts": 2000,
        "BackoffRate": 1.5,
        "MaxDelaySeconds": 30,
    }
    assert others == [TRANSIENT_RETRY]


def test_every_task_retries_a_crash_or_throttle_of_its_own_lambda_with_jitter(
    states: dict[str, dict[str, Any]],
) -> None:
    tasks = [name for name, state in states.items() if state["Type"] == "Task"]
    assert len(tasks) == 7
    for name in tasks:
        assert states[name]["Retry"][-1] == TRANSIENT_RETRY, name
        assert states[name]["Retry"].count(TRANSIENT_RETRY) == 1, name


def test_no_error_the_worker_or_a_timeout_reports_is_retried(
    states: dict[str, dict[str, Any]],
) -> None:
    # A lost worker (heartbeat timeout) or one that failed must fail the job, not run it
    # again; only a failure to hand over the token is retried.
    retried = {e for r in states["WaitForWorker"]["Retry"] for e in r["ErrorEquals"]}
    worker_reports = {"AllFilesFailed", "WorkerFailed", "WorkerInterrupted"}
    assert not retried & worker_reports
    assert not {e for e in retried if e.startswith("States.")}


def test_wait_for_worker_waits_on_a_token_with_heartbeat_and_timeout_from_register_job(
    states: dict[str, dict[str, Any]],
) -> None:
    wait = states["WaitForWorker"]
    assert wait["Resource"] == CALLBACK
    assert wait["Parameters"]["FunctionName"] == "${AwaitWorkerFunctionArn}"
    assert payload(wait)["instance_id.$"] == "$.worker.instance_id"
    assert payload(wait)["task_token.$"] == "$$.Task.Token"
    assert wait["HeartbeatSecondsPath"] == "$.job.heartbeat_seconds"
    assert wait["TimeoutSecondsPath"] == "$.job.timeout_seconds"
    assert wait["ResultPath"] == "$.result"
    assert "ResultSelector" not in wait  # SendTaskSuccess output arrives bare


def test_the_failure_path_works_without_the_job_registered(
    states: dict[str, dict[str, Any]],
) -> None:
    release, mark_failed = states["ReleaseWorker"], states["MarkFailed"]
    assert release["Parameters"]["FunctionName"] == "${StopWorkerFunctionArn}"
    assert payload(release)["input.$"] == "$$.Execution.Input"
    assert release["ResultPath"] is None
    # Releasing is best effort, and must not overwrite the error MarkFailed records.
    assert release["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.release_error", "Next": "MarkFailed"}
    ]
    assert release["Next"] == "MarkFailed"

    assert payload(mark_failed)["input.$"] == "$$.Execution.Input"
    assert payload(mark_failed)["error.$"] == "$.error"
    no_job_paths = json.dumps([payload(release), payload(mark_failed)])
    assert "$.job" not in no_job_paths and "$.worker" not in no_job_paths


def test_job_failed_reads_the_same_shape_from_mark_failed_or_its_catch(
    states: dict[str, dict[str, Any]],
) -> None:
    mark_failed = states["MarkFailed"]
    assert mark_failed["ResultSelector"] == {
        "Error.$": "$.Payload.Error",
        "Cause.$": "$.Payload.Cause",
    }
    assert mark_failed["ResultPath"] == "$.failure"
    assert mark_failed["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "JobFailed"}
    ]
    assert mark_failed["Next"] == "JobFailed"
    assert states["JobFailed"] == {
        "Type": "Fail",
        "Comment": states["JobFailed"].get("Comment"),
        "ErrorPath": "$.failure.Error",
        "CausePath": "$.failure.Cause",
    }


# -- moto accepts it --------------------------------------------------------------------------
def test_moto_parses_and_statically_accepts_the_rendered_definition() -> None:
    parser = pytest.importorskip(
        "moto.stepfunctions.parser.asl.parse.asl_parser",
        reason="moto (extra 'local') is not installed",
    )
    from moto.stepfunctions.parser.asl.static_analyser.static_analyser import StaticAnalyser

    definition = render_definition(fake_arns())
    StaticAnalyser().analyse(definition)
    program, _ = parser.AmazonStateLanguageParser.parse(definition)
    assert program is not None
