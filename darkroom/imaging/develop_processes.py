"""Develop files in parallel, one process per core, each process one file at a time.

Processes, not threads: LibRaw, numpy and Pillow drop the GIL for their heavy parts but the
glue between them does not, and a process's memory goes back to the system when it ends,
so memory is bounded by the number of processes times one file's worth. Each slot knows
which file its process is developing, so a decoder crash (a segfault on a hostile file)
fails that one file, and a fresh process takes the slot's next file.

A hostile file can also make a decoder spin or allocate without end: each file has a time
limit (past it the slot kills its process: that file fails `timeout`), and each process a
memory limit (RLIMIT_DATA, set before any library loads: an allocation past it fails, and
the file with it, `out_of_memory`). Each process has a pipe of its own and no lock shared
with the others, so killing one cannot wedge the rest.

This module imports no imaging library: a child sets its OpenMP thread count before
LibRaw loads, and the process that feeds the children (the worker) never loads one.
OpenCV (sharpening, noise reduction, lens corrections) is imported where it is first
used, after the decoder: it maps some 150 MB of data when it loads, which would count
against the limit before the file's own decode.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import queue
import resource
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from darkroom.imaging import usable_cores
from darkroom.imaging.develop_result import DevelopError
from darkroom.recipes import Recipe, parse_recipe
from darkroom.sidecars import Sidecar

# A long-lived process's heap only grows (fragmentation); a fresh one now and then keeps
# the bound honest at the cost of one interpreter start per this many files.
TASKS_PER_PROCESS = 50

# How long a new process may take to load the imaging libraries before files are sent
# to it regardless (and their time limits start).
STARTUP_SECONDS = 120

# What a process runs for each file: develop_file's signature. Module-level, so a process
# can import it by name.
Develop = Callable[..., Any]


@dataclass(frozen=True)
class _Task:
    src: Path
    out_dir: Path
    recipe: dict[str, Any]
    future: Future[Any]
    sidecar: Sidecar | None = None
    watermark: Path | None = None


def _child(
    conn: multiprocessing.connection.Connection, threads: int, memory_limit_mb: int | None
) -> None:
    # Before LibRaw (and its OpenMP runtime) loads: one process per core already uses
    # every core, more threads would only contend.
    os.environ["OMP_NUM_THREADS"] = str(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if memory_limit_mb:
        # RLIMIT_DATA, not RLIMIT_AS: it counts the memory the process can write, not the
        # address space libraries and thread arenas reserve and never touch.
        limit = memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    import numpy as np

    from darkroom.imaging.develop import DevelopError, develop_file
    from darkroom.imaging.develop.decode import OUT_OF_MEMORY_REASON

    # OpenBLAS allocates its work buffer at the first matrix product and exits the
    # process if it cannot: have it do so now, while memory is plentiful (it keeps it).
    # Large enough for its full gemm path: small products take a path with no buffer.
    np.ones((512, 512)) @ np.ones((512, 512))
    # Sent after the limits are in place: unpickling it may import the imaging libraries.
    develop: Develop = conn.recv() or develop_file
    conn.send("ready")
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        src, out_dir, recipe, sidecar, watermark = message
        name = Path(src).name
        error: DevelopError
        try:
            # Only what is given: a `develop` of an older signature still runs.
            extra: dict[str, Any] = {"sidecar": sidecar} if sidecar is not None else {}
            if watermark is not None:
                extra["watermark"] = Path(watermark)
            result = develop(
                Path(src), Path(out_dir), parse_recipe(recipe), threads=threads, **extra
            )
        except DevelopError as exc:
            error = exc
        except MemoryError:
            error = DevelopError("out_of_memory", name, OUT_OF_MEMORY_REASON)
        except BaseException as exc:
            error = DevelopError("decode_failed", name, f"{type(exc).__name__}: {exc}")
        else:
            conn.send(("ok", result))
            continue
        if error.code == "out_of_memory" and memory_limit_mb:
            error = DevelopError(
                error.code, name, f"{error.reason} (limit {memory_limit_mb} MiB per process)"
            )
        conn.send(("error", error))


class DevelopProcesses:
    """`count` processes developing files (default: one per core); submit() returns a
    Future of DevelopResult that fails with DevelopError.

    file_timeout_seconds: how long one file may take before its process is killed (None:
    no limit). memory_limit_mb: what each process may allocate (None: no limit).
    develop: what a process runs for each file (default develop_file); a module-level
    callable with its signature.
    """

    def __init__(
        self,
        count: int | None = None,
        *,
        file_timeout_seconds: float | None = None,
        memory_limit_mb: int | None = None,
        develop: Develop | None = None,
    ) -> None:
        cores = usable_cores()
        self.count = max(1, count or cores)
        self.file_timeout_seconds = file_timeout_seconds
        self.memory_limit_mb = memory_limit_mb
        self._develop = develop
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

    def submit(
        self,
        src: Path,
        out_dir: Path,
        recipe: Recipe,
        sidecar: Sidecar | None = None,
        *,
        watermark: Path | None = None,
    ) -> Future[Any]:
        """`sidecar`: the file's XMP settings, already read (a plain dataclass: it crosses
        to the process as it is). `watermark`: the PNG the recipe's watermark names."""
        future: Future[Any] = Future()
        if self._closed:
            raise RuntimeError("the develop processes are closed")
        task = _Task(
            Path(src), Path(out_dir), recipe.model_dump(mode="json"), future, sidecar, watermark
        )
        self._tasks.put(task)
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
            target=_child,
            args=(theirs, self._threads, self.memory_limit_mb),
            name="darkroom-develop",
            daemon=True,
        )
        process.start()
        theirs.close()
        ours.send(self._develop)
        # A file's time limit counts its development, not the interpreter's start. A
        # process that dies starting is found by the first file sent to it.
        if ours in multiprocessing.connection.wait([ours, process.sentinel], STARTUP_SECONDS):
            with contextlib.suppress(EOFError, OSError):
                ours.recv()
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
        limit = self.file_timeout_seconds
        deadline = None if limit is None else time.monotonic() + limit
        try:
            mark = None if task.watermark is None else str(task.watermark)
            conn.send((str(task.src), str(task.out_dir), task.recipe, task.sidecar, mark))
            while True:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                ready = multiprocessing.connection.wait([conn, process.sentinel], timeout=left)
                if not ready:
                    process.kill()
                    process.join()
                    task.future.set_exception(
                        DevelopError(
                            "timeout",
                            name,
                            f"not developed within the {limit:g} s limit per file; "
                            "its decoder was stopped",
                        )
                    )
                    return False
                if conn not in ready:
                    break
                message = conn.recv()
                if message == "ready":  # a process that started slower than STARTUP_SECONDS
                    continue
                status, payload = message
                if status == "ok":
                    task.future.set_result(payload)
                else:
                    task.future.set_exception(payload)
                return True
        except (EOFError, OSError):
            pass
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
