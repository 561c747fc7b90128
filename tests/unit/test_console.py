"""The local console's graph (the committed ASL coloured by an execution's history) and
its reading of the local cloud's log files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from darkroom.local.console import graph, logs
from darkroom.workflow import load_template

DEFINITION = json.loads(load_template())


def _event(id_: int, kind: str, prev: int, **details: Any) -> dict[str, Any]:
    return {"id": id_, "type": kind, "previousEventId": prev, **details}


def entered(id_: int, name: str, prev: int, kind: str = "TaskStateEntered") -> dict[str, Any]:
    return _event(id_, kind, prev, stateEnteredEventDetails={"name": name, "input": "{}"})


def exited(id_: int, name: str, prev: int, output: str = "{}") -> dict[str, Any]:
    return _event(
        id_, "TaskStateExited", prev, stateExitedEventDetails={"name": name, "output": output}
    )


def statuses(events: list[dict[str, Any]], ended: bool = False) -> dict[str, str]:
    return {c.node.name: c.run.status for c in graph.colour(DEFINITION, events, ended)}


def test_every_state_of_the_committed_asl_is_drawn_with_a_maps_states_inside_it() -> None:
    nodes = graph.nodes(DEFINITION)
    assert nodes[0].name == DEFINITION["StartAt"] == "RegisterJob"
    inner = [n for n in nodes if n.parent == "DevelopShards"]
    assert inner and all(n.depth == 1 for n in inner)
    assert nodes.index(inner[0]) == [n.name for n in nodes].index("DevelopShards") + 1
    top = [n.name for n in nodes if n.depth == 0]
    assert top == list(DEFINITION["States"])
    register = nodes[0]
    assert register.next == ("DevelopShards", "ReleaseWorker")


def test_states_are_coloured_by_what_the_history_says_happened() -> None:
    events = [
        _event(1, "ExecutionStarted", 0),
        entered(2, "RegisterJob", 1),
        exited(3, "RegisterJob", 2, output='{"file_count": 2}'),
        entered(4, "DevelopShards", 3, kind="MapStateEntered"),
        entered(5, "StartWorker", 4),
    ]
    colours = statuses(events)
    assert colours["RegisterJob"] == graph.SUCCEEDED
    assert colours["DevelopShards"] == colours["StartWorker"] == graph.RUNNING
    assert colours["MarkDone"] == graph.NOT_REACHED
    run = {c.node.name: c.run for c in graph.colour(DEFINITION, events, False)}["RegisterJob"]
    assert (run.entered, run.input, run.output) == (1, "{}", '{"file_count": 2}')


def test_a_failed_task_is_red_with_its_error_and_cause_even_when_caught() -> None:
    events = [
        entered(1, "RegisterJob", 0),
        _event(2, "TaskScheduled", 1),
        _event(3, "TaskFailed", 2, taskFailedEventDetails={"error": "InvalidJob", "cause": "no"}),
        entered(4, "ReleaseWorker", 3),
    ]
    run = {c.node.name: c.run for c in graph.colour(DEFINITION, events, False)}
    assert (run["RegisterJob"].status, run["RegisterJob"].error) == (graph.FAILED, "InvalidJob")
    assert run["RegisterJob"].cause == "no"
    assert run["ReleaseWorker"].status == graph.RUNNING


def test_what_was_running_when_the_execution_ended_did_not_finish() -> None:
    events = [entered(1, "RegisterJob", 0), exited(2, "RegisterJob", 1), entered(3, "MarkDone", 2)]
    colours = statuses(events, ended=True)
    assert (colours["RegisterJob"], colours["MarkDone"]) == (graph.SUCCEEDED, graph.FAILED)


def test_a_fail_state_entered_is_red() -> None:
    assert statuses([entered(1, "JobFailed", 0, kind="FailStateEntered")])["JobFailed"] == "failed"


def test_a_log_stream_is_named_never_a_path(tmp_path: Path) -> None:
    (tmp_path / "darkroom-api.log").write_text("one\ntwo\n")
    (tmp_path / "secret.txt").write_text("no")
    assert logs.streams(tmp_path) == ["darkroom-api"]
    assert logs.tail(tmp_path, "darkroom-api") == "one\ntwo\n"
    assert logs.tail(tmp_path, "../darkroom-api") is None
    assert logs.tail(tmp_path, "secret") is None


def test_a_long_log_is_tailed_from_a_whole_line(tmp_path: Path) -> None:
    (tmp_path / "w.log").write_text("".join(f"line {i}\n" for i in range(1000)))
    text = logs.tail(tmp_path, "w", limit=100) or ""
    assert text.endswith("line 999\n") and text.startswith("line ")


def test_invocations_are_read_from_the_functions_report_lines(tmp_path: Path) -> None:
    (tmp_path / "darkroom-thumbnail.log").write_text(
        "START RequestId: a Version: $LATEST\n"
        '{"level":"INFO","message":"thumbnails written","key":"in/a.jpg"}\n'
        '{"_aws":{"CloudWatchMetrics":[]},"ThumbnailsMade":2}\n'
        "END RequestId: a\n"
        "REPORT RequestId: a\tDuration: 12.50 ms\tBilled Duration: 13 ms\t"
        "Memory Size: 512 MB\tMax Memory Used: 90 MB\n"
        "START RequestId: b Version: $LATEST\n"
        '{"level":"ERROR","message":"cannot read"}\n'
        "END RequestId: b\n"
        "REPORT RequestId: b\tDuration: 3000.00 ms\tBilled Duration: 3000 ms\t"
        "Memory Size: 512 MB\tStatus: timeout\n"
        "START RequestId: c Version: $LATEST\n"
    )
    found = logs.invocations(tmp_path, "darkroom-thumbnail")
    assert [i["request_id"] for i in found] == ["c", "b", "a"]
    c, b, a = found
    assert not c["finished"]
    assert (b["status"], b["errors"], b["duration_ms"]) == ("timeout", 1, 3000.0)
    assert (a["max_memory_mb"], a["errors"], a["last_message"], a["key"]) == (
        90,
        0,
        "INFO thumbnails written",
        "in/a.jpg",
    )
    assert b["last_message"] == "ERROR cannot read"


class FakeStepFunctions:
    """Only what the console's start and stop call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def start_execution(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("start", kwargs))
        return {"executionArn": f"arn:execution:{kwargs['name']}"}

    def stop_execution(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("stop", kwargs))
        return {}


