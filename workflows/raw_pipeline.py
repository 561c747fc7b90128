"""The RAW job state machine, authored with the stepfunctions SDK.

(Over 400 lines: every state and its contract, so the machine reads in one place.)

`python -m workflows.raw_pipeline` (or `make workflow`) writes raw_pipeline.asl.json beside
this file. That committed JSON, with its ${...FunctionArn} placeholders, is what CDK, the
local cloud and darkroom.workflow load; no runtime imports this module or the SDK.

    RegisterJob -> DevelopShards (an inline Map, one iteration per shard) -> WhoPackages
        -> StartPackager -> WaitForPackager -> StopPackager -> MarkDone
        (one shard: WhoPackages -> PackagedByShard -> MarkDone; that shard's worker
        packaged the run after developing it)
        any of them but the packaging --Catch States.ALL--> ReleaseWorker -> MarkFailed
        -> JobFailed (Fail)
    one iteration:  StartWorker -> WaitForWorker -> StopWorker
        --Catch--> ReleaseShard -> RetryStartWorker -> RetryWaitForWorker -> RetryStopWorker
        --Catch--> ReleaseShardAgain -> FailShard (the shard's pending files fail; the
        iteration, and the job, go on)
    packaging:      WaitForPackager --Catch--> ReleaseLostPackager -> RetryStartPackager
                    -> RetryWaitForPackager -> RetryStopPackager -> MarkDone
                    StartPackager, RetryStartPackager, RetryWaitForPackager --Catch-->
                    ReleasePackager -> MarkDone (delivered without ZIPs)

State data, as it grows along the way (the ResultPaths):

    execution input   {"job_id": str, "recipe"?: {...}, "reprocess"?: bool}
    RegisterJob       + "job":      {"job_id", "file_count", "heartbeat_seconds",
                                     "timeout_seconds", "shards": [{"shard": int}, ...],
                                     "shards_at_once": int, "packaged_by_shard": bool}
    an iteration      its own input {"job_id", "shard", "heartbeat_seconds",
                                     "timeout_seconds", "worker": {"instance_id": ""}}
                      + "worker", "result", "error" within it; the Map's output is dropped
                      (ResultPath null): each shard's outcome is in the file items
    StartPackager     + "packager": {"instance_id"} (RetryStartPackager replaces it)
    WaitForPackager   + "package":  the packager's SendTaskSuccess output
                      ({"archives": {...}}), or {"error": {"Error", "Cause"}} from a Catch
                      (RetryWaitForPackager replaces it)
    PackagedByShard   + "package":  {"shard": 0}: MarkDone reads the ZIPs off that shard's
                                    item (none there: delivered without ZIPs)
    MarkDone          the execution's output is MarkDone's return value, verbatim
    failure path      + "error":         {"Error", "Cause"}  the Catch that left the main path
                      + "release_error": {"Error", "Cause"}  only if ReleaseWorker failed
                      + "failure":       {"Error", "Cause"}  MarkFailed's return, or its Catch

Lambda contracts. Every task sends {"job_id", "execution_arn", ...} and every Lambda must be
idempotent per execution_arn: a throttle, a passing fault or a crash of its process (even
after its work is done, before it answers) re-invokes it with the same event:

    RegisterJob   event {"input": <execution input>, "execution_arn"}
                  returns {"job_id": str, "file_count": int, "heartbeat_seconds": int > 0,
                           "timeout_seconds": int > 0, "shards": [{"shard": int}, ...],
                           "shards_at_once": int >= 1 (the Map's MaxConcurrencyPath: the
                           pool's size, at most 40), "packaged_by_shard": bool (one shard)}
    StartWorker   event {"job_id", "execution_arn", "shard", "task": "develop"|"package",
                  "avoid"?: the instance a first attempt lost}
                  returns {"instance_id": str}; raises NoIdleWorker while the shard waits
                  its turn (the queue in the workers table orders every execution's shards)
    AwaitWorker   event {"job_id", "execution_arn", "instance_id", "shard", "task_token"}
                  (WaitForWorker) return value ignored: the state ends when the worker calls
                  SendTaskSuccess / SendTaskFailure with task_token. A retry brings a new
                  token, which replaces the old one on the lease; a worker holding the old
                  one finds it dead at its next heartbeat and takes up the new one
    StopWorker    event {"job_id", "execution_arn", "instance_id", "shard"}; return ignored
    ReleaseShard  StopWorker's function, event {"job_id", "execution_arn", "shard",
                  "release_only": true}: frees that shard's lease, if it still holds one
    ReleaseWorker StopWorker's function, event {"input", "execution_arn", "release_only": true}
                  with no instance_id and no shard: every lease the execution holds (each
                  shard's, the packager's) is found by execution_arn; return value ignored
    FailShard     MarkFailed's function, event {"input", "execution_arn", "error", "shard"}
    MarkDone      event {"job_id", "execution_arn", "package": <packaging's output or error,
                  or {"shard": 0}>}
                  returns any JSON, which becomes the execution's output
    MarkFailed    event {"input", "execution_arn", "error": {"Error", "Cause"}}
                  returns {"Error": str, "Cause": str} -- capitalised like a Catch's output,
                  so JobFailed reads $.failure.Error / $.failure.Cause whether MarkFailed
                  answered or its own Catch filled $.failure. Error must be a stable darkroom
                  name, never "States.*" (moto's interpreter rejects those in a Fail state).

The failure path is handed the whole execution input ($$.Execution.Input), because $.job
is absent when RegisterJob itself failed, and an input typed by hand may lack job_id
(dereferencing it would be a States.Runtime error no Catch can handle).

The fields RegisterJob, StartWorker and MarkFailed return are named one by one in
ResultSelectors: later states read them, so the definition states the
contract, and only the function's return value (never the Invoke envelope) enters the state.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from collections.abc import Mapping
from typing import Any, Final

from darkroom.aws.lease_store import PACKAGE_SHARD, LeaseTask
from darkroom.names import ASL_FUNCTION_PLACEHOLDERS
from darkroom.workflow import ASL_PATH

# The SDK imports sagemaker v2 for SageMaker steps this machine never uses; its config
# lookup logs to stdout and it warns about v3 on import. Neither concerns the generator.
logging.getLogger("sagemaker.config").setLevel(logging.WARNING)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    from stepfunctions.steps import (
        Catch,
        Chain,
        Choice,
        ChoiceRule,
        Fail,
        Graph,
        Map,
        Pass,
        Retry,
        Task,
    )
    from stepfunctions.steps.compute import LambdaApi
    from stepfunctions.steps.integration_resources import IntegrationPattern

COMMENT: Final = (
    "darkroom RAW job: register the job, develop each shard on a pool worker of its own "
    "(lease, start, wait for its callback, stop; once more on another worker if it is lost), "
    "package the run's ZIPs, mark the job done. Any other failure releases the workers and "
    "marks the job failed. Generated by workflows/raw_pipeline.py; do not edit by hand."
)

# Pinned rather than taken from the SDK's LambdaStep, which derives the partition from the
# ambient boto3 region: the committed file would then depend on the author's AWS_REGION.
PARTITION: Final = "aws"
LAMBDA_INVOKE: Final = f"arn:{PARTITION}:states:::lambda:{LambdaApi.Invoke.value}"
LAMBDA_INVOKE_CALLBACK: Final = f"{LAMBDA_INVOKE}.{IntegrationPattern.WaitForTaskToken.value}"

EXECUTION_ARN: Final = "$$.Execution.Id"
TASK_TOKEN: Final = "$$.Task.Token"
# Not $.job.job_id: on the failure path RegisterJob may never have produced $.job, and
# not $$.Execution.Input.job_id: a hand-typed input may lack it.
EXECUTION_INPUT: Final = "$$.Execution.Input"

NO_IDLE_WORKER: Final = "NoIdleWorker"
TASK_DEVELOP: Final = str(LeaseTask.DEVELOP)
TASK_PACKAGE: Final = str(LeaseTask.PACKAGE)

# What a retry can cure: the Lambda service failing or throttling the Invoke, the function's
# process dying or timing out (Runtime.ExitError, Sandbox.Timedout: a crash, a killed
# process, a host lost mid-call), and TransientError, which the adapters raise for throttling
# and AWS 5xx. Errors a handler raises on purpose (InvalidJob, JobBusy...) are not retried.
TRANSIENT_ERRORS: Final = (
    "Lambda.Unknown",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Runtime.ExitError",
    "Sandbox.Timedout",
    "TransientError",
)

# The SDK emits Type after whatever fields it was given; this order reads each state the
# way the ASL docs present one. Unlisted keys keep their relative order, after these.
_KEY_ORDER: Final = (
    "Type",
    "Comment",
    "Resource",
    "InputPath",
    "Parameters",
    "ResultSelector",
    "ResultPath",
    "OutputPath",
    "ItemsPath",
    "ItemSelector",
    "MaxConcurrency",
    "ItemProcessor",
    "HeartbeatSecondsPath",
    "TimeoutSecondsPath",
    "Error",
    "ErrorPath",
    "Cause",
    "CausePath",
    "ErrorEquals",
    "IntervalSeconds",
    "MaxAttempts",
    "BackoffRate",
    "MaxDelaySeconds",
    "JitterStrategy",
    "Retry",
    "Catch",
    "Next",
    "End",
)
_RANK: Final = {key: i for i, key in enumerate(_KEY_ORDER)}


def _ordered(block: Mapping[str, Any]) -> dict[str, Any]:
    return {key: block[key] for key in sorted(block, key=lambda k: _RANK.get(k, len(_RANK)))}


# -- SDK extensions: ASL fields newer than stepfunctions 2.3.0 ----------------------------
class LambdaInvoke(Task):
    """A lambda:invoke Task with a pinned partition and an optional ResultSelector."""

    def __init__(
        self,
        state_id: str,
        *,
        function: str,
        payload: Mapping[str, Any],
        wait_for_callback: bool = False,
        result_selector: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        if function not in ASL_FUNCTION_PLACEHOLDERS:
            raise ValueError(f"{state_id}: unknown function placeholder {function!r}")
        super().__init__(
            state_id,
            resource=LAMBDA_INVOKE_CALLBACK if wait_for_callback else LAMBDA_INVOKE,
            parameters={"FunctionName": f"${{{function}}}", "Payload": dict(payload)},
            **kwargs,
        )
        self._result_selector = dict(result_selector) if result_selector else None

    def to_dict(self) -> dict[str, Any]:
        result = super().to_dict()
        if self._result_selector is not None:
            result["ResultSelector"] = self._result_selector
        return _ordered(result)


class RetryWithBackoff(Retry):
    """Retry with MaxDelaySeconds, which caps exponential backoff, and JitterStrategy."""

    def __init__(
        self,
        *,
        max_delay_seconds: int | None = None,
        full_jitter: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._max_delay_seconds = max_delay_seconds
        self._full_jitter = full_jitter

    def to_dict(self) -> dict[str, Any]:
        result = super().to_dict()
        if self._max_delay_seconds is not None:
            result["MaxDelaySeconds"] = self._max_delay_seconds
        if self._full_jitter:
            result["JitterStrategy"] = "FULL"
        return _ordered(result)


class InlineMap(Map):
    """An inline Map in today's ASL: ItemProcessor and ItemSelector (the SDK writes the
    older Iterator and Parameters)."""

    def __init__(
        self,
        state_id: str,
        *,
        item_selector: Mapping[str, Any],
        iterator: Chain,
        max_concurrency_path: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(state_id, iterator=iterator, **kwargs)
        self._item_selector = dict(item_selector)
        self._max_concurrency_path = max_concurrency_path

    def to_dict(self) -> dict[str, Any]:
        result = super().to_dict()
        processor = result.pop("Iterator")
        result["ItemSelector"] = self._item_selector
        result["MaxConcurrencyPath"] = self._max_concurrency_path
        result["ItemProcessor"] = {"ProcessorConfig": {"Mode": "INLINE"}, **processor}
        return _ordered(result)


class FailFromPaths(Fail):
    """A Fail state whose error and cause come from the state data (ErrorPath, CausePath)."""

    def __init__(self, state_id: str, *, error_path: str, cause_path: str, **kwargs: Any) -> None:
        super().__init__(state_id, **kwargs)
        self._paths = {"ErrorPath": error_path, "CausePath": cause_path}

    def to_dict(self) -> dict[str, Any]:
        return _ordered({**super().to_dict(), **self._paths})


# -- building blocks ---------------------------------------------------------------------
def _returned(*fields: str) -> dict[str, str]:
    """A ResultSelector keeping exactly these fields of the function's return value."""
    return {f"{field}.$": f"$.Payload.{field}" for field in fields}


