"""Big RAW jobs on the embedded local cloud: does orchestration stay cheap per file?

For each size, a fresh local cloud (pool of `--pool` workers) receives that many small
DNGs (the project's fixture writer, 64x64: a handful of distinct frames copied under
numbered names) the way a studio sends them: `POST /jobs`, a PUT to each presigned URL,
`POST /jobs/{id}/submit` (darkroom.cli.studio_client), then polls until the job is
terminal. One row per size:

  wall              submit -> terminal, from the job's own `submitted_at` and the
                    `updated_at` of its first terminal view (both written by the
                    pipeline's processes; `finished_at` is when MarkDone began, before
                    its pass over the file items and its write of the job, reported
                    as `marking_done_seconds`)
  developing        the wall span during which at least one worker was developing this
                    job's files: the union of each worker's develop intervals, a worker
                    developing while its develop processes (the children
                    multiprocessing spawns) are alive -- the pool opens after the
                    shard's files are read and closes after its last file is recorded.
                    Sampled every 0.1 s by watching the process tree, so each interval
                    can read up to 0.2 s short: the overhead errs high, never low.
                    (The run manifest's per-file develop_seconds sum CPU time across
                    parallel processes, and the file items carry no start time.)
  overhead/file     (wall - developing) / files: S3 events, Lambda, state transitions,
                    instance boot, lease hand-over, the last worker's manifest and
                    callback, packaging if the pipeline has that step
  WCU/file          DynamoDB write units billed from item sizes (benchmarks.ddb_meter:
                    every item write moto stores, before and after, by DynamoDB's
                    rules), create -> execution ended, every table, / files
  largest item      the largest item of any table at the end, as tests/unit/
                    test_item_sizes.py bounds it (its wire form as JSON); its size by
                    DynamoDB's rules beside it
  largest response  the largest body a user's walk gets: GET /jobs, GET /jobs/{id} and
                    GET /share/{token}, each followed through `next_cursor` when paged
  worker RSS        peak of the sum over a worker's process tree (the worker and its
                    develop processes), sampled with psutil, the largest over workers;
                    the processes it summed are printed (and in the JSON), to tell a
                    worker that grows from one more process
  shards            distinct `shard` values of the job's file items; "at once": most
                    workers developing at the same sample
  task failures     every task of the execution that failed or timed out, with its
                    error and cause (what sent a shard to a second attempt), printed

    .venv/bin/python -m benchmarks.big_job [--files 100,1000,5000] [--shard-size 200]
        [--pool 2] [--json PATH] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.parse import urlencode
from urllib.request import urlopen

import moto
import psutil
from moto.moto_api._internal.models import moto_api_backend
from rich.console import Console
from rich.table import Table

from benchmarks.ddb_meter import WriteMeter, item_size, summary
from benchmarks.orchestration import state_durations
from darkroom import names, pipeline
from darkroom.api.client import ApiClient
from darkroom.aws.executions import Executions
from darkroom.aws.job_store import JobStore
from darkroom.cli.studio_client import StudioClient
from darkroom.imaging.fixtures.dng import write_dng
from darkroom.local import call_recorder
from darkroom.local.cloud import LocalCloud, LocalCloudConfig, state_machine_arn
from darkroom.settings import ApiLimits

FIXTURE_SIDE = 64  # the smallest frame the fixture writer makes
DISTINCT_FRAMES = 8
SAMPLE_SECONDS = 0.1
# The targets.
OVERHEAD_TARGET_MS = 20.0
OVERHEAD_TARGET_FILES = 5000
ITEM_TARGET_BYTES = 100 * 1024
RESPONSE_TARGET_BYTES = 1024 * 1024
RSS_TARGET_RATIO = 1.1
RSS_BASE_FILES = 100
SHAREABLE = {"DONE", "DONE_WITH_ERRORS"}


# -- arithmetic -------------------------------------------------------------------------
def union_seconds(intervals: Iterable[tuple[float, float]], start: float, end: float) -> float:
    """Seconds of [start, end] covered by at least one interval."""
    covered = 0.0
    reach = start
    for lo, hi in sorted(intervals):
        lo, hi = max(lo, reach), min(hi, end)
        if hi > lo:
            covered += hi - lo
            reach = hi
    return covered


def overhead_per_file_ms(wall: float, developing: float, files: int) -> float:
    """Orchestration overhead per file: the job's wall time not spent developing."""
    return 1000.0 * (wall - developing) / files


