"""What each route does. Adapters come in as arguments, so the same code runs against
AWS, the embedded local cloud, or moto in unit tests."""

from __future__ import annotations

import base64
import heapq
import itertools
import json
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from botocore.exceptions import ClientError

from darkroom import keys, pipeline
from darkroom.api import gallery, tokens
from darkroom.api.http import BadRequest, Conflict, Gone, NotFound, Request, Response
from darkroom.api.validation import (
    CreateJobIn,
    CreateShareIn,
    ReprocessIn,
    check_files,
    parse_body,
)
from darkroom.aws.executions import Executions
from darkroom.aws.job_store import JobStore
from darkroom.aws.objects import Objects
from darkroom.aws.presign import Presigner
from darkroom.aws.shares import Share, ShareIdTaken, ShareStore
from darkroom.aws.uploads import (
    RETENTION_SECONDS,
    DeclaredFile,
    JobExists,
    Upload,
    UploadStatus,
    UploadStore,
)
from darkroom.errors import JobBusy, JobNotFound
from darkroom.jobs import SHAREABLE, Job, JobStatus, created_key, utc_now
from darkroom.observability import logger
from darkroom.recipes import RecipeError, parse_recipe
from darkroom.settings import ApiSettings

DEFAULT_PAGE = 20
MAX_PAGE = 100
_FAILED_EXECUTION = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})


