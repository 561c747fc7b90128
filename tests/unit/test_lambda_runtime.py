"""The local Lambda runtime, driven with the toy handlers of tests/unit/lambda_toys.

Every test runs real child processes; no network, no moto.
"""

from __future__ import annotations

import json
import logging
import os
import re
import resource
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from darkroom.local.lambda_runtime import ASYNC_RETRY_DELAYS, LambdaRuntime
from darkroom.local.lambda_spec import (
    FunctionSpec,
    InvocationResult,
    RuntimeClosedError,
    UnknownFunctionError,
)

TOYS_ROOT = str(Path(__file__).parent)  # lambda_toys is a package under it


def spec(
    name: str,
    handler: str,
    *,
    environment: dict[str, str] | None = None,
    timeout: float = 5.0,
    extra_env: dict[str, str] | None = None,
) -> FunctionSpec:
    return FunctionSpec(
        name=name,
        handler=f"lambda_toys.{handler}",
        environment=environment or {},
        timeout_seconds=timeout,
        extra_env={"PYTHONPATH": TOYS_ROOT, **(extra_env or {})},
    )


def body(result: InvocationResult) -> Any:
    return json.loads(result.payload)


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie nobody reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[LambdaRuntime]:
    rt = LambdaRuntime(log_dir=tmp_path / "logs", async_retry_delays=(0.05, 0.1))
    yield rt
    rt.close()


def test_warm_process_is_reused_with_a_full_context(runtime: LambdaRuntime) -> None:
    runtime.register(spec("echo", "echo.handler", timeout=3))

    first = runtime.invoke("echo", {"n": 1})
    second = runtime.invoke("echo", {"n": 2})

    assert first.function_error is None and second.function_error is None
    assert body(first)["event"] == {"n": 1}
    assert body(first)["pid"] == body(second)["pid"]
    assert first.init_duration_ms is not None and second.init_duration_ms is None
    assert runtime.stats("echo") == {"cold_starts": 1, "invocations": 2, "warm_processes": 1}
    context = body(second)["context"]
    assert context["client_custom"] is None
    assert context["function_name"] == "echo"
    assert context["function_version"] == "$LATEST"
    assert context["invoked_function_arn"] == (
        "arn:aws:lambda:us-east-1:123456789012:function:echo"
    )
    assert context["memory_limit_in_mb"] == "128"  # a str, as in AWS
    assert context["aws_request_id"] == second.request_id
    assert context["log_group_name"] == "/aws/lambda/echo"
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", context["log_stream_name"])
    assert 0 < context["remaining_ms"] <= 3000
    assert f"echo {second.request_id}" in second.log_tail
    assert f"echo {first.request_id}" not in second.log_tail
    assert f"REPORT RequestId: {second.request_id}" in second.log_tail


def test_a_process_holding_over_1024_descriptors_still_reads_its_sandboxes(
    runtime: LambdaRuntime,
) -> None:
    # A long-lived local cloud holds one descriptor per large stored object; the
    # sandbox's pipe then lands past select()'s limit of 1024.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"this machine allows only {hard} open files")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        runtime.register(spec("echo", "echo.handler", timeout=3))
        result = runtime.invoke("echo", {"n": 1})
    finally:
        for fd in held:
            os.close(fd)
    assert result.function_error is None, result.payload
    assert body(result)["event"] == {"n": 1}