def _transient_retry() -> Retry:
    # Five retries within 30 s at most. Full jitter: executions that met the same
    # throttle or outage do not come back in step.
    return RetryWithBackoff(
        error_equals=list(TRANSIENT_ERRORS),
        interval_seconds=1,
        max_attempts=5,
        backoff_rate=2.0,
        max_delay_seconds=15,
        full_jitter=True,
    )


def _no_idle_worker_retry() -> Retry:
    # About 16 h of polling at most every 30 s: with the pool busy, jobs queue, not fail.
    return RetryWithBackoff(
        error_equals=[NO_IDLE_WORKER],
        interval_seconds=2,
        max_attempts=2000,
        backoff_rate=1.5,
        max_delay_seconds=30,
    )


def _catch_all(next_step: Any, result_path: str) -> Catch:
    return Catch(error_equals=["States.ALL"], result_path=result_path, next_step=next_step)


def _failure_path() -> Chain:
    job_failed = FailFromPaths(
        "JobFailed",
        comment="Error and Cause come from MarkFailed, or from MarkFailed's own Catch.",
        error_path="$.failure.Error",
        cause_path="$.failure.Cause",
    )
    mark_failed = LambdaInvoke(
        "MarkFailed",
        function="MarkFailedFunctionArn",
        payload={
            "input.$": EXECUTION_INPUT,
            "execution_arn.$": EXECUTION_ARN,
            "error.$": "$.error",
        },
        result_selector=_returned("Error", "Cause"),
        result_path="$.failure",
        retry=[_transient_retry()],
        # A Catch's output has MarkFailed's return shape, so JobFailed still resolves.
        catch=[_catch_all(job_failed, "$.failure")],
    )
    release_worker = LambdaInvoke(
        "ReleaseWorker",
        comment="Best effort: stop and release whatever instance this execution leased.",
        function="StopWorkerFunctionArn",
        payload={
            "input.$": EXECUTION_INPUT,
            "execution_arn.$": EXECUTION_ARN,
            "release_only": True,
        },
        result_path=None,
        retry=[_transient_retry()],
        # Beside $.error, not over it: MarkFailed must record why the job failed.
        catch=[_catch_all(mark_failed, "$.release_error")],
    )
    return Chain([release_worker, mark_failed, job_failed])


