"""The state machine's graph, from its ASL, coloured by one execution's event history.

Everything here is read from what Step Functions returns (DescribeStateMachine's
definition, GetExecutionHistory's events), as the AWS console reads it: the console
keeps no state of its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

SUCCEEDED, FAILED, RUNNING, NOT_REACHED = "succeeded", "failed", "running", "not-reached"
# Events that end a state's attempt badly; their state is the one last entered before.
_FAILURES = frozenset(
    {
        "TaskFailed",
        "TaskTimedOut",
        "TaskSubmitFailed",
        "TaskStartFailed",
        "LambdaFunctionFailed",
        "LambdaFunctionTimedOut",
        "MapStateFailed",
        "MapStateAborted",
        "FailStateEntered",
        "ExecutionFailed",
        "ExecutionAborted",
        "ExecutionTimedOut",
    }
)


@dataclass(frozen=True)
class Node:
    name: str
    type: str
    depth: int  # 1 inside a Map's iterator
    parent: str | None
    next: tuple[str, ...]  # Next, Default, Choices and Catch targets, in that order


@dataclass
class StateRun:
    """What happened to one state, over every time it was entered (a Map's iterations,
    a retried shard): the last entry's input and output, the last error."""

    status: str = NOT_REACHED
    entered: int = 0
    input: str | None = None
    output: str | None = None
    error: str | None = None
    cause: str | None = None


@dataclass
class Coloured:
    node: Node
    run: StateRun = field(default_factory=StateRun)

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self.node), **asdict(self.run)}


def nodes(definition: Mapping[str, Any]) -> list[Node]:
    """Every state in definition order, a Map's own states right after it."""
    return list(_walk(definition.get("States", {}), depth=0, parent=None))


def _walk(states: Mapping[str, Any], depth: int, parent: str | None) -> Iterable[Node]:
    for name, state in states.items():
        yield Node(name, str(state.get("Type", "")), depth, parent, _targets(state))
        inner = state.get("ItemProcessor") or state.get("Iterator")
        if inner:
            yield from _walk(inner.get("States", {}), depth + 1, name)


def _targets(state: Mapping[str, Any]) -> tuple[str, ...]:
    found = [c.get("Next") for c in state.get("Choices", [])]
    found += [state.get("Next"), state.get("Default")]
    found += [c.get("Next") for c in state.get("Catch", [])]
    return tuple(dict.fromkeys(t for t in found if t))


NEXT, CHOICE, CATCH, ITERATE = "next", "choice", "catch", "iterate"


@dataclass(frozen=True)
class Edge:
    """An arrow of the drawing. The states are drawn one per row in definition order,
    so an edge to the row just below is a short arrow down (lane 0); any other runs on a
    vertical rail right of the boxes (lane 1, 2, ...: the n-th rail out)."""

    source: str
    target: str
    kind: str  # NEXT, CHOICE (a Choice's rule or Default), CATCH, ITERATE (a Map's StartAt)
    lane: int


def edges(definition: Mapping[str, Any]) -> list[Edge]:
    """Every transition the ASL declares (Next, Choices, Default, Catch, and a Map into
    its iteration's first state), each given a lane so that none crosses another on the
    same rail: edges into the same state share a rail, as one line merging into it."""
    drawn = nodes(definition)
    row = {n.name: i for i, n in enumerate(drawn)}
    # One arrow per pair of states: a Catch to where Next goes anyway adds nothing.
    kinds: dict[tuple[str, str], str] = {}
    for source, target, kind in _transitions(definition.get("States", {})):
        if source in row and target in row:
            kinds.setdefault((source, target), kind)
    found = [(source, target, kind) for (source, target), kind in kinds.items()]
    straight = [(s, t, k) for s, t, k in found if k != CATCH and row[t] == row[s] + 1]
    laid = [Edge(s, t, k, 0) for s, t, k in straight]
    # Rails: each holds spans of rows, each span with the state it leads to.
    rails: list[list[tuple[int, int, str, str]]] = []
    railed = [e for e in found if e not in straight]
    for source, target, kind in sorted(railed, key=lambda e: abs(row[e[1]] - row[e[0]])):
        low, high = sorted((row[source], row[target]))
        lane = _free_rail(rails, low, high, target, kind)
        rails[lane - 1].append((low, high, target, kind))
        laid.append(Edge(source, target, kind, lane))
    return laid


def _free_rail(
    rails: list[list[tuple[int, int, str, str]]], low: int, high: int, target: str, kind: str
) -> int:
    """The innermost rail whose spans leave rows low..high free (or lead to the same
    state the same way), a new one if none does."""
    for lane, spans in enumerate(rails, start=1):
        if all((t, k) == (target, kind) or high < lo or low > hi for lo, hi, t, k in spans):
            return lane
    rails.append([])
    return len(rails)


def _transitions(states: Mapping[str, Any]) -> Iterable[tuple[str, str, str]]:
    for name, state in states.items():
        for rule in state.get("Choices", []):
            if rule.get("Next"):
                yield name, rule["Next"], CHOICE
        if state.get("Default"):
            yield name, state["Default"], CHOICE
        if state.get("Next"):
            yield name, state["Next"], NEXT
        for catcher in state.get("Catch", []):
            if catcher.get("Next"):
                yield name, catcher["Next"], CATCH
        inner = state.get("ItemProcessor") or state.get("Iterator")
        if inner:
            if inner.get("StartAt"):
                yield name, inner["StartAt"], ITERATE
            yield from _transitions(inner.get("States", {}))


def colour(
    definition: Mapping[str, Any], events: list[dict[str, Any]], ended: bool
) -> list[Coloured]:
    graph = [Coloured(n) for n in nodes(definition)]
    runs = {c.node.name: c.run for c in graph}
    by_id = {e["id"]: e for e in events}
    for event in events:
        _apply(event, runs, by_id)
    for run in runs.values():
        # An execution that ended (aborted, timed out) leaves its current states unfinished.
        if ended and run.status == RUNNING:
            run.status = FAILED
    return graph


def _apply(event: dict[str, Any], runs: dict[str, StateRun], by_id: dict[int, Any]) -> None:
    kind = str(event.get("type", ""))
    entered = event.get("stateEnteredEventDetails")
    exited = event.get("stateExitedEventDetails")
    if entered and entered.get("name") in runs:
        run = runs[entered["name"]]
        run.entered += 1
        run.input = entered.get("input")
        run.status = FAILED if kind == "FailStateEntered" else RUNNING
    elif exited and exited.get("name") in runs:
        run = runs[exited["name"]]
        run.output = exited.get("output")
        if run.status != FAILED:
            run.status = SUCCEEDED
    if kind in _FAILURES:
        name = state_of(event, by_id)
        if name in runs:
            failed = runs[name]
            failed.status = FAILED
            failed.error, failed.cause = failure(event)


def state_of(event: Mapping[str, Any], by_id: Mapping[int, Any]) -> str | None:
    """The state an event belongs to: the nearest entered state up its previousEventId chain."""
    seen: set[int] = set()
    current: Mapping[str, Any] | None = event
    while current is not None and current.get("id") not in seen:
        seen.add(current.get("id", -1))
        details = current.get("stateEnteredEventDetails")
        if details:
            return str(details.get("name"))
        current = by_id.get(current.get("previousEventId", 0))
    return None


def failure(event: Mapping[str, Any]) -> tuple[str | None, str | None]:
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, Mapping) and "error" in value:
            return value.get("error"), value.get("cause")
    return None, None


def definition_of(text: str) -> dict[str, Any]:
    parsed = json.loads(text)
    return parsed if isinstance(parsed, dict) else {}
