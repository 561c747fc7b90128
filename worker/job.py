"""One lease's work: developing a shard of a run (every pending file of it, each file's
progress) or packaging the run, and the callback."""

from __future__ import annotations

import shutil
import threading
import time
from concurrent.futures import (
    FIRST_COMPLETED,
    CancelledError,
    Future,
    ThreadPoolExecutor,
    wait,
)
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from darkroom import keys, recipes
from darkroom.aws.clients import error_code
from darkroom.aws.executions import TaskCallbacks
from darkroom.aws.job_store import JobStore
from darkroom.aws.lease_store import Lease, LeaseStore, LeaseTask
from darkroom.aws.objects import Objects
from darkroom.digests import recipe_sha256, sha256_file
from darkroom.errors import StaleExecution
from darkroom.filenames import job_naming
from darkroom.imaging.develop_processes import DevelopProcesses
from darkroom.imaging.develop_result import DevelopError
from darkroom.jobs import Archive, FileProgress, FileRecord, FileStatus, JobStatus, Output, utc_now
from darkroom.observability import logger
from darkroom.recipes import Recipe, parse_recipe
from darkroom.settings import WorkerSettings
from darkroom.sidecars import MAX_SIDECAR_BYTES, Sidecar, SidecarError, parse_sidecar
from worker import package
from worker.heartbeat import Heartbeat
from worker.interrupted import Interrupted


@dataclass(frozen=True)
class Mark:
    """The recipe's watermark for this shard: its PNG on the scratch disk and the asset
    version it is (for the manifest), or why no file of the shard can have it."""

    asset: str
    path: Path | None = None
    version: str | None = None
    problem: tuple[str, str] | None = None  # (error code, message)


@dataclass
class FileOutcome:
    name: str
    progress: FileProgress
    develop_seconds: float = 0.0
    # A developed file's renditions, still on the scratch disk for the ZIPs' parts
    # (rendition -> path), and the directory to remove once they are added.
    rendered: dict[str, Path] = field(default_factory=dict)
    out_dir: Path | None = None


