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
MAIN_PATH = (
    "RegisterJob",
    "DevelopShards",
    "WhoPackages",
    "StartPackager",
    "WaitForPackager",
    "StopPackager",
    "MarkDone",
)
# One shard's iteration of the Map: a first attempt, and a second on another instance.
SHARD_PATH = ("StartWorker", "WaitForWorker", "StopWorker")
RETRY_PATH = ("RetryStartWorker", "RetryWaitForWorker", "RetryStopWorker")
# The packager's second attempt, on another instance.
PACKAGER_RETRY_PATH = ("RetryStartPackager", "RetryWaitForPackager", "RetryStopPackager")
CALLBACK_STATES = {
    "WaitForWorker",
    "RetryWaitForWorker",
    "WaitForPackager",
    "RetryWaitForPackager",
}
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
    """Every state, the Map's iteration's too (state names are unique machine-wide)."""
    result: dict[str, dict[str, Any]] = dict(asl["States"])
    for state in asl["States"].values():
        if state["Type"] == "Map":
            result.update(state["ItemProcessor"]["States"])
    return result


@pytest.fixture(scope="module")
def shard(asl: dict[str, Any]) -> dict[str, Any]:
    processor: dict[str, Any] = asl["States"]["DevelopShards"]["ItemProcessor"]
    return processor


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
    assert set(tasks) == {
        *(set(MAIN_PATH) - {"DevelopShards", "WhoPackages"}),
        *SHARD_PATH,
        *RETRY_PATH,
        *PACKAGER_RETRY_PATH,
        "ReleaseShard",
        "ReleaseShardAgain",
        "FailShard",
        "ReleasePackager",
        "ReleaseLostPackager",
        "ReleaseWorker",
        "MarkFailed",
    }
    for name, state in tasks.items():
        expected = CALLBACK if name in CALLBACK_STATES else LAMBDA_INVOKE
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
    "$.job_id": "job-1",
    "$.shard": 1,
    "$.worker.instance_id": "i-1",
    "$.packager.instance_id": "i-2",
    "$.package": {"archives": {}},
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
def _targets(block: dict[str, dict[str, Any]]) -> list[str]:
    return [
        s.get("Next") or s["Default"] for s in block.values() if "Next" in s or "Default" in s
    ] + [c["Next"] for s in block.values() for c in s.get("Catch", []) + s.get("Choices", [])]


def test_the_happy_path_runs_in_order_and_every_transition_exists(
    asl: dict[str, Any], shard: dict[str, Any]
) -> None:
    top = asl["States"]
    assert asl["StartAt"] == "RegisterJob"
    assert asl["Comment"]
    for current, following in pairwise(MAIN_PATH):
        # A Choice's Default is the path a run of several shards takes.
        assert (top[current].get("Next") or top[current]["Default"]) == following
    assert top["MarkDone"]["End"] is True
    assert set(_targets(top)) <= set(top)
    assert set(top) == set(_targets(top)) | {"RegisterJob"}
    # The iteration is a world of its own: its transitions stay inside it.
    inner = shard["States"]
    assert shard["StartAt"] == "StartWorker"
    assert shard["ProcessorConfig"] == {"Mode": "INLINE"}
    for path in (SHARD_PATH, RETRY_PATH):
        for current, following in pairwise(path):
            assert inner[current]["Next"] == following
        assert inner[path[-1]]["End"] is True
    assert inner["FailShard"]["End"] is True
    assert set(inner) == set(_targets(inner)) | {"StartWorker"}


def test_the_map_runs_one_iteration_per_shard_from_register_job(
    states: dict[str, dict[str, Any]],
) -> None:
    develop = states["DevelopShards"]
    assert develop["ItemsPath"] == "$.job.shards"
    assert develop["ItemSelector"] == {
        "job_id.$": "$.job.job_id",
        "shard.$": "$$.Map.Item.Value.shard",
        "heartbeat_seconds.$": "$.job.heartbeat_seconds",
        "timeout_seconds.$": "$.job.timeout_seconds",
        "worker": {"instance_id": ""},
    }
    # As many at once as RegisterJob says the pool holds.
    assert develop["MaxConcurrencyPath"] == "$.job.shards_at_once"
    assert "MaxConcurrency" not in develop
    assert develop["ResultPath"] is None  # the shards' outcomes live in the file items