def new_job_id(now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{secrets.token_hex(3)}"


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def attachment(filename: str) -> str:
    """Content-Disposition naming the file, with an ASCII fallback for old clients."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _job_id(value: str) -> str:
    try:
        return keys.validate_job_id(value)
    except ValueError as exc:
        # An id that cannot exist is simply not found.
        raise NotFound(f"job {value!r} not found") from exc


class ApiService:
    def __init__(
        self,
        settings: ApiSettings,
        *,
        jobs: JobStore,
        uploads: UploadStore,
        shares: ShareStore,
        objects: Objects,
        presigner: Presigner,
        executions: Executions,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.jobs = jobs
        self.uploads = uploads
        self.shares = shares
        self.objects = objects
        self.presigner = presigner
        self.executions = executions
        self.clock = clock

    # -- photographer routes ----------------------------------------------------------
    def create_job(self, request: Request) -> Response:
        body = parse_body(CreateJobIn, request.json())
        s = self.settings
        check_files(
            body.files,
            max_file_bytes=s.max_file_bytes,
            max_job_bytes=s.max_job_bytes,
            max_files=s.max_files_per_job,
        )
        recipe = None
        if body.recipe is not None:
            try:
                recipe = parse_recipe(body.recipe).model_dump(mode="json")
            except RecipeError as exc:
                raise BadRequest(str(exc)) from exc
        if body.job_id is not None:
            try:
                job_id = keys.validate_job_id(body.job_id)
            except ValueError as exc:
                raise BadRequest(str(exc)) from exc
            if self.jobs.find(job_id) is not None:
                raise Conflict(f"job {job_id} already exists")
        else:
            job_id = new_job_id()
        now = self.clock()
        upload = Upload(
            job_id=job_id,
            status=UploadStatus.CREATED,
            files=tuple(DeclaredFile(name=f.name, size=f.size) for f in body.files),
            created_at=utc_now(),
            name=body.name,
            recipe=recipe,
            created_by=request.caller,
            expires_ttl=int(now) + RETENTION_SECONDS,
        )
        try:
            self.uploads.create(upload)
        except JobExists as exc:
            raise Conflict(str(exc)) from exc
        expires_in = s.upload_url_expiry_seconds
        uploads = [
            {
                "name": f.name,
                "size": f.size,
                "method": "PUT",
                "url": self.presigner.put(
                    s.raw_bucket, keys.raw_key(job_id, f.name), f.size, expires_in
                ),
                "headers": {"Content-Length": str(f.size)},
            }
            for f in upload.files
        ]
        logger.info("job created", extra={"job_id": job_id, "files": len(uploads)})
        return Response.json(
            201,
            {
                "job_id": job_id,
                "name": upload.name,
                "status": str(upload.status),
                "expires_at": iso(now + expires_in),
                "expires_in": expires_in,
                "uploads": uploads,
            },
        )

    def list_jobs(self, request: Request) -> Response:
        limit = self._limit(request.query.get("limit"))
        before = self._cursor(request.query.get("cursor"))
        page = list(itertools.islice(self._newest(before, limit + 1), limit + 1))
        next_cursor = _encode_cursor(page[limit - 1]) if len(page) > limit else None
        views = [
            self._job_view(r, None) if isinstance(r, Job) else self._upload_view(r, None)
            for r in page[:limit]
        ]
        for view in views:
            view.pop("files", None)
        return Response.json(200, {"jobs": views, "next_cursor": next_cursor})

    def _newest(self, before: str | None, page_size: int) -> Iterator[Job | Upload]:
        """Jobs and uploads newest first, from both tables' listing indexes.

        A job the pipeline registered keeps its upload record for a while; the job's own
        record stands for it (as GET /jobs/{id} answers), so its upload is skipped."""
        merged: Iterator[Job | Upload] = heapq.merge(
            self.jobs.newest(before=before, page_size=page_size),
            self.uploads.newest(before=before, page_size=page_size),
            key=lambda record: record.created_key,
            reverse=True,
        )
        while chunk := list(itertools.islice(merged, page_size)):
            registered = self.jobs.registered(r.job_id for r in chunk if isinstance(r, Upload))
            yield from (r for r in chunk if not (isinstance(r, Upload) and r.job_id in registered))

    def get_job(self, request: Request, job_id: str) -> Response:
        job_id = _job_id(job_id)
        upload = self.uploads.get(job_id)
        job = self.jobs.find(job_id)
        if job is not None:
            return Response.json(200, self._job_view(job, upload, with_state=True))
        if upload is None:
            raise NotFound(f"job {job_id} not found")
        uploaded = self._uploaded(job_id) if upload.status is UploadStatus.CREATED else None
        view = self._upload_view(upload, uploaded)
        if upload.status is UploadStatus.SUBMITTED:
            self._failed_before_registering(view)
        return Response.json(200, view)

    def submit_job(self, request: Request, job_id: str) -> Response:
        job_id = _job_id(job_id)
        upload = self.uploads.get(job_id)
        if upload is None:
            if self.jobs.find(job_id) is not None:
                raise Conflict(f"job {job_id} was already submitted")
            raise NotFound(f"job {job_id} not found")
        if upload.status is UploadStatus.CREATED:
            present = self._uploaded(job_id)
            problems: list[dict[str, Any]] = [
                {"name": f.name, "expected_size": f.size, "actual_size": present.get(f.name)}
                for f in upload.files
                if present.get(f.name) != f.size
            ]
            if problems:
                missing = [p["name"] for p in problems if p["actual_size"] is None]
                wrong = [p["name"] for p in problems if p["actual_size"] is not None]
                parts = []
                if missing:
                    parts.append(f"not uploaded: {', '.join(missing)}")
                if wrong:
                    parts.append(f"not the declared size: {', '.join(wrong)}")
                raise Conflict(
                    f"job {job_id} cannot be submitted yet; " + "; ".join(parts), files=problems
                )
            submitted_at = utc_now()
            manifest: dict[str, Any] = {
                "job_id": job_id,
                "name": upload.name or job_id,
                "files": [{"name": f.name, "size": f.size} for f in upload.files],
                "submitted_at": submitted_at,
            }
            if upload.recipe is not None:
                manifest["recipe"] = dict(upload.recipe)
            # The manifest first: writing it starts the job; a retry after a failure in
            # between writes it again, which starts nothing new (executions are named
            # after the job).
            self.objects.put_json(self.settings.raw_bucket, keys.raw_manifest_key(job_id), manifest)
            upload = self.uploads.mark_submitted(job_id, submitted_at)
            logger.info("job submitted", extra={"job_id": job_id})
        return Response.json(
            202,
            {
                "job_id": job_id,
                "status": str(UploadStatus.SUBMITTED),
                "submitted_at": upload.submitted_at,
            },
        )

    def reprocess_job(self, request: Request, job_id: str) -> Response:
        job_id = _job_id(job_id)
        body = parse_body(ReprocessIn, request.json())
        try:
            arn = pipeline.reprocess(job_id, self.executions, self.jobs, body.recipe)
        except JobNotFound as exc:
            if self.uploads.get(job_id) is not None:
                raise Conflict(
                    f"job {job_id} has not been processed yet; reprocess it once it has finished"
                ) from exc
            raise NotFound(f"job {job_id} not found") from exc
        except JobBusy as exc:
            raise Conflict(str(exc)) from exc
        except RecipeError as exc:
            raise BadRequest(str(exc)) from exc
        return Response.json(202, {"job_id": job_id, "execution_arn": arn})

    def create_share(self, request: Request, job_id: str) -> Response:
        job_id = _job_id(job_id)
        body = parse_body(CreateShareIn, request.json())
        s = self.settings
        expires_in = s.share_default_expiry_seconds if body.expires_in is None else body.expires_in
        if not 1 <= expires_in <= s.share_max_expiry_seconds:
            raise BadRequest(
                f"expires_in must be between 1 and {s.share_max_expiry_seconds} seconds"
            )
        job = self.jobs.find(job_id)
        if job is None:
            if self.uploads.get(job_id) is not None:
                raise Conflict(f"job {job_id} has not been processed yet; share it once it is done")
            raise NotFound(f"job {job_id} not found")
        if job.status not in SHAREABLE:
            raise Conflict(f"job {job_id} is {job.status}; only a finished job can be shared")
        expires_at = int(self.clock()) + expires_in
        for _ in range(3):
            issued = tokens.issue()
            try:
                self.shares.put(
                    Share(
                        share_id=issued.share_id,
                        job_id=job_id,
                        token_sha256=issued.sha256,
                        created_at=utc_now(),
                        expires_at=expires_at,
                        created_by=request.caller,
                    )
                )
                break
            except ShareIdTaken:
                continue
        else:  # pragma: no cover - 80-bit ids do not collide three times
            raise RuntimeError("could not draw a free share id")
        base = (s.api_public_url or request.base_url).rstrip("/")
        logger.info("share created", extra={"job_id": job_id, "share_id": issued.share_id})
        return Response.json(
            201,
            {
                "share_id": issued.share_id,
                "job_id": job_id,
                "token": issued.token,
                "url": f"{base}/share/{issued.token}",
                "expires_at": iso(expires_at),
                "expires_in": expires_in,
            },
        )

    def revoke_share(self, request: Request, job_id: str, share_id: str) -> Response:
        job_id = _job_id(job_id)
        if not tokens.valid_share_id(share_id) or not self.shares.revoke(
            job_id, share_id, utc_now()
        ):
            raise NotFound(f"share {share_id!r} of job {job_id} not found")
        logger.info("share revoked", extra={"job_id": job_id, "share_id": share_id})
        return Response(204)

    # -- the client route -------------------------------------------------------------
    def open_share(self, request: Request, token: str) -> Response:
        # One message for every way a token can be unknown: a guess learns nothing.
        unknown = NotFound("unknown share link")
        share_id = tokens.share_id_of(token)
        share = self.shares.get(share_id) if share_id else None
        if share is None or not tokens.matches(token, share.token_sha256):
            raise unknown
        if share.revoked_at:
            raise Gone("this share link was revoked; ask the studio for a new one")
        if self.clock() >= share.expires_at:
            raise Gone(
                f"this share link expired at {iso(share.expires_at)}; ask the studio for a new one"
            )
        job = self.jobs.find(share.job_id)
        if job is None:
            raise unknown
        if job.status not in SHAREABLE:
            raise Conflict("the photos are being processed again; try again later")
        view = self._share_view(job, share)
        if request.prefers_html():
            return Response.html(
                200,
                gallery.render(view),
                **{
                    "content-security-policy": gallery.content_security_policy(view),
                    "referrer-policy": "no-referrer",
                    "x-robots-tag": "noindex, nofollow",
                    "vary": "Accept",
                },
            )
        return Response.json(200, view, **{"referrer-policy": "no-referrer", "vary": "Accept"})

    # -- views ------------------------------------------------------------------------
    def _share_view(self, job: Job, share: Share) -> dict[str, Any]:
        s = self.settings
        try:
            manifest = self.objects.get_json(
                s.processed_bucket, keys.processed_manifest_key(job.job_id)
            )
        except (ClientError, ValueError) as exc:
            logger.warning("no readable manifest for a shared job", extra={"job_id": job.job_id})
            raise Conflict("the photos are not available yet; try again later") from exc
        prefix = keys.processed_prefix(job.job_id)
        expires_in = s.download_url_expiry_seconds
        files = []
        for entry in manifest.get("files", []) if isinstance(manifest, dict) else []:
            name = str(entry.get("name", ""))
            renditions = []
            smallest: tuple[int, str, str | None] | None = None
            for rendition, meta in sorted((entry.get("outputs") or {}).items()):
                key = str(meta.get("key", ""))
                # Only this job's objects, whatever its manifest says.
                if not key.startswith(prefix):
                    continue
                filename = f"{PurePosixPath(name).stem}-{rendition}{PurePosixPath(key).suffix}"
                renditions.append(
                    {
                        "rendition": rendition,
                        "filename": filename,
                        "url": self.presigner.get(
                            s.processed_bucket, key, expires_in, disposition=attachment(filename)
                        ),
                        "width": meta.get("width"),
                        "height": meta.get("height"),
                        "bytes": meta.get("bytes"),
                        "content_type": meta.get("content_type"),
                    }
                )
                pixels = int(meta.get("width") or 0) * int(meta.get("height") or 0)
                if smallest is None or pixels < smallest[0]:
                    smallest = (pixels, key, meta.get("content_type"))
            status = "DONE" if renditions else "FAILED"
            item: dict[str, Any] = {"name": name, "status": status, "renditions": renditions}
            if smallest is not None:
                # Inline (no attachment disposition), for <img> previews.
                item["preview_url"] = self.presigner.get(
                    s.processed_bucket, smallest[1], expires_in, content_type=smallest[2]
                )
            files.append(item)
        return {
            "job": {
                "job_id": job.job_id,
                "name": job.name,
                "status": str(job.status),
                "files_total": len(files),
                "files_done": sum(1 for f in files if f["status"] == "DONE"),
                "files_failed": sum(1 for f in files if f["status"] != "DONE"),
                "finished_at": job.finished_at,
            },
            "expires_at": iso(share.expires_at),
            "links_expire_in": expires_in,
            "files": files,
        }

    def _job_view(
        self, job: Job, upload: Upload | None, *, with_state: bool = False
    ) -> dict[str, Any]:
        view = job.to_summary()
        view["submitted_at"] = upload.submitted_at if upload else None
        view["state"] = self._current_state(job.execution_arn) if with_state else None
        return view

    def _upload_view(self, upload: Upload, uploaded: Mapping[str, int] | None) -> dict[str, Any]:
        files: dict[str, dict[str, Any]] = {}
        for f in upload.files:
            if upload.status is UploadStatus.SUBMITTED:
                status = "PENDING"
            elif uploaded is not None and uploaded.get(f.name) == f.size:
                status = "UPLOADED"
            else:
                status = "AWAITING_UPLOAD"
            files[f.name] = {"status": status, "size": f.size}
        return {
            "job_id": upload.job_id,
            "name": upload.name,
            "status": str(upload.status),
            "files_total": len(upload.files),
            "files_done": 0,
            "files_failed": 0,
            "attempt": 0,
            "execution_arn": None,
            "instance_id": None,
            "manifest_key": None,
            "error": None,
            "cause": None,
            "created_at": upload.created_at,
            "updated_at": upload.submitted_at or upload.created_at,
            "submitted_at": upload.submitted_at,
            "started_at": None,
            "finished_at": None,
            "state": None,
            "files": dict(sorted(files.items())),
        }

    def _failed_before_registering(self, view: dict[str, Any]) -> None:
        """A submitted job whose execution failed before RegisterJob wrote its record
        (a bad manifest, say) would otherwise look SUBMITTED forever."""
        arn = self.executions.arn_for(pipeline.execution_name(view["job_id"]))
        try:
            execution = self.executions.describe(arn)
        except ClientError:
            return
        if execution.get("status") in _FAILED_EXECUTION:
            view.update(
                status=str(JobStatus.FAILED),
                execution_arn=arn,
                error=execution.get("error") or "JobFailed",
                cause=execution.get("cause"),
            )

    def _current_state(self, execution_arn: str | None) -> str | None:
        if not execution_arn:
            return None
        try:
            events = self.executions.history(execution_arn)
        except ClientError:
            return None
        for event in reversed(events):
            details = event.get("stateEnteredEventDetails")
            if details:
                return str(details["name"])
        return None

    def _uploaded(self, job_id: str) -> dict[str, int]:
        present: dict[str, int] = {}
        for obj in self.objects.list(self.settings.raw_bucket, keys.raw_prefix(job_id)):
            name = keys.file_name_from_raw_key(job_id, obj["Key"])
            if name is not None:
                present[name] = int(obj.get("Size", 0))
        return present

    @staticmethod
    def _limit(raw: str | None) -> int:
        if raw is None:
            return DEFAULT_PAGE
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
            raise BadRequest(f"limit must be a whole number from 1 to {MAX_PAGE}")
        return int(raw)

    @staticmethod
    def _cursor(raw: str | None) -> str | None:
        """The created key a page continues after (the cursor names its last job)."""
        if raw is None:
            return None
        try:
            created_at, job_id = json.loads(base64.urlsafe_b64decode(raw.encode() + b"=="))
            if not isinstance(created_at, str) or not isinstance(job_id, str):
                raise ValueError(raw)
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            raise BadRequest("cursor is not one this API issued") from exc
        return created_key(created_at, job_id)


def _encode_cursor(record: Job | Upload) -> str:
    # A job's created key never changes, so a page boundary stays put while jobs
    # progress and new ones arrive.
    key = [record.created_at or "", record.job_id]
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")