class JobRunner:
    def __init__(
        self,
        settings: WorkerSettings,
        *,
        jobs: JobStore,
        leases: LeaseStore,
        objects: Objects,
        callbacks: TaskCallbacks,
        instance_id: str,
        stopping: threading.Event,
    ) -> None:
        self._settings = settings
        self._jobs = jobs
        self._leases = leases
        self._objects = objects
        self._callbacks = callbacks
        self._instance_id = instance_id
        self._stopping = stopping

    def run(self, lease: Lease) -> None:
        assert lease.task_token and lease.job_id and lease.execution_arn
        token, job_id, execution_arn = lease.task_token, lease.job_id, lease.execution_arn
        logger.set_correlation_id(job_id)
        logger.append_keys(shard=lease.shard, task=str(lease.task))
        workdir = self._settings.scratch_dir / "jobs" / job_id / str(lease.shard)
        heartbeat = Heartbeat(
            self._callbacks,
            self._leases,
            token=token,
            instance_id=self._instance_id,
            execution_arn=execution_arn,
            shard=lease.shard,
            interval=self._settings.heartbeat_interval_seconds,
        )
        try:
            with heartbeat:
                if lease.task is LeaseTask.PACKAGE:
                    output = package.package_run(
                        job_id,
                        keys.run_id(execution_arn),
                        jobs=self._jobs,
                        objects=self._objects,
                        bucket=self._settings.processed_bucket,
                        lost=heartbeat.lost,
                    )
                else:
                    output = self._develop_shard(
                        job_id, execution_arn, lease.shard, workdir, heartbeat.lost
                    )
            # A shard whose files all failed to develop still succeeds: its files
            # carry their errors, and MarkDone judges the run as a whole.
            self._callbacks.succeed(token, output)
            logger.info("lease's work finished", extra={"output": output})
        except (Interrupted, StaleExecution) as exc:
            logger.warning("job abandoned", extra={"reason": str(exc)})
            if not heartbeat.lost.is_set():
                self._safe_fail(token, "WorkerInterrupted", str(exc))
        except Exception as exc:
            logger.exception("job failed in the worker")
            self._safe_fail(token, "WorkerFailed", f"{type(exc).__name__}: {exc}")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            logger.remove_keys(["shard", "task"])
            logger.set_correlation_id(None)

    def _safe_fail(self, token: str, error: str, cause: str) -> None:
        try:
            self._callbacks.fail(token, error, cause)
        except Exception:
            logger.exception("could not report the failure; the heartbeat timeout will")

    def _develop_shard(
        self, job_id: str, execution_arn: str, shard: int, workdir: Path, lost: threading.Event
    ) -> dict[str, Any]:
        job = self._jobs.get(job_id)
        run = keys.run_id(execution_arn)
        if job.status is not JobStatus.PROCESSING:
            # The run's first shard to start; the others find it PROCESSING.
            self._jobs.transition(
                job_id, execution_arn, JobStatus.PROCESSING, set_fields={"started_at": utc_now()}
            )
        recipe = parse_recipe(job.recipe)
        bounds = self._jobs.shard(job_id, run, shard)
        records = list(
            self._jobs.shard_files(job_id, run, shard, delivered=job.delivered, bounds=bounds)
        )
        # This shard's files of this run; those recorded already (a worker taking the
        # shard up again, or its second attempt) are not developed twice.
        todo = [r for r in records if r.status is FileStatus.PENDING]
        packages = bounds is not None and bounds.packages
        # A run registered without shard items is packaged by reading every rendition
        # back, as before parts existed; so is a run of some files, whose ZIPs hold the
        # files it leaves too, which no shard of it develops.
        parts = (
            None
            if bounds is None or job.selection is not None
            else package.ShardSegments(
                job_id,
                run,
                shard,
                recipe,
                records,
                objects=self._objects,
                bucket=self._settings.processed_bucket,
                final=packages,
                names=job_naming(job),
            )
        )
        mark = self._fetch_mark(recipe, workdir) if todo else None
        try:
            developed = self._develop_all(
                job_id, execution_arn, todo, recipe, workdir, lost, parts, mark
            )
        except BaseException:
            if parts is not None:
                parts.abort()
            raise
        statuses = [o.progress.status for o in developed.values()]
        done, skipped = statuses.count(FileStatus.DONE), statuses.count(FileStatus.SKIPPED)
        output: dict[str, Any] = {
            "job_id": job_id,
            "run_id": run,
            "shard": shard,
            "files_developed": len(developed),
            "files_done": done,
            "files_failed": len(developed) - done - skipped,
            "files_skipped": skipped,
        }
        written = parts.finish(lost) if parts is not None else None
        if packages:
            if written is not None:
                archives = {
                    r: Archive(key=p.key, bytes=p.bytes, files=p.files) for r, p in written.items()
                }
                self._jobs.record_shard_archives(job_id, run, shard, archives)
                output["archives"] = {r: a.model_dump(mode="json") for r, a in archives.items()}
            else:
                output["archives"] = self._package_here(job_id, run, shard, lost)
        elif written is not None:
            self._jobs.record_shard_segments(job_id, run, shard, written)
        return output

    def _package_here(
        self, job_id: str, run: str, shard: int, lost: threading.Event
    ) -> dict[str, Any] | None:
        """The run's only shard is over and its parts could not be written as it
        developed: package it on this instance by reading the renditions back, rather
        than boot another for the packaging. A failure here only leaves the run without
        ZIPs (as a failed packager does); an interruption abandons the shard as any other
        would."""
        try:
            packaged = package.package_run(
                job_id,
                run,
                jobs=self._jobs,
                objects=self._objects,
                bucket=self._settings.processed_bucket,
                lost=lost,
            )
        except Interrupted:
            raise
        except Exception:
            logger.exception("packaging failed: the run is delivered without ZIPs")
            return None
        archives = {r: Archive.model_validate(a) for r, a in packaged["archives"].items()}
        self._jobs.record_shard_archives(job_id, run, shard, archives)
        return packaged["archives"]

    def _develop_all(
        self,
        job_id: str,
        execution_arn: str,
        files: list[FileRecord],
        recipe: Recipe,
        workdir: Path,
        lost: threading.Event,
        parts: package.ShardSegments | None = None,
        mark: Mark | None = None,
    ) -> dict[str, FileOutcome]:
        """Every file through download -> develop -> upload, several at once; each
        developed file's renditions then go into the shard's `parts` of the ZIPs before
        they leave the scratch disk.

        The develop pool runs one file per process (CPU and memory bounded by its size);
        each file's S3 transfers run in a thread of their own, so while the pool develops
        some files others download and upload. At most `in_flight` files are on the
        scratch disk at any time, whatever the shoot's size.
        """
        pool = DevelopProcesses(
            self._settings.develop_workers or None,
            file_timeout_seconds=self._settings.develop_file_timeout_seconds,
            memory_limit_mb=self._settings.develop_memory_limit_mb,
        )
        in_flight = 2 * pool.count
        run = keys.run_id(execution_arn)
        outcomes: dict[str, FileOutcome] = {}
        transfers = ThreadPoolExecutor(in_flight, thread_name_prefix="file")
        pending: dict[Future[FileOutcome], str] = {}
        queue = list(enumerate(files))
        interrupted: Interrupted | None = None
        try:
            while queue or pending:
                if self._stopping.is_set():
                    raise Interrupted("the worker is shutting down")
                if lost.is_set():
                    raise Interrupted("the execution stopped waiting for this worker")
                while queue and len(pending) < in_flight:
                    index, record = queue.pop(0)
                    future = transfers.submit(
                        self._develop_one,
                        job_id,
                        run,
                        record,
                        recipe,
                        workdir,
                        index,
                        pool,
                        lost,
                        mark,
                    )
                    pending[future] = record.name
                finished, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in finished:
                    name = pending.pop(future)
                    try:
                        outcome = future.result()
                    except Interrupted as exc:
                        # Not recorded: a file stopped midway stays PENDING, so the
                        # shard's next attempt develops it. The others finished with it
                        # are recorded first.
                        interrupted = exc
                        continue
                    try:
                        self._jobs.record_file(job_id, execution_arn, name, outcome.progress)
                        if parts is not None and outcome.rendered:
                            parts.add_developed(name, outcome.rendered)
                    finally:
                        if outcome.out_dir is not None:
                            shutil.rmtree(outcome.out_dir, ignore_errors=True)
                    outcomes[name] = outcome
                    logger.info(
                        _LOGGED[outcome.progress.status],
                        extra={
                            "file": name,
                            "error": outcome.progress.error,
                            "develop_seconds": round(outcome.develop_seconds, 3),
                        },
                    )
                if interrupted is not None:
                    raise interrupted
        except Interrupted as exc:
            interrupted = exc
            raise
        finally:
            pool.close(kill=interrupted is not None or bool(pending))
            transfers.shutdown(wait=interrupted is None, cancel_futures=True)
        return outcomes

    def _develop_one(
        self,
        job_id: str,
        run: str,
        record: FileRecord,
        recipe: Recipe,
        workdir: Path,
        index: int,
        pool: DevelopProcesses,
        lost: threading.Event,
        mark: Mark | None = None,
    ) -> FileOutcome:
        name = record.name
        # Per file: two files of one stem (A.CR2, A.dng) never share an output directory.
        src = workdir / "raw" / f"{index:05d}" / name
        out_dir = workdir / "out" / f"{index:05d}"
        uploaded: list[str] = []
        kept = False
        try:
            sidecar: Sidecar | None = None
            if record.sidecar:
                # First: a file the photographer rejected costs no download of its RAW.
                read = self._read_sidecar(job_id, record, src.parent / record.sidecar)
                if isinstance(read, FileOutcome):
                    return read
                sidecar = read
            if mark is not None and mark.problem is not None:
                # Never delivered without the studio's mark: proofs are what it protects.
                code, message = mark.problem
                return _failed(name, code, f"{name}: {message}")
            started = time.perf_counter()
            try:
                # The original as it was registered, whatever was written there since.
                self._objects.download(
                    self._settings.raw_bucket,
                    keys.raw_key(job_id, name),
                    src,
                    version_id=record.original_version,
                )
            except Exception as exc:
                return _failed(name, "download_failed", f"{name}: could not download ({exc})")
            # The bytes developed, not what S3 says it holds: the lineage starts here.
            original_sha256 = sha256_file(src)
            download_seconds = time.perf_counter() - started
            try:
                watermark = mark.path if mark is not None else None
                result = pool.submit(src, out_dir, recipe, sidecar, watermark=watermark).result()
            except DevelopError as exc:
                return _failed(name, exc.code, str(exc))
            except CancelledError:
                raise Interrupted(f"{name}: development was stopped") from None
            finally:
                # The RAW is done with: free the scratch disk before the uploads.
                src.unlink(missing_ok=True)
            outputs: dict[str, Output] = {}
            started = time.perf_counter()
            for rendered in result.renditions:
                if lost.is_set() or self._stopping.is_set():
                    # The execution is over (or the instance stopping): nothing more of
                    # this run may reach the bucket.
                    raise Interrupted(f"{name}: development was stopped")
                key = keys.rendition_key(
                    job_id, run, rendered.rendition, name, rendered.path.suffix[1:]
                )
                # Hashed as it leaves the scratch disk: what the client gets must match it.
                digest = sha256_file(rendered.path)
                try:
                    self._objects.upload(
                        rendered.path, self._settings.processed_bucket, key, rendered.content_type
                    )
                except Exception as exc:
                    self._delete(uploaded)
                    return _failed(name, "upload_failed", f"{name}: could not upload {key} ({exc})")
                uploaded.append(key)
                outputs[rendered.rendition] = Output(
                    key=key,
                    width=rendered.width,
                    height=rendered.height,
                    bytes=rendered.size_bytes,
                    content_type=rendered.content_type,
                    sha256=digest,
                )
            timings = {
                "download": download_seconds,
                "decode": result.decode_seconds,
                "render": result.render_seconds,
                "upload": time.perf_counter() - started,
            }
            seconds = result.decode_seconds + result.render_seconds
            notes = dict(result.notes)
            if mark is not None and mark.version and "watermark" in notes:
                notes["watermark"] += f" (asset version {mark.version})"
            kept = True  # removed by the caller, once the ZIPs' parts have them
            return FileOutcome(
                name,
                FileProgress(
                    status=FileStatus.DONE,
                    outputs=outputs,
                    develop_seconds=round(seconds, 3),
                    notes=notes,
                    original_sha256=original_sha256,
                    recipe_sha256=recipe_sha256(recipes.resolved(recipe)),
                    software=dict(result.software),
                    timings={step: round(t, 3) for step, t in timings.items()},
                ),
                seconds,
                rendered={r.rendition: r.path for r in result.renditions},
                out_dir=out_dir,
            )
        finally:
            src.unlink(missing_ok=True)
            shutil.rmtree(src.parent, ignore_errors=True)
            if not kept:
                shutil.rmtree(out_dir, ignore_errors=True)

    def _fetch_mark(self, recipe: Recipe, workdir: Path) -> Mark | None:
        """The recipe's watermark asset, fetched once for the whole shard. A missing or
        oversized asset fails the shard's files with a message that names it (its pixels
        are checked in the develop processes: this process loads no imaging library); a
        failed call to S3 raises (the shard is retried, as for any transient fault)."""
        if recipe.watermark is None:
            return None
        asset = recipe.watermark.asset
        dest = workdir / "assets" / f"{asset}.{keys.ASSET_EXTENSION}"
        try:
            with self._objects.reading(self._settings.raw_bucket, keys.asset_key(asset)) as got:
                if got.size > keys.MAX_ASSET_BYTES:
                    why = (
                        f"the watermark asset {asset!r} is {got.size} bytes; at most "
                        f"{keys.MAX_ASSET_BYTES} are accepted"
                    )
                    return Mark(asset, problem=("watermark_unreadable", why))
                data = b"".join(got.chunks)
                version = got.version_id
        except ClientError as exc:
            if error_code(exc) not in ("NoSuchKey", "404"):
                raise
            why = f"the watermark asset {asset!r} does not exist (upload it: darkroom asset put)"
            return Mark(asset, problem=("watermark_unavailable", why))
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        logger.info("watermark fetched", extra={"asset": asset, "version": version})
        return Mark(asset, path=dest, version=version)

    def _read_sidecar(self, job_id: str, record: FileRecord, dest: Path) -> Sidecar | FileOutcome:
        """The file's XMP sidecar, read; or the file's outcome when it ends here (skipped
        as rejected, or failed: an unreadable sidecar is never silently ignored)."""
        name, sidecar_name = record.name, record.sidecar or ""
        try:
            self._objects.download(
                self._settings.raw_bucket,
                keys.raw_key(job_id, sidecar_name),
                dest,
                version_id=record.sidecar_version,
            )
            if dest.stat().st_size > MAX_SIDECAR_BYTES:
                raise SidecarError(f"sidecar larger than {MAX_SIDECAR_BYTES} bytes")
            sidecar = parse_sidecar(dest.read_bytes())
        except SidecarError as exc:
            return _failed(name, "sidecar_unreadable", f"{name}: {sidecar_name}: {exc}")
        except Exception as exc:
            return _failed(
                name, "download_failed", f"{name}: could not download {sidecar_name} ({exc})"
            )
        finally:
            dest.unlink(missing_ok=True)
        if sidecar.skips:
            why = "rejected" if sidecar.rejected else "rated -1 (rejected)"
            note = f"{sidecar.source}: {why} in {sidecar_name}; not developed"
            return FileOutcome(
                name, FileProgress(status=FileStatus.SKIPPED, notes={"sidecar": note})
            )
        return sidecar

    def _delete(self, object_keys: list[str]) -> None:
        for key in object_keys:
            try:
                self._objects.delete(self._settings.processed_bucket, key)
            except Exception:
                logger.exception("could not delete a partial output", extra={"key": key})


_LOGGED = {
    FileStatus.DONE: "file developed",
    FileStatus.FAILED: "file failed",
    FileStatus.SKIPPED: "file skipped",
    FileStatus.PENDING: "file pending",
}


def _failed(name: str, code: str, message: str) -> FileOutcome:
    return FileOutcome(name, FileProgress(status=FileStatus.FAILED, error_code=code, error=message))