def test_every_main_state_catches_everything_into_release_worker(
    states: dict[str, dict[str, Any]],
) -> None:
    for name in ("RegisterJob", "DevelopShards", "StopPackager", "MarkDone"):
        assert states[name]["Catch"] == [
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "ReleaseWorker"}
        ], name


def test_a_shard_lost_once_is_released_and_tried_again_then_fails_alone(
    states: dict[str, dict[str, Any]],
) -> None:
    for name, release in (
        *((n, "ReleaseShard") for n in SHARD_PATH[:2]),
        *((n, "ReleaseShardAgain") for n in RETRY_PATH[:2]),
    ):
        assert states[name]["Catch"] == [
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": release}
        ], name
    assert states["ReleaseShard"]["Next"] == "RetryStartWorker"
    assert states["ReleaseShardAgain"]["Next"] == "FailShard"
    for name in ("ReleaseShard", "ReleaseShardAgain"):
        release = states[name]
        assert payload(release)["shard.$"] == "$.shard" and payload(release)["release_only"]
        assert release["ResultPath"] is None
        assert release["Catch"][0]["ResultPath"] == "$.release_error"
    # The second attempt leaves out the instance the first one lost.
    assert payload(states["RetryStartWorker"])["avoid.$"] == "$.worker.instance_id"
    fail = states["FailShard"]
    assert fail["Parameters"]["FunctionName"] == "${MarkFailedFunctionArn}"
    assert payload(fail)["shard.$"] == "$.shard" and payload(fail)["error.$"] == "$.error"


def test_a_lost_packager_is_tried_once_more_on_another_instance_then_given_up(
    states: dict[str, dict[str, Any]],
) -> None:
    def catch(name: str) -> dict[str, Any]:
        (only,) = states[name]["Catch"]
        assert only["ErrorEquals"] == ["States.ALL"], name
        assert only["ResultPath"] == "$.package.error", name
        return dict(only)

    # Lost midway: its instance is released, and a second packager started elsewhere.
    assert catch("WaitForPackager")["Next"] == "ReleaseLostPackager"
    lost = states["ReleaseLostPackager"]
    assert lost["Next"] == "RetryStartPackager"
    assert lost["Catch"][0]["Next"] == "RetryStartPackager"
    assert lost["Catch"][0]["ResultPath"] == "$.release_error"
    assert [states[n]["Next"] for n in PACKAGER_RETRY_PATH] == [
        "RetryWaitForPackager",
        "RetryStopPackager",
        "MarkDone",
    ]
    assert payload(states["RetryStartPackager"])["avoid.$"] == "$.packager.instance_id"
    assert states["RetryStartPackager"]["ResultPath"] == "$.packager"
    assert states["RetryWaitForPackager"]["ResultPath"] == "$.package"
    # Never started, or lost twice: the run is delivered without ZIPs.
    for name in ("StartPackager", "RetryStartPackager", "RetryWaitForPackager"):
        assert catch(name)["Next"] == "ReleasePackager", name
    assert states["ReleasePackager"]["Next"] == "MarkDone"
    for name in ("StartPackager", "RetryStartPackager"):
        assert payload(states[name])["task"] == "package", name
    shards = {
        payload(states[n])["shard"]
        for n in ("StartPackager", "RetryStartPackager", "ReleasePackager", "ReleaseLostPackager")
    }
    assert len(shards) == 1
    for name in ("StopPackager", "RetryStopPackager"):
        assert payload(states[name])["instance_id.$"] == "$.packager.instance_id", name


def test_a_run_of_one_shard_skips_the_packager_its_shards_worker_packaged_it(
    states: dict[str, dict[str, Any]],
) -> None:
    (one_shard,) = states["WhoPackages"]["Choices"]
    assert one_shard == {
        "Variable": "$.job.packaged_by_shard",
        "BooleanEquals": True,
        "Next": "PackagedByShard",
    }
    packaged = states["PackagedByShard"]
    assert (packaged["Type"], packaged["ResultPath"], packaged["Next"]) == (
        "Pass",
        "$.package",
        "MarkDone",
    )
    # What MarkDone then finds at $.package: where the ZIPs are recorded.
    assert TASK_EVENTS[names.Function.MARK_DONE].model_validate(
        {"job_id": "j", "execution_arn": "arn", "package": packaged["Result"]}
    ).package == {"shard": 0}


