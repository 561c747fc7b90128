"""Chaos on the embedded local cloud: do jobs survive random kills, and do deliveries?

N jobs go through the HTTP API (create, upload to the presigned URLs, submit) while
processes die for real: the orchestrator at submit (one, two or all three of its tries),
the next invocation of a random task function (before its handler or after it has done
its work), and the worker mid-run (SIGKILL of the instance's process once the job has
developed a random number of its files). Every job that delivers gets a share link, which
is polled until the end; some delivered jobs are then reprocessed with another recipe,
and some of those lose their worker midway. Every job that ends FAILED is reprocessed
once, as an operator would, and counts as recovered if it then ends DONE.

    .venv/bin/python -m benchmarks.chaos [--jobs 20] [--files 3] [--seed 1] [--kill-rate 0.5]

Exit status 1 when a job was lost or a delivery damaged, else 0.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from darkroom import keys, names, pipeline
from darkroom.api.client import ApiCallError, ApiClient, get_file, put_file
from darkroom.aws.executions import Executions
from darkroom.imaging.fixtures import make_demo_shoot
from darkroom.local.cloud import LocalCloud, LocalCloudConfig, state_machine_arn
from darkroom.names import Function

COLUMNS = """\
columns of the table:
  jobs submitted            jobs created, uploaded and submitted through the API
  ended DONE                jobs whose last status is DONE (recovered ones included)
  ended DONE_WITH_ERRORS    jobs whose last status is DONE_WITH_ERRORS
  ended FAILED              jobs whose last status is FAILED, after one operator reprocess
  still non-terminal (lost) jobs neither DONE, DONE_WITH_ERRORS nor FAILED when their
                            --timeout ran out: nothing will ever finish them
  recovered by a reprocess  jobs that ended FAILED, were reprocessed once (as an
                            operator would) and then ended DONE
  deliveries damaged        delivered jobs whose share link answered anything but 200 at
                            least once, or whose renditions (fetched through the share)
                            changed bytes after a reprocess that failed
  originals changed         RAW originals whose SHA-256 in the raw bucket differs from the
                            uploaded file, or that are gone
  kills                     kills that happened, then by kind: the orchestrator at submit
                            (how many of its tries), a task at its state (from the
                            execution history), the worker mid-run; an armed task kill
                            that no invocation reached is not counted
  time to recover           from a kill to the killed job's next progress: a state exited,
                            an execution started or ended (Step Functions history); for an
                            orchestrator kill, from its first kill to the job's execution
                            starting. Median and max over the kills that recovered
  kills never recovered     kills after which the job made no progress at all