def test_child_sees_only_the_function_environment(
    runtime: LambdaRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DARKROOM_PARENT_ONLY", "leaked")
    declared = {"DARKROOM_RAW_BUCKET": "raw", "LOG_LEVEL": "DEBUG"}
    extra = {"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_DEFAULT_REGION": "eu-west-1"}
    fn = spec("echo", "echo.handler", environment=declared, extra_env=extra, timeout=4)
    runtime.register(fn)
    assert fn.environment == declared  # what the CDK app declared, untouched

    asked = ["DARKROOM_PARENT_ONLY", *declared, *extra, "AWS_REGION", "_HANDLER"]
    result = body(runtime.invoke("echo", {"env": asked}))

    assert result["env"] == {
        "DARKROOM_PARENT_ONLY": None,
        "DARKROOM_RAW_BUCKET": "raw",
        "LOG_LEVEL": "DEBUG",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_REGION": "eu-west-1",
        "_HANDLER": "lambda_toys.echo.handler",
    }
    assert result["context"]["invoked_function_arn"].startswith("arn:aws:lambda:eu-west-1:")
    reserved = {
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_TIMEOUT",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_REGION",
        "_HANDLER",
    }
    base = {"PATH", "HOME", "LANG", "TZ", "PYTHONPATH", "PYTHONUNBUFFERED", "TMPDIR"}
    no_aws_profile = {"AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_EC2_METADATA_DISABLED"}
    allowed = base | no_aws_profile | reserved | set(declared) | set(extra) | {"LC_CTYPE"}
    assert set(result["env_keys"]) <= allowed
    assert {"AWS_LAMBDA_FUNCTION_TIMEOUT", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"} <= set(
        result["env_keys"]
    )


def test_concurrent_invocations_scale_out_to_separate_processes(
    runtime: LambdaRuntime, tmp_path: Path
) -> None:
    runtime.register(spec("echo", "echo.handler"))
    meeting = tmp_path / "meeting"
    meeting.mkdir()
    results: list[InvocationResult] = []

    def call() -> None:
        results.append(runtime.invoke("echo", {"rendezvous": {"dir": str(meeting), "count": 2}}))

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert [r.function_error for r in results] == [None, None]
    assert len({body(r)["pid"] for r in results}) == 2
    assert runtime.stats("echo") == {"cold_starts": 2, "invocations": 2, "warm_processes": 2}
    for mine, theirs in (results, results[::-1]):
        assert f"echo {mine.request_id}" in mine.log_tail
        assert theirs.request_id not in mine.log_tail


def test_timeout_kills_the_process_group_and_the_next_call_cold_starts(
    runtime: LambdaRuntime,
) -> None:
    runtime.register(spec("sleepy", "sleepy.handler", timeout=0.5))

    started = time.monotonic()
    result = runtime.invoke("sleepy", {"seconds": 30, "spawn": True})
    elapsed = time.monotonic() - started

    assert result.function_error == "Unhandled"
    assert body(result) == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"{result.request_id} Task timed out after 0.50 seconds",
        "requestId": result.request_id,
        "stackTrace": [],
    }
    assert elapsed < 5
    pid = int(re.search(r"sleepy pid=(\d+)", result.log_tail).group(1))  # type: ignore[union-attr]
    grandchild = int(re.search(r"sleepy child=(\d+)", result.log_tail).group(1))  # type: ignore[union-attr]
    assert not alive(pid)
    assert eventually(lambda: not alive(grandchild))
    assert "Task timed out after 0.50 seconds" in result.log_tail

    recovered = runtime.invoke("sleepy", {"seconds": 0})
    assert recovered.function_error is None
    assert body(recovered)["pid"] != pid
    assert runtime.stats("sleepy")["cold_starts"] == 2


def test_a_slow_init_times_out_like_an_invocation(tmp_path: Path) -> None:
    (tmp_path / "slow_init.py").write_text(
        "import time\ntime.sleep(30)\ndef handler(event, context):\n    return 1\n"
    )
    with LambdaRuntime(init_timeout_seconds=0.3) as rt:
        rt.register(
            FunctionSpec(
                "slow", "slow_init.handler", {}, 0.2, extra_env={"PYTHONPATH": str(tmp_path)}
            )
        )
        result = rt.invoke("slow", {})
    assert result.error_type == "Sandbox.Timedout"
    assert body(result)["errorMessage"].endswith("Task timed out after 0.30 seconds")


def test_a_crashing_handler_is_an_exit_error_and_the_process_is_replaced(
    runtime: LambdaRuntime,
) -> None:
    runtime.register(spec("crash", "crash.handler"))
    pid = body(runtime.invoke("crash", {}))["pid"]

    exited = runtime.invoke("crash", {"exit": 3})
    assert exited.error_type == "Runtime.ExitError"
    assert body(exited)["errorMessage"] == (
        f"RequestId: {exited.request_id} Error: Runtime exited with error: exit status 3"
    )
    assert "crash: exiting" in exited.log_tail
    assert not alive(pid)

    segfault = runtime.invoke("crash", {"segfault": True})
    assert segfault.error_type == "Runtime.ExitError"
    assert body(segfault)["errorMessage"].endswith("signal: segmentation fault")
    assert "Fatal Python error: Segmentation fault" in segfault.log_tail

    recovered = runtime.invoke("crash", {})
    assert recovered.function_error is None
    assert runtime.stats("crash") == {"cold_starts": 3, "invocations": 4, "warm_processes": 1}