def _console(tmp_path: Path) -> tuple[Any, FakeStepFunctions]:
    from werkzeug.test import Client
    from werkzeug.wrappers import Request

    from darkroom.local.console.app import Console

    sfn = FakeStepFunctions()
    console = Console(
        lambda service: sfn if service == "stepfunctions" else object(), tmp_path, "arn:machine"
    )

    def app(environ: Any, start_response: Any) -> Any:
        response = console.handle(Request(environ))
        assert response is not None, "a console path"
        return response(environ, start_response)

    return Client(app), sfn


def test_a_reprocess_started_from_the_console_is_named_as_the_pipeline_names_one(
    tmp_path: Path,
) -> None:
    client, sfn = _console(tmp_path)
    body = {"input": json.dumps({"job_id": "shoot-1", "reprocess": True})}
    answer = client.post("/console/api/start", json=body)
    assert answer.status_code == 200, answer.text
    ((kind, call),) = sfn.calls
    assert kind == "start" and call["stateMachineArn"] == "arn:machine"
    assert call["name"].startswith("shoot-1.rp-")
    assert json.loads(call["input"]) == {"job_id": "shoot-1", "reprocess": True}


def test_the_console_refuses_a_bad_input_and_a_form_from_elsewhere(tmp_path: Path) -> None:
    client, sfn = _console(tmp_path)
    assert client.post("/console/api/start", json={"input": "{nope"}).status_code == 400
    assert client.post("/console/api/start", json={"input": "[1]"}).status_code == 400
    assert client.post("/console/api/start", data={"input": "{}"}).status_code == 403
    assert client.post("/console/api/stop", json={}).status_code == 400
    assert sfn.calls == []
    assert client.post("/console/api/stop", json={"arn": "a", "cause": "oops"}).status_code == 200
    assert sfn.calls == [
        ("stop", {"executionArn": "a", "error": "Console.Stopped", "cause": "oops"})
    ]


def test_the_page_runs_only_its_own_script_and_style(tmp_path: Path) -> None:
    client, _ = _console(tmp_path)
    page = client.get("/console/")
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe" not in csp
    html = page.get_data(as_text=True)
    assert "<script>" not in html and "<style" not in html and " style=" not in html
    assert client.get("/console/console.js").headers["Content-Type"].startswith("text/javascript")
    assert "innerHTML" not in client.get("/console/console.js").get_data(as_text=True)


def test_the_graph_draws_every_transition_of_the_asl_as_an_edge() -> None:
    edges = {(e.source, e.target): e for e in graph.edges(DEFINITION)}
    assert edges["RegisterJob", "DevelopShards"].kind == graph.NEXT
    assert edges["RegisterJob", "ReleaseWorker"].kind == graph.CATCH
    assert edges["DevelopShards", "StartWorker"].kind == graph.ITERATE
    assert edges["WhoPackages", "PackagedByShard"].kind == graph.CHOICE
    # Every Next, Default, Choices and Catch target of every state, and nothing else.
    declared = {(n.name, t) for n in graph.nodes(DEFINITION) for t in n.next}
    assert set(edges) - {("DevelopShards", "StartWorker")} == declared


def test_edges_to_the_row_below_are_straight_and_no_two_overlap_on_a_rail() -> None:
    rows = {n.name: i for i, n in enumerate(graph.nodes(DEFINITION))}
    laid = graph.edges(DEFINITION)
    for e in laid:
        if e.lane == 0:
            assert rows[e.target] == rows[e.source] + 1 and e.kind != graph.CATCH
    railed = [e for e in laid if e.lane]
    for a in railed:
        for b in railed:
            if a is b or a.lane != b.lane or (a.target, a.kind) == (b.target, b.kind):
                continue
            a_rows = sorted((rows[a.source], rows[a.target]))
            b_rows = sorted((rows[b.source], rows[b.target]))
            assert a_rows[1] < b_rows[0] or b_rows[1] < a_rows[0], (a, b)
    # Edges into one state the same way share a rail: the catch-alls into ReleaseWorker.
    into_release = {e.lane for e in railed if (e.target, e.kind) == ("ReleaseWorker", graph.CATCH)}
    assert len(into_release) < len([e for e in railed if e.target == "ReleaseWorker"])