"""

TASK_FUNCTIONS = (
    Function.REGISTER_JOB,
    Function.START_WORKER,
    Function.AWAIT_WORKER,
    Function.STOP_WORKER,
    Function.MARK_DONE,
    Function.MARK_FAILED,
)
SHAREABLE = {"DONE", "DONE_WITH_ERRORS"}
TERMINAL = {*SHAREABLE, "FAILED"}
PROGRESS_EVENTS = {
    "ExecutionStarted",
    "ExecutionSucceeded",
    "ExecutionFailed",
    "ExecutionAborted",
    "ExecutionTimedOut",
}
CRASH = "Runtime.ExitError"
# The orchestrator runs once and is retried twice for each submission (Lambda's async
# retries): three kills lose all its tries.
ORCHESTRATOR_TRIES = 3


@dataclass
class Plan:
    """What happens to one job, drawn up front from the seed."""

    orchestrator_kills: int = 0
    task_kill: tuple[str, bool] | None = None  # (function, after its handler)
    worker_kill_after: int | None = None  # files developed before its worker is killed
    reprocess_ev: float | None = None
    reprocess_worker_kill_after: int | None = None


@dataclass
class Kill:
    kind: str
    job_id: str
    at: float  # epoch seconds
    recovered_at: float | None = None


@dataclass
class JobRun:
    index: int
    files: list[Path]
    plan: Plan
    job_id: str = ""
    status: str = "NOT SUBMITTED"
    recovered: bool = False
    share_url: str | None = None
    damage: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Chaos:
    def __init__(self, cloud: LocalCloud, args: argparse.Namespace, scratch: Path) -> None:
        self.cloud = cloud
        self.args = args
        self.scratch = scratch
        self.api = ApiClient(cloud.api_url)
        self.executions = Executions(
            state_machine_arn(cloud.config.region), cloud.client("stepfunctions")
        )
        self.kills: list[Kill] = []
        self.api_errors: Counter[int] = Counter()
        self.armed_task_kills: list[tuple[str, threading.Event]] = []
        self._lock = threading.Lock()
        # One submission at a time: an orchestrator kill then hits this job's tries only.
        self._submitting = threading.Lock()
        self._shares: dict[str, JobRun] = {}
        self._done = threading.Event()
        # Set on Ctrl-C: every job's thread gives up its waiting.
        self._abort = threading.Event()

    # -- the API ------------------------------------------------------------------------
    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.api.call(method, path, body)

    def view(self, job_id: str) -> dict[str, Any] | None:
        try:
            return dict(self.call("GET", f"/jobs/{job_id}"))
        except ApiCallError as exc:
            if exc.status in {404, 0} or exc.status >= 500:
                # Polled again; counted, so that an erring API does not pass for a lost job.
                with self._lock:
                    self.api_errors[exc.status] += 1
                return None
            raise

    # -- one job --------------------------------------------------------------------------
    def drive(self, run: JobRun) -> None:
        try:
            self._drive(run)
        except Exception as exc:  # reported in the table's notes, never hidden
            run.notes.append(f"benchmark error: {type(exc).__name__}: {exc}")

    def _drive(self, run: JobRun) -> None:
        # Jobs arrive over time, as a studio's do, not all in the same second.
        if self._abort.wait(run.index * self.args.arrival):
            return
        plan = run.plan
        if plan.task_kill is not None:
            function, after = plan.task_kill
            fired = self.cloud.kill_next_invocation(function, after_handler=after)
            with self._lock:
                self.armed_task_kills.append((function, fired))
        created = self.call(
            "POST",
            "/jobs",
            {
                "name": f"chaos {run.index}",
                "files": [{"name": p.name, "size": p.stat().st_size} for p in run.files],
            },
        )
        run.job_id = str(created["job_id"])
        by_name = {p.name: p for p in run.files}
        for upload in created["uploads"]:
            put_file(upload["url"], by_name[upload["name"]])
        self._submit(run)
        view = self._wait(run, since=None, kill_after=plan.worker_kill_after)
        if view is None:
            return
        if view["status"] == "FAILED":
            view = self._operator_reprocess(run, None)
            if view is None:
                return
        if view["status"] not in SHAREABLE:
            return
        share = self.call("POST", f"/jobs/{run.job_id}/shares", {})
        run.share_url = str(share["url"])
        delivered = self._shared_renditions(run)
        if delivered is None:
            run.damage.append("the share of a delivered job did not answer 200")
            return
        with self._lock:
            self._shares[run.share_url] = run
        if plan.reprocess_ev is None:
            return
        recipe = {"exposure": {"compensation_ev": plan.reprocess_ev}}
        arn = self._reprocess(run, recipe)
        if arn is None:
            return
        view = self._wait(run, since=arn, kill_after=plan.reprocess_worker_kill_after)
        if view is None:
            return
        if self.executions.status(arn) != "SUCCEEDED":
            now_shared = self._shared_renditions(run)
            if now_shared is None:
                run.damage.append("share not 200 after a failed reprocess")
            elif now_shared != delivered:
                changed = sum(1 for k, v in delivered.items() if now_shared.get(k) != v)
                run.damage.append(f"{changed} delivered renditions changed by a failed reprocess")
            if view["status"] == "FAILED":
                self._operator_reprocess(run, recipe)

    def _submit(self, run: JobRun) -> None:
        """Submit with the planned orchestrator kills armed. The next job may arm its own
        only once this job's tries are over (its execution started, or every try lost),
        so that a late retry of this job's submission never takes another job's kill."""
        with self._submitting:
            fired = [
                self.cloud.kill_next_invocation(Function.ORCHESTRATOR)
                for _ in range(run.plan.orchestrator_kills)
            ]
            self.call("POST", f"/jobs/{run.job_id}/submit")
            run.status = "SUBMITTED"
            first: float | None = None
            arn = self.executions.arn_for(pipeline.execution_name(run.job_id))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not self._abort.is_set():
                if first is None and any(event.is_set() for event in fired):
                    first = time.time()
                if self.executions.status(arn) != "MISSING":
                    break
                if sum(e.is_set() for e in fired) >= ORCHESTRATOR_TRIES:
                    time.sleep(1)  # the last try's failure is being recorded
                    break
                time.sleep(0.1)
            if not fired:
                return
            if first is None and any(event.is_set() for event in fired):
                first = time.time()
            if first is None:
                run.notes.append("orchestrator kills armed but none happened")
                return
            killed = sum(e.is_set() for e in fired)
            kind = f"orchestrator, {killed} of {ORCHESTRATOR_TRIES} tries"
            with self._lock:
                self.kills.append(Kill(kind, run.job_id, first))

    def _reprocess(self, run: JobRun, recipe: dict[str, Any] | None) -> str | None:
        """Reprocess, retried while the API says the last execution has not ended yet."""
        body = {"recipe": recipe} if recipe is not None else {}
        deadline = time.monotonic() + 60
        while True:
            try:
                return str(
                    self.call("POST", f"/jobs/{run.job_id}/reprocess", body)["execution_arn"]
                )
            except ApiCallError as exc:
                if exc.status != 409 or time.monotonic() > deadline:
                    run.notes.append(f"reprocess refused: {exc.status} {exc.message}")
                    return None
                time.sleep(1)

    def _operator_reprocess(
        self, run: JobRun, recipe: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        arn = self._reprocess(run, recipe)
        if arn is None:
            return None
        view = self._wait(run, since=arn, kill_after=None)
        if view is not None and view["status"] == "DONE":
            run.recovered = True
        return view

    def _wait(
        self, run: JobRun, *, since: str | None, kill_after: int | None
    ) -> dict[str, Any] | None:
        """The job once terminal (and, for a reprocess, once its execution has ended);
        None if it is not by the timeout. Kills the job's worker once it has developed
        `kill_after` files, if it gets there before finishing."""
        deadline = time.monotonic() + self.args.timeout
        while time.monotonic() < deadline:
            view = self.view(run.job_id)
            if view is not None:
                run.status = str(view["status"])
                if kill_after is not None and self._kill_worker(run, view, kill_after):
                    kill_after = None
                ended = since is None or self.executions.status(since) != "RUNNING"
                if run.status in TERMINAL and ended:
                    if kill_after is not None:
                        run.notes.append("finished before its worker could be killed")
                    return view
            # Quicker while a kill waits for its moment: files develop in about a second.
            if self._abort.wait(self.args.poll if kill_after is None else 0.05):
                return None
        if kill_after is not None:
            run.notes.append("its worker kill never came: the job did not reach it")
        return None

    def _kill_worker(self, run: JobRun, view: dict[str, Any], after: int) -> bool:
        instance = view.get("instance_id")
        if view["status"] != "PROCESSING" or not instance or view["files_done"] < after:
            return False
        if view["files_done"] >= view["files_total"]:
            return False
        assert self.cloud.instances is not None
        if self.cloud.instances.pid(instance) is None:
            return False
        self.cloud.instances.kill(instance)
        with self._lock:
            self.kills.append(Kill("worker mid-run", run.job_id, time.time()))
        return True

    def _shared_renditions(self, run: JobRun) -> dict[str, str] | None:
        """SHA-256 of every rendition the share link offers, by its file and rendition;
        None if the link does not answer 200."""
        assert run.share_url is not None
        try:
            document = ApiClient(run.share_url).fetch("GET", run.share_url)
        except ApiCallError:
            return None
        hashes = {}
        for entry in document.get("files", []):
            for rendition in entry.get("renditions", []):
                path = self.scratch / "downloads" / run.job_id / "rendition"
                get_file(str(rendition["url"]), path)
                hashes[f"{entry['name']}/{rendition['rendition']}"] = sha256(path.read_bytes())
        return hashes

    # -- throughout -------------------------------------------------------------------------
    def poll_shares(self) -> None:
        while not self._done.wait(self.args.share_poll):
            with self._lock:
                shares = list(self._shares.items())
            for url, run in shares:
                try:
                    ApiClient(url).fetch("GET", url)
                except ApiCallError as exc:
                    reason = f"share answered {exc.status} ({exc.message})"
                    with self._lock:
                        if reason not in run.damage:
                            run.damage.append(reason)

    def stop_polling(self) -> None:
        self._done.set()

    def abort(self) -> None:
        self._abort.set()

    # -- afterwards ------------------------------------------------------------------------
    def originals_changed(self, runs: list[JobRun]) -> int:
        s3 = self.cloud.client("s3")
        changed = 0
        for run in runs:
            if not run.job_id:
                continue
            for path in run.files:
                try:
                    body = s3.get_object(
                        Bucket=names.RAW_BUCKET, Key=keys.raw_key(run.job_id, path.name)
                    )["Body"].read()
                except s3.exceptions.NoSuchKey:
                    body = None
                if body is None or sha256(body) != sha256(path.read_bytes()):
                    changed += 1
        return changed

    def attribute_task_kills(self, job_ids: set[str]) -> None:
        """Each crash Step Functions recorded (a task failed Runtime.ExitError) is one of
        the task kills: its job, its time."""
        for execution in self.executions.list():
            job_id = self._job_of(execution["executionArn"])
            if job_id not in job_ids:
                continue
            state = ""
            for event in self.executions.history(execution["executionArn"]):
                if details := event.get("stateEnteredEventDetails"):
                    state = details["name"]
                elif (
                    event["type"] == "TaskFailed"
                    and event["taskFailedEventDetails"].get("error") == CRASH
                ):
                    self.kills.append(Kill(f"task {state}", job_id, event["timestamp"].timestamp()))

    def measure_recovery(self, job_ids: set[str]) -> None:
        progress: dict[str, list[float]] = {job_id: [] for job_id in job_ids}
        for execution in self.executions.list():
            job_id = self._job_of(execution["executionArn"])
            if job_id not in progress:
                continue
            for event in self.executions.history(execution["executionArn"]):
                if event["type"] in PROGRESS_EVENTS or event["type"].endswith("StateExited"):
                    progress[job_id].append(event["timestamp"].timestamp())
        for kill in self.kills:
            later = [t for t in progress.get(kill.job_id, []) if t > kill.at]
            kill.recovered_at = min(later) if later else None

    def _job_of(self, execution_arn: str) -> str:
        document = json.loads(self.executions.describe(execution_arn).get("input") or "{}")
        return str(document.get("job_id", "")) if isinstance(document, dict) else ""


def make_plans(args: argparse.Namespace, rng: random.Random) -> list[Plan]:
    def maybe(rate: float) -> bool:
        return rng.random() < rate

    plans = []
    for _ in range(args.jobs):
        plan = Plan()
        if maybe(args.kill_rate):
            plan.orchestrator_kills = rng.randint(1, ORCHESTRATOR_TRIES)
        if maybe(args.kill_rate):
            plan.task_kill = (rng.choice(TASK_FUNCTIONS), maybe(0.5))
        if maybe(args.kill_rate):
            plan.worker_kill_after = rng.randrange(args.files)
        if maybe(args.reprocess_rate):
            plan.reprocess_ev = rng.choice((1.5, -1.0, 0.7))
            if maybe(args.kill_rate):
                plan.reprocess_worker_kill_after = rng.randrange(args.files)
        plans.append(plan)
    return plans


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.chaos",
        description=(__doc__ or "").split("\n\n")[0],
        epilog=COLUMNS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--jobs", type=int, default=20, help="jobs to run (default 20)")
    parser.add_argument("--files", type=int, default=3, help="DNG files per job (default 3)")
    parser.add_argument("--seed", type=int, default=1, help="seed of every random choice")
    parser.add_argument(
        "--kill-rate",
        type=float,
        default=0.5,
        help="chance of each kind of kill for each job (default 0.5)",
    )
    parser.add_argument(
        "--reprocess-rate",
        type=float,
        default=0.5,
        help="chance that a delivered job is reprocessed with another recipe (default 0.5)",
    )
    parser.add_argument("--workers", type=int, default=2, help="pool instances (default 2)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=420.0,
        help="seconds a job (or a reprocess) may take before it counts as lost (default 420)",
    )
    parser.add_argument(
        "--arrival", type=float, default=3.0, help="seconds between two jobs' arrivals"
    )
    parser.add_argument("--poll", type=float, default=0.25, help="job polling interval, s")
    parser.add_argument("--share-poll", type=float, default=1.0, help="share polling interval, s")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.files < 1:
        parser.error("--jobs and --files must be at least 1")
    if not 0 <= args.kill_rate <= 1 or not 0 <= args.reprocess_rate <= 1:
        parser.error("--kill-rate and --reprocess-rate are chances between 0 and 1")
    return args


def percent(part: int, whole: int) -> str:
    return f"{part}" if not whole else f"{part} ({100 * part / whole:.0f}%)"


def report(
    console: Console, chaos: Chaos, runs: list[JobRun], args: argparse.Namespace, wall: float
) -> int:
    statuses = Counter(run.status for run in runs)
    submitted = sum(1 for run in runs if run.status != "NOT SUBMITTED")
    lost = sum(1 for run in runs if run.status not in TERMINAL and run.status != "NOT SUBMITTED")
    damaged = sum(1 for run in runs if run.damage)
    recovered = sum(1 for run in runs if run.recovered)
    originals = chaos.originals_changed(runs)
    kinds = Counter(kill.kind for kill in chaos.kills)
    delays = [k.recovered_at - k.at for k in chaos.kills if k.recovered_at is not None]
    never = sum(1 for k in chaos.kills if k.recovered_at is None)
    delivered = sum(1 for run in runs if run.share_url)

    def secs(values: list[float], pick: Callable[[list[float]], float]) -> str:
        return f"{pick(values):.1f} s" if values else "-"

    console.print(
        f"chaos on the local cloud: {args.jobs} jobs x {args.files} DNG files, "
        f"{args.workers} workers, kill rate {args.kill_rate}, reprocess rate "
        f"{args.reprocess_rate}, seed {args.seed}, {wall:.0f} s"
    )
    table = Table()
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("jobs submitted", f"{submitted}"),
        ("ended DONE", percent(statuses["DONE"], submitted)),
        ("ended DONE_WITH_ERRORS", percent(statuses["DONE_WITH_ERRORS"], submitted)),
        ("ended FAILED", percent(statuses["FAILED"], submitted)),
        ("still non-terminal (lost)", percent(lost, submitted)),
        ("recovered by a reprocess", f"{recovered}"),
        ("deliveries damaged", f"{damaged} of {delivered} delivered"),
        ("originals changed", f"{originals} of {sum(len(r.files) for r in runs)}"),
        ("kills", f"{len(chaos.kills)}"),
        *((f"  {kind}", f"{n}") for kind, n in sorted(kinds.items())),
        ("time to recover, median", secs(delays, statistics.median)),
        ("time to recover, max", secs(delays, max)),
        ("kills never recovered", f"{never}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    unfired = sum(1 for _, fired in chaos.armed_task_kills if not fired.is_set())
    console.print(
        "Every job that ended FAILED was reprocessed once, as an operator would; "
        f"{recovered} then ended DONE (counted in 'recovered by a reprocess')."
    )
    if chaos.api_errors:
        answers = ", ".join(
            f"{n} x {status or 'unreachable'}" for status, n in chaos.api_errors.items()
        )
        console.print(f"Job polls the API failed (polled again): {answers}.")
    if unfired:
        console.print(f"{unfired} armed task kills found no invocation to kill (not counted).")
    for run in runs:
        problems = run.damage + run.notes
        if run.status not in TERMINAL:
            problems = [f"lost: still {run.status}", *problems]
        if problems:
            console.print(f"  job {run.job_id or run.index}: " + "; ".join(problems))
    return 1 if lost or damaged else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    # Each kill makes the local Lambda runtime log the failed try; the table counts them.
    logging.getLogger("darkroom.local.lambda_runtime").setLevel(logging.ERROR)
    rng = random.Random(args.seed)
    plans = make_plans(args, rng)
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        config = LocalCloudConfig(
            port=0,
            state_dir=scratch / "cloud",
            pool_size=args.workers,
            # The integration suite's timings: a lost worker is noticed within seconds.
            worker_heartbeat_seconds=8,
            worker_heartbeat_interval_seconds=1.0,
            worker_poll_seconds=0.2,
            worker_idle_shutdown_seconds=3,
        )
        runs = [
            JobRun(
                n,
                make_demo_shoot(scratch / f"shoot{n}", count=args.files),
                plan,
            )
            for n, plan in enumerate(plans)
        ]
        with LocalCloud(config) as cloud:
            chaos = Chaos(cloud, args, scratch)
            started = time.monotonic()
            poller = threading.Thread(target=chaos.poll_shares, daemon=True)
            poller.start()
            with ThreadPoolExecutor(max_workers=args.jobs) as pool:
                try:
                    list(pool.map(chaos.drive, runs))
                except KeyboardInterrupt:
                    chaos.abort()
                    raise
            chaos.stop_polling()
            poller.join()
            job_ids = {run.job_id for run in runs if run.job_id}
            chaos.attribute_task_kills(job_ids)
            chaos.measure_recovery(job_ids)
            return report(console, chaos, runs, args, time.monotonic() - started)


if __name__ == "__main__":
    sys.exit(main())