def test_an_injected_kill_crashes_the_next_invocation_before_its_handler_runs(
    runtime: LambdaRuntime, tmp_path: Path
) -> None:
    runtime.register(spec("crash", "crash.handler"))
    warm = body(runtime.invoke("crash", {}))["pid"]
    fired = runtime.kill_next("crash")
    assert not fired.is_set()
    work = tmp_path / "work"

    killed = runtime.invoke("crash", {"touch": str(work)})
    assert fired.is_set()
    assert killed.error_type == "Runtime.ExitError"
    assert body(killed)["errorMessage"] == (
        f"RequestId: {killed.request_id} Error: Runtime exited with error: signal: killed"
    )
    assert not work.exists()
    assert not alive(warm)

    # One kill only: the next invocation cold-starts and runs.
    again = runtime.invoke("crash", {"touch": str(work)})
    assert again.function_error is None
    assert work.read_text() == str(body(again)["pid"])
    assert runtime.stats("crash")["cold_starts"] == 2


def test_an_injected_kill_after_the_handler_keeps_its_work_and_loses_its_answer(
    runtime: LambdaRuntime, tmp_path: Path
) -> None:
    # Armed before the function's first invocation, as the local cloud may do.
    fired = runtime.kill_next("crash", after_handler=True)
    runtime.register(spec("crash", "crash.handler"))
    work = tmp_path / "work"

    killed = runtime.invoke("crash", {"touch": str(work)})
    assert fired.is_set()
    assert killed.error_type == "Runtime.ExitError"
    assert body(killed)["errorMessage"].endswith("signal: killed")
    pid = int(work.read_text())
    assert eventually(lambda: not alive(pid))
    assert runtime.invoke("crash", {}).function_error is None


def test_a_kill_armed_for_some_events_spares_the_others(
    runtime: LambdaRuntime, tmp_path: Path
) -> None:
    # One function serving several states: only the invocation the kill is for dies.
    fired = runtime.kill_next("crash", when=lambda event: bool(event.get("release_only")))
    runtime.register(spec("crash", "crash.handler"))
    spared, killed = tmp_path / "spared", tmp_path / "killed"

    assert runtime.invoke("crash", {"touch": str(spared)}).function_error is None
    assert spared.exists() and not fired.is_set()
    result = runtime.invoke("crash", {"touch": str(killed), "release_only": True})
    assert fired.is_set()
    assert result.error_type == "Runtime.ExitError"
    assert not killed.exists()
    assert runtime.invoke("crash", {"release_only": True}).function_error is None


def test_max_memory_used_is_the_sandboxs_own_not_the_process_that_started_it(
    runtime: LambdaRuntime,
) -> None:
    # Linux carries a process's peak RSS (ru_maxrss) over fork and exec: a sandbox
    # started by a large test session or benchmark must not report that as its own.
    ballast = bytearray(400 * 1024 * 1024)
    ballast[::4096] = b"x" * len(ballast[::4096])  # touched: resident, not just reserved
    runtime.register(spec("echo", "echo.handler"))
    result = runtime.invoke("echo", {})
    del ballast
    used = re.search(r"Max Memory Used: (\d+) MB", result.log_tail)
    assert used is not None, result.log_tail
    assert 10 < int(used.group(1)) < 300


def test_handler_exception_is_reported_like_the_aws_python_runtime(
    runtime: LambdaRuntime,
) -> None:
    runtime.register(spec("failing", "failing.handler"))

    result = runtime.invoke("failing", {})

    assert result.function_error == "Unhandled"
    error = body(result)
    assert error["errorType"] == "NoIdleWorker"
    assert error["errorMessage"] == "no idle worker in the pool"
    assert error["requestId"] == result.request_id
    assert any("failing.py" in frame for frame in error["stackTrace"])
    assert not any("lambda_bootstrap" in frame for frame in error["stackTrace"])
    assert "[ERROR] NoIdleWorker: no idle worker in the pool" in result.log_tail
    # A handled exception doesn't cost the warm process.
    assert runtime.invoke("failing", {"fail": False}).function_error is None
    assert runtime.stats("failing")["cold_starts"] == 1