def test_the_data_flow_between_states(states: dict[str, dict[str, Any]]) -> None:
    register = states["RegisterJob"]
    assert payload(register)["input.$"] == "$"
    assert register["ResultPath"] == "$.job"
    assert set(register["ResultSelector"]) == {
        "job_id.$",
        "file_count.$",
        "heartbeat_seconds.$",
        "timeout_seconds.$",
        "shards.$",
        "shards_at_once.$",
        "packaged_by_shard.$",
    }
    for start in ("StartWorker", "RetryStartWorker"):
        assert payload(states[start])["job_id.$"] == "$.job_id"
        assert payload(states[start])["shard.$"] == "$.shard"
        assert states[start]["ResultSelector"] == {"instance_id.$": "$.Payload.instance_id"}
        assert states[start]["ResultPath"] == "$.worker"
    for stop in ("StopWorker", "RetryStopWorker"):
        assert payload(states[stop])["instance_id.$"] == "$.worker.instance_id"
        assert payload(states[stop])["shard.$"] == "$.shard"
        assert states[stop]["ResultPath"] is None
    assert states["WaitForPackager"]["ResultPath"] == "$.package"
    assert payload(states["MarkDone"])["package.$"] == "$.package"
    # The execution's output is MarkDone's return value, not the Invoke envelope.
    assert states["MarkDone"]["OutputPath"] == "$.Payload"
    assert "ResultPath" not in states["MarkDone"]


def test_start_worker_queues_on_no_idle_worker_before_anything_else(
    states: dict[str, dict[str, Any]],
) -> None:
    for name in ("StartWorker", "RetryStartWorker", "StartPackager", "RetryStartPackager"):
        first, *others = states[name]["Retry"]
        assert first == {
            "ErrorEquals": ["NoIdleWorker"],
            "IntervalSeconds": 2,
            "MaxAttempts": 2000,
            "BackoffRate": 1.5,
            "MaxDelaySeconds": 30,
        }, name
        assert others == [TRANSIENT_RETRY], name


def test_every_task_retries_a_crash_or_throttle_of_its_own_lambda_with_jitter(
    states: dict[str, dict[str, Any]],
) -> None:
    tasks = [name for name, state in states.items() if state["Type"] == "Task"]
    assert len(tasks) == 21
    for name in tasks:
        assert states[name]["Retry"][-1] == TRANSIENT_RETRY, name
        assert states[name]["Retry"].count(TRANSIENT_RETRY) == 1, name


def test_no_error_the_worker_or_a_timeout_reports_is_retried(
    states: dict[str, dict[str, Any]],
) -> None:
    # A lost worker (heartbeat timeout) or one that failed goes to the Catch (another
    # attempt, then the shard fails); only a failure to hand over the token is retried.
    for name in CALLBACK_STATES:
        retried = {e for r in states[name]["Retry"] for e in r["ErrorEquals"]}
        worker_reports = {"AllFilesFailed", "WorkerFailed", "WorkerInterrupted"}
        assert not retried & worker_reports, name
        assert not {e for e in retried if e.startswith("States.")}, name


def test_wait_for_worker_waits_on_a_token_with_heartbeat_and_timeout_from_register_job(
    states: dict[str, dict[str, Any]],
) -> None:
    for name in ("WaitForWorker", "RetryWaitForWorker"):
        wait = states[name]
        assert wait["Resource"] == CALLBACK
        assert wait["Parameters"]["FunctionName"] == "${AwaitWorkerFunctionArn}"
        assert payload(wait)["instance_id.$"] == "$.worker.instance_id"
        assert payload(wait)["shard.$"] == "$.shard"
        assert payload(wait)["task_token.$"] == "$$.Task.Token"
        # The iteration's input carries RegisterJob's timings (the Map's ItemSelector).
        assert wait["HeartbeatSecondsPath"] == "$.heartbeat_seconds"
        assert wait["TimeoutSecondsPath"] == "$.timeout_seconds"
        assert wait["ResultPath"] == "$.result"
        assert "ResultSelector" not in wait  # SendTaskSuccess output arrives bare
    for name in ("WaitForPackager", "RetryWaitForPackager"):
        packager = states[name]
        assert packager["HeartbeatSecondsPath"] == "$.job.heartbeat_seconds", name
        assert payload(packager)["instance_id.$"] == "$.packager.instance_id", name


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
