"""EC2 pool instances of the local cloud: a started instance boots the real worker
program (`python -m worker`) as a process of its own; stopping the instance ends it.

Each instance keeps a scratch directory across stop and start, as its EBS volume would.

A worker runs in a session of its own, so it outlives a local cloud killed with -9 and
would go on calling whatever answers next on the same port: each boot is recorded under
the state directory, and the next start over it ends what is left (`reap_orphans`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

from darkroom.local import call_recorder
from darkroom.settings import env_key


class LocalInstances:
    def __init__(self, state_dir: Path, base_env: Mapping[str, str], python: str = sys.executable):
        self._state_dir = state_dir
        self._base_env = dict(base_env)
        self._python = python
        self._lock = threading.Lock()
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        # Processes told to stop and still exiting: moto's instance is already "stopped".
        self._stopping: set[int] = set()
        self.boots: dict[str, int] = {}

    @property
    def pids_path(self) -> Path:
        return pids_path(self._state_dir)

    def scratch_dir(self, instance_id: str) -> Path:
        return self._state_dir / "instances" / instance_id / "scratch"

    def log_path(self, instance_id: str) -> Path:
        return self._state_dir / "logs" / f"worker-{instance_id}.log"

    def pid(self, instance_id: str) -> int | None:
        with self._lock:
            proc = self._procs.get(instance_id)
            return proc.pid if proc is not None and proc.poll() is None else None

    def on_start(self, instance_id: str) -> None:
        with self._lock:
            old = self._procs.get(instance_id)
            if old is not None and old.poll() is None and old.pid not in self._stopping:
                return  # already running: StartInstances on a running instance is a no-op
            if old is not None:
                # A job's StartWorker can follow the last job's StopWorker within
                # milliseconds; the old worker must be gone before the new one boots.
                old.wait()
                self._stopping.discard(old.pid)
            scratch = self.scratch_dir(instance_id)
            scratch.mkdir(parents=True, exist_ok=True)
            log = self.log_path(instance_id)
            log.parent.mkdir(parents=True, exist_ok=True)
            env = {
                **self._base_env,
                env_key("instance_id"): instance_id,
                env_key("scratch_dir"): str(scratch),
            }
            with log.open("ab") as out:
                self._procs[instance_id] = subprocess.Popen(
                    call_recorder.worker_command(self._python, env, instance_id),
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            with self.pids_path.open("a") as pids:
                pids.write(f"{self._procs[instance_id].pid}\n")
            self.boots[instance_id] = self.boots.get(instance_id, 0) + 1

    def on_stop(self, instance_id: str) -> None:
        """Stop asynchronously: the worker may be the caller (idle shutdown) awaiting a reply."""
        with self._lock:
            proc = self._procs.get(instance_id)
            if proc is None or proc.poll() is not None:
                return
            self._stopping.add(proc.pid)
        threading.Thread(target=_terminate, args=(proc,), daemon=True).start()

    def on_terminate(self, instance_id: str) -> None:
        """End the worker (asynchronously, as a stop), then delete the instance's scratch
        directory: a terminated instance's volumes are deleted with it."""
        with self._lock:
            proc = self._procs.get(instance_id)
            if proc is not None:
                self._stopping.add(proc.pid)
        threading.Thread(
            target=self._remove, args=(instance_id, proc), daemon=True, name="terminate"
        ).start()

    def _remove(self, instance_id: str, proc: subprocess.Popen[bytes] | None) -> None:
        if proc is not None and proc.poll() is None:
            _terminate(proc)
        shutil.rmtree(self.scratch_dir(instance_id).parent, ignore_errors=True)

    def kill(self, instance_id: str) -> None:
        """Pull the plug (tests: a worker dying mid-job)."""
        with self._lock:
            proc = self._procs.get(instance_id)
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def close(self) -> None:
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            if proc.poll() is None:
                _terminate(proc)


def _terminate(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def pids_path(state_dir: Path) -> Path:
    return state_dir / "instances" / "worker-pids"


def reap_orphans(state_dir: Path) -> list[int]:
    """Kill the workers an earlier cloud on this state directory booted and left running
    (it was killed, not stopped); the pids killed. A pid is taken only if that process
    still has this directory's scratch in its environment: a pid reused since is not."""
    path = pids_path(state_dir)
    try:
        pids = {int(line) for line in path.read_text().split() if line.isdigit()}
    except FileNotFoundError:
        return []
    mark = f"{env_key('scratch_dir')}={state_dir / 'instances'}/".encode()
    killed = []
    for pid in sorted(pids):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue  # gone, not ours, or no /proc (then nothing to match it by)
        if mark in environ:
            try:
                os.killpg(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
    path.unlink(missing_ok=True)
    return killed