def test_import_error_is_reported_at_every_invocation_until_fixed(
    runtime: LambdaRuntime, tmp_path: Path
) -> None:
    runtime.register(spec("broken", "broken.handler"))
    for _ in range(2):
        result = runtime.invoke("broken", {})
        assert result.error_type == "Runtime.ImportModuleError"
        assert body(result)["errorMessage"] == (
            "Unable to import module 'lambda_toys.broken': "
            "No module named 'darkroom_no_such_module'"
        )

    code = tmp_path / "code"
    code.mkdir()
    (code / "fixable.py").write_text("import darkroom_missing\n")
    runtime.register(
        FunctionSpec("fixable", "fixable.handler", {}, 5, extra_env={"PYTHONPATH": str(code)})
    )
    assert runtime.invoke("fixable", {}).error_type == "Runtime.ImportModuleError"
    (code / "fixable.py").write_text("def handler(event, context):\n    return 'fixed'\n")
    assert body(runtime.invoke("fixable", {})) == "fixed"


def test_return_values_are_marshalled_like_aws(runtime: LambdaRuntime) -> None:
    runtime.register(spec("returns", "returns.handler"))

    unmarshallable = runtime.invoke("returns", {"kind": "set"})
    assert unmarshallable.error_type == "Runtime.MarshalError"
    assert body(unmarshallable)["errorMessage"] == (
        "Unable to marshal response: Object of type set is not JSON serializable"
    )
    assert body(runtime.invoke("returns", {"kind": "decimal"})) == {"count": 3, "ratio": 0.5}
    assert runtime.invoke("returns", {"kind": "bytes"}).payload == b"\x00raw bytes"
    assert runtime.invoke("returns", {"kind": "none"}).payload == b"null"


def test_handler_output_never_corrupts_the_protocol(runtime: LambdaRuntime, tmp_path: Path) -> None:
    runtime.register(spec("noisy", "noisy.handler"))

    first = runtime.invoke("noisy", {})
    second = runtime.invoke("noisy", {"filler": 10_000})

    assert body(first) == {"ok": True, "stdin": "", "pid": body(second)["pid"]}
    tail = first.log_tail
    for line in (
        "noisy: printed at import",  # init output belongs to the cold start
        '{"looks": "like a protocol message"}',
        "noisy: to stderr",
        "noisy: straight to fd 1",
        "noisy: no newline",
        "noisy: last line",
    ):
        assert line in tail
    assert "[WARNING]\t" in tail and f"\t{first.request_id}\tnoisy: stdlib warning" in tail
    powertools = next(json.loads(line) for line in tail.splitlines() if '"marker"' in line)
    assert powertools["function_request_id"] == first.request_id
    assert powertools["function_name"] == "noisy"
    assert powertools["cold_start"] is True

    assert len(second.log_tail.encode()) <= 4096
    assert second.log_tail.rstrip().endswith(
        re.search(r"REPORT RequestId: .*", second.log_tail).group(0)  # type: ignore[union-attr]
    )
    logged = (tmp_path / "logs" / "noisy.log").read_text()
    assert logged.count("START RequestId:") == 2
    assert f"END RequestId: {second.request_id}" in logged
    assert "x" * 10_000 in logged