def json_item_bytes(item: dict[str, Any]) -> int:
    """test_item_sizes' bound of an item: its wire form as JSON."""
    return len(json.dumps(item, ensure_ascii=False, default=str).encode())


def epoch(iso: str | None) -> float | None:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() if iso else None


def targets(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target of the issue: the figure it is judged on, and met (None: no row
    of the size it needs, or that size's job did not finish: a job that failed early
    has no overhead or worker to judge)."""
    out = []
    at = {r["files"]: r for r in rows if r["status"] in SHAREABLE}
    big = at.get(OVERHEAD_TARGET_FILES)
    out.append(
        {
            "target": f"overhead/file <= {OVERHEAD_TARGET_MS:g} ms at {OVERHEAD_TARGET_FILES:,}",
            "value": None if big is None else round(big["overhead_ms_per_file"], 2),
            "met": None if big is None else big["overhead_ms_per_file"] <= OVERHEAD_TARGET_MS,
        }
    )
    item = max((r["largest_item"]["json_bytes"] for r in rows), default=0)
    out.append(
        {
            "target": "largest item <= 100 KB",
            "value": item,
            "met": item <= ITEM_TARGET_BYTES if rows else None,
        }
    )
    responses = [r["largest_response"] for r in rows]
    largest = max((r["bytes"] for r in responses), default=0)
    failed = [r for r in responses if r["errors"]]
    out.append(
        {
            "target": "largest response <= 1 MB (every page answered 2xx)",
            "value": largest,
            "met": (largest <= RESPONSE_TARGET_BYTES and not failed) if rows else None,
        }
    )
    base, top = at.get(RSS_BASE_FILES), at.get(max(at, default=0))
    ratio = None
    if base and top and top is not base and base["worker_peak_rss_bytes"]:
        ratio = top["worker_peak_rss_bytes"] / base["worker_peak_rss_bytes"]
    out.append(
        {
            "target": f"worker RSS at {max(at, default=0):,} <= {RSS_TARGET_RATIO}x at "
            f"{RSS_BASE_FILES}",
            "value": None if ratio is None else round(ratio, 3),
            "met": None if ratio is None else ratio <= RSS_TARGET_RATIO,
        }
    )
    return out


# -- fixtures ---------------------------------------------------------------------------
def small_shoot(cache: Path, count: int) -> list[Path]:
    """`count` decodable DNGs: a few distinct frames, copied under numbered names."""
    frames = [
        path
        if (path := cache / "frames" / f"frame{seed}.dng").exists()
        else write_dng(path, width=FIXTURE_SIDE, height=FIXTURE_SIDE, seed=seed)
        for seed in range(1, DISTINCT_FRAMES + 1)
    ]
    shoot = cache / f"shoot-{count}"
    shoot.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = shoot / f"DSC_{i + 1:05d}.dng"
        if not path.exists():
            shutil.copyfile(frames[i % len(frames)], path)
        paths.append(path)
    return paths


# -- watching the workers -----------------------------------------------------------------
class WorkerWatch:
    """Samples each pool instance's process tree: peak RSS, and when it is developing."""

    def __init__(self, cloud: LocalCloud) -> None:
        self._cloud = cloud
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-watch", daemon=True)
        self.peak_tree: dict[str, int] = {}
        self.peak_worker: dict[str, int] = {}
        # The largest tree's processes when it peaked: (when, [(role, pid, age, rss)]).
        self.peak_parts: dict[str, tuple[float, list[tuple[str, int, float, int]]]] = {}
        self.peak_worker_at: dict[str, float] = {}
        self.intervals: list[tuple[str, float, float]] = []
        self.most_at_once = 0
        self._open: dict[str, tuple[float, float]] = {}  # instance -> (first, last) seen

    def __enter__(self) -> WorkerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for instance, (first, last) in self._open.items():
            self.intervals.append((instance, first, last))
        self._open.clear()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            now = time.time()
            developing = 0
            for instance in self._cloud.instance_ids:
                if self._sample(instance, now):
                    developing += 1
            self.most_at_once = max(self.most_at_once, developing)

    def _sample(self, instance: str, now: float) -> bool:
        assert self._cloud.instances is not None
        pid = self._cloud.instances.pid(instance)
        busy = False
        if pid is not None:
            try:
                worker = psutil.Process(pid)
                rss = worker.memory_info().rss
                parts = [("worker", pid, now - worker.create_time(), rss)]
                for child in worker.children(recursive=True):
                    try:
                        command = " ".join(child.cmdline())
                        # multiprocessing's spawned processes (not its resource tracker)
                        spawned = "spawn_main" in command
                        busy = busy or spawned
                        role = (
                            "develop"
                            if spawned
                            else "resource tracker"
                            if ("resource_tracker" in command)
                            else command[:60]
                        )
                        # With its age: an old process lingering, or a new one.
                        age = now - child.create_time()
                        parts.append((role, child.pid, age, child.memory_info().rss))
                    except psutil.Error:
                        continue
                tree = sum(part[-1] for part in parts)
                if rss > self.peak_worker.get(instance, 0):
                    self.peak_worker[instance] = rss
                    self.peak_worker_at[instance] = now
                if tree > self.peak_tree.get(instance, 0):
                    self.peak_tree[instance] = tree
                    self.peak_parts[instance] = (now, parts)
            except psutil.Error:
                pass
        if busy:
            first, _ = self._open.get(instance, (now, now))
            self._open[instance] = (first, now)
        elif instance in self._open:
            first, last = self._open.pop(instance)
            self.intervals.append((instance, first, last))
        return busy


# -- the user's walk over the API ---------------------------------------------------------
def get_raw(url: str) -> tuple[int, bytes]:
    try:
        with urlopen(url, timeout=120) as response:
            return int(response.status), response.read()
    except HTTPError as exc:
        return exc.code, exc.read()


def walk(base_url: str, paths: Iterable[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Every page of each (path, query), following `next_cursor`: path, status, bytes."""
    pages = []
    for path, query in paths:
        cursor: str | None = None
        while True:
            params = {**query, **({"cursor": cursor} if cursor else {})}
            url = path + ("?" + urlencode(params) if params else "")
            status, body = get_raw(base_url.rstrip("/") + url)
            pages.append({"path": url, "status": status, "bytes": len(body)})
            try:
                cursor = json.loads(body).get("next_cursor") if status < 300 else None
            except (ValueError, AttributeError):
                cursor = None
            if not cursor:
                break
    return pages


def largest_response(pages: list[dict[str, Any]]) -> dict[str, Any]:
    top = max(pages, key=lambda p: p["bytes"])
    return {
        "bytes": top["bytes"],
        "path": top["path"],
        "pages": len(pages),
        "errors": [p for p in pages if p["status"] >= 300],
    }


# -- the tables at the end ----------------------------------------------------------------
def largest_item(ddb: Any) -> dict[str, Any]:
    best: dict[str, Any] = {"json_bytes": 0, "ddb_bytes": 0, "table": None, "key": None}
    for schema in names.TABLES:
        for page in ddb.get_paginator("scan").paginate(TableName=schema.name):
            for item in page["Items"]:
                size = json_item_bytes(item)
                if size > best["json_bytes"]:
                    key = [schema.partition_key, schema.sort_key]
                    best = {
                        "json_bytes": size,
                        "ddb_bytes": item_size(item),
                        "table": schema.name,
                        "key": {k: item[k] for k in key if k in item},
                    }
    return best


# -- one job --------------------------------------------------------------------------------
def cloud_config(state_dir: Path, files: int, pool: int, shard_size: int) -> LocalCloudConfig:
    api_settings: dict[str, Any] = {}
    if files > ApiLimits().max_files_per_job:
        # Only where the API's own limit is below the size asked for.
        api_settings["max_files_per_job"] = files
    return LocalCloudConfig(
        port=0,
        state_dir=state_dir,
        pool_size=pool,
        record_calls=True,
        api_settings=api_settings,
        shard_size=shard_size,
    )


def run_one(files: list[Path], args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    n = len(files)
    meter = WriteMeter()
    state_dir = scratch / f"cloud-{n}-{time.strftime('%Y%m%dT%H%M%S')}"
    config = cloud_config(state_dir, n, args.pool, args.shard_size)
    with LocalCloud(config) as cloud, meter.installed():
        studio = StudioClient(ApiClient(cloud.api_url, timeout=300))
        executions = Executions(
            state_machine_arn(cloud.config.region), cloud.client("stepfunctions")
        )
        meter.take()
        with WorkerWatch(cloud) as watch:
            started = time.time()
            job_id = studio.upload(files, name=f"big job {n}", parallel=8)
            submitted = time.time()
            # The end is the job's own updated_at, not when a poll saw it: polling as
            # often as a watching user does (each GET /jobs/{id} reads the execution's
            # history) would be the local cloud's largest load, not the job's.
            view = studio.wait(job_id, timeout=600 + 2.0 * n, poll=2.0)
            observed = time.time()
            arn = view.get("execution_arn") or executions.arn_for(pipeline.execution_name(job_id))
            deadline = time.monotonic() + 120
            while executions.status(arn) == "RUNNING" and time.monotonic() < deadline:
                time.sleep(0.25)
            writes = meter.take()
            calls = call_recorder.read(cloud.calls_path)
        history = executions.history(arn)
        records = list(JobStore(names.JOBS_TABLE, cloud.client("dynamodb")).files(job_id))
        walked: list[tuple[str, dict[str, Any]]] = [
            ("/jobs", {"limit": 100}),
            (f"/jobs/{job_id}", {}),
        ]
        if view["status"] in SHAREABLE:
            walked.append((f"/share/{studio.share(job_id)['token']}", {}))
        pages = walk(cloud.api_url, walked)
        item = largest_item(cloud.client("dynamodb"))
    # moto's state is the process's: the next size's cloud starts from nothing. Reset
    # once this one is down, so none of its schedules fires at functions already gone.
    moto_api_backend.reset()

    begin = epoch(view.get("submitted_at")) or submitted
    # The first terminal view's updated_at is when the job turned terminal (finished_at
    # is when MarkDone began, before it reads the file items).
    end = epoch(view.get("updated_at")) or observed
    marked = epoch(view.get("finished_at")) or end
    wall = end - begin
    developing = union_seconds(((lo, hi) for _, lo, hi in watch.intervals), begin, end)
    billed = summary(writes)
    s3 = Counter(
        ("presigned " if c["presign"] else "") + c["operation"]
        for c in calls
        if c["service"] == "s3"
    )
    return {
        "files": n,
        "job_id": job_id,
        "status": view["status"],
        "state_dir": str(state_dir),
        "files_done": view.get("files_done"),
        "error": view.get("error"),
        "cause": view.get("cause"),
        "upload_seconds": round(submitted - started, 2),
        "wall_seconds": round(wall, 3),
        "client_wall_seconds": round(observed - submitted, 3),
        "developing_seconds": round(developing, 3),
        "marking_done_seconds": round(end - marked, 3),
        "overhead_ms_per_file": round(overhead_per_file_ms(wall, developing, n), 3),
        "shards": len({r.shard for r in records}) or 1,
        "shards_at_once": watch.most_at_once,
        "develop_intervals": [
            {"instance": i, "start": round(lo - begin, 2), "end": round(hi - begin, 2)}
            for i, lo, hi in sorted(watch.intervals, key=lambda t: t[1])
        ],
        "ddb": billed,
        "wcu_per_file": round(billed["units"] / n, 3),
        "largest_item": item,
        "largest_response": largest_response(pages),
        "pages": pages,
        "worker_peak_rss_bytes": max(watch.peak_tree.values(), default=0),
        "worker_process_peak_rss_bytes": max(watch.peak_worker.values(), default=0),
        "worker_peak_tree": peak_tree(watch, begin),
        "state_transitions": sum(1 for e in history if e.get("stateEnteredEventDetails")),
        "task_failures": task_failures(history),
        "lambda_tasks": sum(
            1 for e in history if e["type"] in {"TaskScheduled", "LambdaFunctionScheduled"}
        ),
        "seconds_per_state": {k: round(v, 2) for k, v in state_durations(history).items()},
        "s3_calls": dict(s3),
    }


def task_failures(history: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Every task that failed or timed out (a lost worker's heartbeat, a Lambda's error):
    what sent a shard to its second attempt, or the job down its failure path."""
    failures = []
    for event in history:
        if not event["type"].endswith(("Failed", "TimedOut")):
            continue
        for key, details in event.items():
            if key.endswith("EventDetails") and isinstance(details, dict):
                failures.append(
                    {
                        "type": event["type"],
                        "error": str(details.get("error", "")),
                        "cause": str(details.get("cause", ""))[:300],
                    }
                )
    return failures


def peak_tree(watch: WorkerWatch, begin: float) -> dict[str, Any] | None:
    """The largest process tree when it peaked: which processes, how large, and when
    (seconds after submit), to tell a growing worker from one more process."""
    if not watch.peak_tree:
        return None
    instance = max(watch.peak_tree, key=watch.peak_tree.__getitem__)
    when, parts = watch.peak_parts[instance]
    largest = max(watch.peak_worker, key=watch.peak_worker.__getitem__)
    return {
        "worker_process_at_seconds": round(watch.peak_worker_at[largest] - begin, 1),
        "instance": instance,
        "at_seconds": round(when - begin, 1),
        "processes": [
            {"role": role, "pid": pid, "age_seconds": round(age, 1), "rss_bytes": size}
            for role, pid, age, size in parts
        ],
    }


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "moto": moto.__version__,
        "platform": platform.platform(),
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
    }


def _mb(value: int) -> str:
    return f"{value / 1024**2:.0f}"


def report(console: Console, rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    table = Table(
        title=f"big RAW jobs, {FIXTURE_SIDE}x{FIXTURE_SIDE} DNGs, pool of {args.pool}, "
        f"shard size {args.shard_size} (local cloud)"
    )
    columns = (
        "files", "status", "shards (at once)", "upload s", "wall s", "developing s",
        "overhead ms/file", "WCU/file", "largest item B", "largest response B",
        "worker RSS MB",
    )  # fmt: skip
    for column in columns:
        table.add_column(column, justify="right")
    for r in rows:
        response = r["largest_response"]
        table.add_row(
            f"{r['files']:,}",
            str(r["status"]),
            f"{r['shards']} ({r['shards_at_once']})",
            f"{r['upload_seconds']:.1f}",
            f"{r['wall_seconds']:.1f}",
            f"{r['developing_seconds']:.1f}",
            f"{r['overhead_ms_per_file']:.1f}",
            f"{r['wcu_per_file']:.2f}",
            f"{r['largest_item']['json_bytes']:,}",
            f"{response['bytes']:,}"
            + (f" ({len(response['errors'])} failed)" if response["errors"] else ""),
            f"{_mb(r['worker_peak_rss_bytes'])} ({_mb(r['worker_process_peak_rss_bytes'])})",
        )
    console.print(table)
    console.print("worker RSS: the process tree's peak (the worker process alone in brackets)")
    for r in rows:
        tree = r.get("worker_peak_tree")
        if tree:
            parts = ", ".join(f"{p['role']} {_mb(p['rss_bytes'])}" for p in tree["processes"])
            console.print(f"  {r['files']:,} files, {tree['at_seconds']:.0f} s in: {parts} MB")
    for r in rows:
        for failure in r.get("task_failures", []):
            console.print(
                f"  {r['files']:,} files: {failure['type']} {failure['error']}: {failure['cause']}"
            )
    for r in rows:
        if r["status"] not in SHAREABLE:
            console.print(
                f"{r['files']:,} files: job {r['job_id']} ended {r['status']} "
                f"({r['error']}: {r['cause']}); seconds per state {r['seconds_per_state']}"
            )
    for t in targets(rows):
        met = {True: "met", False: "NOT MET", None: "not measured"}[t["met"]]
        console.print(f"  {t['target']}: {t['value']} -> {met}")
    m = machine()
    console.print(
        f"machine: {m['cores']} cores, {m['memory_gb']} GB, Python {m['python']}, "
        f"moto {m['moto']}, {m['platform']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", default="100,1000,5000", help="comma-separated job sizes")
    parser.add_argument("--shard-size", type=int, default=200)
    parser.add_argument("--pool", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write every figure here as JSON")
    parser.add_argument(
        "--work", type=Path, help="keep the DNGs and each cloud's state and logs here"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.files.split(",") if s.strip()]
    # One row per size, wide enough for every column in a log as on a terminal.
    console = Console(width=200)
    rows = []
    with tempfile.TemporaryDirectory(prefix="big-job-") as tmp:
        scratch = args.work or Path(tmp)
        for n in sizes:
            console.print(f"[bold]{n:,} files[/bold]")
            rows.append(run_one(small_shoot(scratch / "fixtures", n), args, scratch))
            if args.json:
                write_json(args.json, rows, args)
    report(console, rows, args)
    if args.json:
        write_json(args.json, rows, args)


def write_json(path: Path, rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    document = {
        "machine": machine(),
        "pool": args.pool,
        "shard_size": args.shard_size,
        "rows": rows,
        "targets": targets(rows),
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