def _develop_shard() -> Chain:
    """One Map iteration: lease a worker for the shard, wait for it, stop it. A lost or
    failing worker (or a StartWorker that gave up) releases the shard's lease and tries
    once more on another instance; if that fails too, only the shard's files fail."""

    def start(state_id: str, avoid: str | None, on_error: Any) -> LambdaInvoke:
        payload: dict[str, Any] = {
            "job_id.$": "$.job_id",
            "execution_arn.$": EXECUTION_ARN,
            "shard.$": "$.shard",
            "task": TASK_DEVELOP,
        }
        if avoid is not None:
            payload["avoid.$"] = avoid
        return LambdaInvoke(
            state_id,
            comment="NoIdleWorker is retried for hours: shards queue for the pool, in turn.",
            function="StartWorkerFunctionArn",
            payload=payload,
            result_selector=_returned("instance_id"),
            result_path="$.worker",
            retry=[_no_idle_worker_retry(), _transient_retry()],
            catch=[_catch_all(on_error, "$.error")],
        )

    def wait(state_id: str, on_error: Any) -> LambdaInvoke:
        # Retried only when handing over the token failed: a lost or failing worker
        # (heartbeat timeout, SendTaskFailure) goes to the Catch.
        return LambdaInvoke(
            state_id,
            comment=(
                "The shard's worker reports with SendTaskSuccess/Failure and heartbeats "
                "meanwhile; heartbeat and timeout come from RegisterJob."
            ),
            function="AwaitWorkerFunctionArn",
            wait_for_callback=True,
            payload={
                "job_id.$": "$.job_id",
                "execution_arn.$": EXECUTION_ARN,
                "instance_id.$": "$.worker.instance_id",
                "shard.$": "$.shard",
                "task_token.$": TASK_TOKEN,
            },
            heartbeat_seconds_path="$.heartbeat_seconds",
            timeout_seconds_path="$.timeout_seconds",
            result_path="$.result",
            retry=[_transient_retry()],
            catch=[_catch_all(on_error, "$.error")],
        )

    def stop(state_id: str) -> LambdaInvoke:
        # No Catch: a StopWorker failing every retry fails the Map, and the failure
        # path then frees whatever the execution still holds.
        return LambdaInvoke(
            state_id,
            function="StopWorkerFunctionArn",
            payload={
                "job_id.$": "$.job_id",
                "execution_arn.$": EXECUTION_ARN,
                "instance_id.$": "$.worker.instance_id",
                "shard.$": "$.shard",
            },
            result_path=None,
            retry=[_transient_retry()],
        )

    def release(state_id: str, next_step: Any) -> LambdaInvoke:
        return LambdaInvoke(
            state_id,
            comment="Stop and free this shard's instance, if it still holds one.",
            function="StopWorkerFunctionArn",
            payload={
                "job_id.$": "$.job_id",
                "execution_arn.$": EXECUTION_ARN,
                "shard.$": "$.shard",
                "release_only": True,
            },
            result_path=None,
            retry=[_transient_retry()],
            # Beside $.error, not over it: FailShard must say why the shard failed.
            catch=[_catch_all(next_step, "$.release_error")],
        )

    fail_shard = LambdaInvoke(
        "FailShard",
        comment="The shard's pending files fail with the cause; the other shards go on.",
        function="MarkFailedFunctionArn",
        payload={
            "input.$": EXECUTION_INPUT,
            "execution_arn.$": EXECUTION_ARN,
            "error.$": "$.error",
            "shard.$": "$.shard",
        },
        result_path=None,
        retry=[_transient_retry()],
    )
    release_again = release("ReleaseShardAgain", fail_shard)
    release_again.next(fail_shard)
    second = Chain(
        [
            start("RetryStartWorker", "$.worker.instance_id", release_again),
            wait("RetryWaitForWorker", release_again),
            stop("RetryStopWorker"),
        ]
    )
    release_first = release("ReleaseShard", second)
    release_first.next(second)
    return Chain(
        [
            start("StartWorker", None, release_first),
            wait("WaitForWorker", release_first),
            stop("StopWorker"),
        ]
    )