def test_async_invocation_retries_a_failure_twice(
    runtime: LambdaRuntime, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runtime.register(spec("failing", "failing.handler"))
    attempts = tmp_path / "attempts"
    caplog.set_level(logging.WARNING, logger="darkroom.local.lambda_runtime")

    result = runtime.invoke_async("failing", {"attempts_file": str(attempts)}).result(10)

    assert result.error_type == "NoIdleWorker"
    # Three attempts of one event, under one request id, as AWS retries.
    assert attempts.read_text().splitlines() == [result.request_id] * 3
    failures = [r for r in caplog.records if "failed, attempt" in r.getMessage()]
    assert len(failures) == 3
    assert runtime.stats("failing")["invocations"] == 3
    assert ASYNC_RETRY_DELAYS == (1.0, 2.0)  # tests shorten them; AWS's are longer still


def test_async_invocation_is_not_retried_on_success(runtime: LambdaRuntime, tmp_path: Path) -> None:
    runtime.register(spec("failing", "failing.handler"))
    attempts = tmp_path / "attempts"

    future = runtime.invoke_async("failing", {"attempts_file": str(attempts), "fail": False})

    assert body(future.result(10)) == {"ok": True}
    time.sleep(0.3)  # longer than both test retry delays
    assert len(attempts.read_text().splitlines()) == 1
    assert runtime.stats("failing")["invocations"] == 1


def test_redeploying_a_changed_spec_retires_its_warm_processes(runtime: LambdaRuntime) -> None:
    runtime.register(spec("echo", "echo.handler", environment={"STAGE": "one"}))
    old = body(runtime.invoke("echo", {"env": ["STAGE"]}))

    runtime.register(spec("echo", "echo.handler", environment={"STAGE": "one"}))  # no change
    assert runtime.stats("echo")["warm_processes"] == 1

    runtime.register(spec("echo", "echo.handler", environment={"STAGE": "two"}))
    assert runtime.stats("echo")["warm_processes"] == 0
    new = body(runtime.invoke("echo", {"env": ["STAGE"]}))

    assert new["env"] == {"STAGE": "two"}
    assert new["pid"] != old["pid"]
    assert eventually(lambda: not alive(old["pid"]))


def test_idle_processes_past_their_ttl_are_reaped(tmp_path: Path) -> None:
    with LambdaRuntime(idle_ttl_seconds=0) as rt:
        rt.register(spec("echo", "echo.handler"))
        first = body(rt.invoke("echo", {}))["pid"]
        second = body(rt.invoke("echo", {}))["pid"]
        assert first != second
        assert eventually(lambda: not alive(first))


def test_close_stops_every_process(tmp_path: Path) -> None:
    rt = LambdaRuntime()
    rt.register(spec("echo", "echo.handler"))
    rt.register(spec("sleepy", "sleepy.handler", timeout=30))
    pids = [body(rt.invoke("echo", {}))["pid"]]
    busy: list[InvocationResult] = []
    caller = threading.Thread(
        target=lambda: busy.append(rt.invoke("sleepy", {"seconds": 30, "spawn": True}))
    )
    caller.start()
    assert eventually(lambda: rt.stats("sleepy")["warm_processes"] == 1)
    time.sleep(0.5)  # let the handler spawn its own child

    rt.close()
    rt.close()  # idempotent
    caller.join(5)

    assert busy and busy[0].error_type == "Runtime.ExitError"
    pids += [int(p) for p in re.findall(r"sleepy (?:pid|child)=(\d+)", busy[0].log_tail)]
    assert len(pids) == 3
    assert eventually(lambda: not any(alive(pid) for pid in pids))
    with pytest.raises(RuntimeClosedError):
        rt.invoke("echo", {})


def test_misuse_is_reported_to_the_caller(runtime: LambdaRuntime) -> None:
    with pytest.raises(UnknownFunctionError):
        runtime.invoke("nope", {})
    with pytest.raises(UnknownFunctionError):
        runtime.invoke_async("nope", {})
    runtime.register(spec("echo", "echo.handler"))
    with pytest.raises(TypeError):
        runtime.invoke("echo", {"not json": object()})
    assert runtime.stats("echo")["cold_starts"] == 0  # rejected before taking a sandbox
    with pytest.raises(TypeError):
        FunctionSpec("f", "m.h", {"N": 1}, 3)  # type: ignore[dict-item]


# -- memory, as Lambda enforces it --------------------------------------------------------
def _hungry(memory_mb: int) -> FunctionSpec:
    return FunctionSpec(
        name="hungry",
        handler="lambda_toys.hungry.handler",
        environment={},
        timeout_seconds=10.0,
        memory_mb=memory_mb,
        extra_env={"PYTHONPATH": TOYS_ROOT},
    )


def test_a_function_within_its_memory_runs_and_reports_its_size(runtime: LambdaRuntime) -> None:
    runtime.register(_hungry(160))
    result = runtime.invoke("hungry", {"mb": 40})
    assert result.function_error is None, result.payload
    assert "Memory Size: 160 MB" in result.log_tail


@pytest.mark.parametrize("hold", [1.0, 0.0], ids=["held", "a brief spike"])
def test_a_function_past_its_memory_fails_out_of_memory_and_the_next_call_starts_afresh(
    runtime: LambdaRuntime, hold: float
) -> None:
    # Held, the watch kills it as it works; a spike shorter than the watch's interval is
    # still caught by the process's own peak, reported with its answer.
    runtime.register(_hungry(128))
    result = runtime.invoke("hungry", {"mb": 200, "hold": hold})
    assert result.error_type == "Runtime.OutOfMemory", result.payload
    assert body(result)["errorMessage"].endswith("Error: Runtime exited with error: signal: killed")
    assert "Runtime.OutOfMemory" in result.log_tail
    assert "Error Type: Runtime.OutOfMemory" in result.log_tail
    after = runtime.invoke("hungry", {"mb": 10})
    assert after.function_error is None
    assert runtime.stats("hungry")["cold_starts"] == 2
