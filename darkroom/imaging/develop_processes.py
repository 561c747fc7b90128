"""Develop files in parallel, one process per core, each process one file at a time.

Processes, not threads: LibRaw, numpy and Pillow drop the GIL for their heavy parts but the
glue between them does not, and a process's memory goes back to the system when it ends,
so memory is bounded by the number of processes times one file's worth. Each slot knows
which file its process is developing, so a decoder crash (a segfault on a hostile file)
fails that one file, and a fresh process takes the slot's next file.

This module imports no imaging library at the top: a child sets its OpenMP thread count
before LibRaw loads.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from darkroom.imaging import usable_cores
from darkroom.recipes import Recipe, parse_recipe

# A long-lived process's heap only grows (fragmentation); a fresh one now and then keeps
# the bound honest at the cost of one interpreter start per this many files.
TASKS_PER_PROCESS = 50


@dataclass(frozen=True)
class _Task:
    src: Path
    out_dir: Path
    recipe: dict[str, Any]
    future: Future[Any]


def _child(conn: multiprocessing.connection.Connection, threads: int) -> None:
    # Before LibRaw (and its OpenMP runtime) loads: one process per core already uses
    # every core, more threads would only contend.
    os.environ["OMP_NUM_THREADS"] = str(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from darkroom.imaging.develop import DevelopError, develop_file

    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        src, out_dir, recipe = message
        try:
            result = develop_file(Path(src), Path(out_dir), parse_recipe(recipe), threads=threads)
            conn.send(("ok", result))
        except DevelopError as exc:
            conn.send(("error", exc))
        except BaseException as exc:
            name = Path(src).name
            conn.send(
                ("error", DevelopError("decode_failed", name, f"{type(exc).__name__}: {exc}"))
            )


class DevelopProcesses:
    """`count` processes developing files (default: one per core); submit() returns a
    Future of DevelopResult that fails with DevelopError."""

    def __init__(self, count: int | None = None) -> None:
        cores = usable_cores()
        self.count = max(1, count or cores)
        # Fewer processes than cores may still thread their resizes.
        self._threads = max(1, cores // self.count)
        self._context = multiprocessing.get_context("spawn")
        self._tasks: queue.Queue[_Task | None] = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()
        self._processes: set[multiprocessing.process.BaseProcess] = set()
        self._slots = [
            threading.Thread(target=self._slot, name=f"develop-{i}", daemon=True)
            for i in range(self.count)
        ]
        for slot in self._slots:
            slot.start()

    def submit(self, src: Path, out_dir: Path, recipe: Recipe) -> Future[Any]:
        future: Future[Any] = Future()
        if self._closed:
            raise RuntimeError("the develop processes are closed")
        self._tasks.put(_Task(Path(src), Path(out_dir), recipe.model_dump(mode="json"), future))
        return future

    def close(self, *, kill: bool = False) -> None:
        """Stop taking files. kill: end the processes now, failing the files they hold."""
        self._closed = True
        if kill:
            # Drain what has not started; those futures are cancelled.
            while True:
                try:
                    task = self._tasks.get_nowait()
                except queue.Empty:
                    break
                if task is not None:
                    task.future.cancel()
            with self._lock:
                for process in list(self._processes):
                    process.kill()
        for _ in self._slots:
            self._tasks.put(None)
        for slot in self._slots:
            slot.join(timeout=30)

    def pids(self) -> list[int]:
        """The developing processes' ids (for monitoring, and for tests that crash one)."""
        with self._lock:
            return [p.pid for p in self._processes if p.pid is not None]

    def __enter__(self) -> DevelopProcesses:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(kill=exc[0] is not None)

    # -- one slot: a thread in this process that feeds one child process ----------------
    def _spawn(self) -> tuple[multiprocessing.process.BaseProcess, Any]:
        ours, theirs = self._context.Pipe()
        process = self._context.Process(
            target=_child, args=(theirs, self._threads), name="darkroom-develop", daemon=True
        )
        process.start()
        theirs.close()
        with self._lock:
            self._processes.add(process)
        return process, ours

    def _retire(self, process: multiprocessing.process.BaseProcess, conn: Any) -> None:
        with self._lock:
            self._processes.discard(process)
        with contextlib.suppress(OSError, ValueError):
            conn.send(None)
        conn.close()
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join()

    def _slot(self) -> None:
        # Started eagerly: the interpreter and imaging libraries load while the first
        # files download.
        child: tuple[multiprocessing.process.BaseProcess, Any] | None = self._spawn()
        done = 0
        try:
            while True:
                task = self._tasks.get()
                if task is None:
                    return
                if not task.future.set_running_or_notify_cancel():
                    continue
                if child is None or done >= TASKS_PER_PROCESS:
                    if child is not None:
                        self._retire(*child)
                    child, done = self._spawn(), 0
                process, conn = child
                done += 1
                if not self._run(task, process, conn):
                    # The process died with the file: it failed; the next file gets a
                    # fresh process.
                    with self._lock:
                        self._processes.discard(process)
                    conn.close()
                    process.join(timeout=5)
                    child = None
        finally:
            if child is not None:
                self._retire(*child)

    def _run(self, task: _Task, process: multiprocessing.process.BaseProcess, conn: Any) -> bool:
        """Develop one file in `process`; False when the process did not survive it."""
        name = task.src.name
        try:
            conn.send((str(task.src), str(task.out_dir), task.recipe))
            ready = multiprocessing.connection.wait([conn, process.sentinel])
            if conn in ready:
                status, payload = conn.recv()
                if status == "ok":
                    task.future.set_result(payload)
                else:
                    task.future.set_exception(payload)
                return True
        except (EOFError, OSError):
            pass
        from darkroom.imaging.develop import DevelopError

        process.join(timeout=5)
        code = process.exitcode
        why = (
            f"the decoder crashed (signal {-code})"
            if code is not None and code < 0
            else f"the decoder process ended (exit code {code})"
        )
        if self._closed:
            why = "development was stopped"
        task.future.set_exception(DevelopError("decode_failed", name, why))
        return False