def _main_path(on_error: Chain) -> Chain:
    def catch() -> list[Catch]:
        return [_catch_all(on_error, "$.error")]

    register_job = LambdaInvoke(
        "RegisterJob",
        function="RegisterJobFunctionArn",
        payload={"input.$": "$", "execution_arn.$": EXECUTION_ARN},
        result_selector=_returned(
            "job_id",
            "file_count",
            "heartbeat_seconds",
            "timeout_seconds",
            "shards",
            "shards_at_once",
            "packaged_by_shard",
        ),
        result_path="$.job",
        retry=[_transient_retry()],
        catch=catch(),
    )
    develop = InlineMap(
        "DevelopShards",
        comment="Each shard of the run on a worker of its own, as the pool frees them.",
        items_path="$.job.shards",
        item_selector={
            "job_id.$": "$.job.job_id",
            "shard.$": "$$.Map.Item.Value.shard",
            "heartbeat_seconds.$": "$.job.heartbeat_seconds",
            "timeout_seconds.$": "$.job.timeout_seconds",
            # What RetryStartWorker avoids when the first StartWorker never leased one.
            "worker": {"instance_id": ""},
        },
        # As many shards at once as the pool has instances (RegisterJob says how many):
        # a shard beyond that would only poll StartWorker until one frees. Which shard,
        # of which execution, gets the next free instance is the workers table's queue.
        max_concurrency_path="$.job.shards_at_once",
        iterator=_develop_shard(),
        result_path=None,
        catch=catch(),
    )
    mark_done = LambdaInvoke(
        "MarkDone",
        function="MarkDoneFunctionArn",
        payload={
            "job_id.$": "$.job.job_id",
            "execution_arn.$": EXECUTION_ARN,
            "package.$": "$.package",
        },
        # OutputPath rather than a ResultSelector: the return value is only the
        # execution's output, so it passes through whole.
        output_path="$.Payload",
        retry=[_transient_retry()],
        catch=catch(),
    )

    def release_packager(state_id: str, comment: str, next_step: Any) -> LambdaInvoke:
        return LambdaInvoke(
            state_id,
            comment=comment,
            function="StopWorkerFunctionArn",
            payload={
                "job_id.$": "$.job.job_id",
                "execution_arn.$": EXECUTION_ARN,
                "shard": PACKAGE_SHARD,
                "release_only": True,
            },
            result_path=None,
            retry=[_transient_retry()],
            # Beside $.package.error, not over it: MarkDone logs why there are no ZIPs.
            catch=[_catch_all(next_step, "$.release_error")],
        )

    def start_packager(state_id: str, avoid: str | None, on_error: Any) -> LambdaInvoke:
        payload: dict[str, Any] = {
            "job_id.$": "$.job.job_id",
            "execution_arn.$": EXECUTION_ARN,
            "shard": PACKAGE_SHARD,
            "task": TASK_PACKAGE,
        }
        if avoid is not None:
            payload["avoid.$"] = avoid
        return LambdaInvoke(
            state_id,
            comment="One worker writes the run's ZIPs once every shard is over.",
            function="StartWorkerFunctionArn",
            payload=payload,
            result_selector=_returned("instance_id"),
            result_path="$.packager",
            retry=[_no_idle_worker_retry(), _transient_retry()],
            catch=[_catch_all(on_error, "$.package.error")],
        )

    def wait_for_packager(state_id: str, on_error: Any) -> LambdaInvoke:
        return LambdaInvoke(
            state_id,
            function="AwaitWorkerFunctionArn",
            wait_for_callback=True,
            payload={
                "job_id.$": "$.job.job_id",
                "execution_arn.$": EXECUTION_ARN,
                "instance_id.$": "$.packager.instance_id",
                "shard": PACKAGE_SHARD,
                "task_token.$": TASK_TOKEN,
            },
            heartbeat_seconds_path="$.job.heartbeat_seconds",
            timeout_seconds_path="$.job.timeout_seconds",
            result_path="$.package",
            retry=[_transient_retry()],
            catch=[_catch_all(on_error, "$.package.error")],
        )

    def stop_packager(state_id: str) -> LambdaInvoke:
        return LambdaInvoke(
            state_id,
            function="StopWorkerFunctionArn",
            payload={
                "job_id.$": "$.job.job_id",
                "execution_arn.$": EXECUTION_ARN,
                "instance_id.$": "$.packager.instance_id",
                "shard": PACKAGE_SHARD,
            },
            result_path=None,
            retry=[_transient_retry()],
            catch=catch(),
        )

    given_up = release_packager(
        "ReleasePackager",
        "Packaging failed: free its instance; the run is delivered without ZIPs.",
        mark_done,
    )
    given_up.next(mark_done)
    # A packager lost midway (killed, its heartbeat missed, its S3 calls failing) is
    # tried once more on another instance, as a shard is: the parts stay until every
    # ZIP is whole, so the second attempt joins them again. One that never started (no
    # instance within the queue's hours) is not.
    second = Chain(
        [
            start_packager("RetryStartPackager", "$.packager.instance_id", given_up),
            wait_for_packager("RetryWaitForPackager", given_up),
            stop_packager("RetryStopPackager"),
            mark_done,
        ]
    )
    lost = release_packager(
        "ReleaseLostPackager",
        "The packager was lost: free its instance, then package on another.",
        second,
    )
    lost.next(second)
    first = Chain(
        [
            start_packager("StartPackager", None, given_up),
            wait_for_packager("WaitForPackager", lost),
            stop_packager("StopPackager"),
            mark_done,
        ]
    )
    packaged_by_shard = Pass(
        "PackagedByShard",
        comment="The run's only shard's worker wrote its ZIPs (on its shard item).",
        result={"shard": 0},
        result_path="$.package",
    )
    packaged_by_shard.next(mark_done)
    who_packages = Choice(
        "WhoPackages",
        comment="A run of one shard is packaged by that shard's worker: no second boot.",
    )
    # RegisterJob's ResultSelector always copies packaged_by_shard (or fails the state).
    who_packages.add_choice(
        ChoiceRule.BooleanEquals("$.job.packaged_by_shard", True), next_step=packaged_by_shard
    )
    who_packages.default_choice(first)
    return Chain([register_job, develop, who_packages])


# -- public API --------------------------------------------------------------------------
def build() -> dict[str, Any]:
    """The RAW pipeline's ASL as a dict."""
    definition: dict[str, Any] = Graph(_main_path(_failure_path()), comment=COMMENT).to_dict()
    return definition


def render() -> str:
    """The committed file's exact text: deterministic, so a stale file shows up as a diff."""
    return json.dumps(build(), indent=2, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workflows.raw_pipeline", description=f"Regenerate {ASL_PATH.name}."
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if the file is stale"
    )
    args = parser.parse_args(argv)
    text = render()
    current = ASL_PATH.read_text(encoding="utf-8") if ASL_PATH.exists() else None
    if args.check:
        if current != text:
            print(f"{ASL_PATH} is stale: run `python -m workflows.raw_pipeline`", file=sys.stderr)
            return 1
        return 0
    if current == text:
        print(f"{ASL_PATH} is up to date")
    else:
        ASL_PATH.write_text(text, encoding="utf-8")
        print(f"wrote {ASL_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
