"""The photographer's job routes: submit, follow, list, reprocess, delete (declaring a job
and uploading its files: darkroom.api.uploads)."""

from __future__ import annotations

import base64
import heapq
import itertools
import json
from collections.abc import Callable, Iterator
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from botocore.exceptions import ClientError

from darkroom import keys, pipeline, submissions
from darkroom.api import paging
from darkroom.api.context import current_service
from darkroom.api.errors import BadRequest, Conflict, NotFound, answers, known_job_id
from darkroom.api.models import (
    FavouriteList,
    FileView,
    FileViewStatus,
    JobDeleted,
    JobFiles,
    JobPage,
    JobView,
    ReprocessIn,
    Reprocessing,
    Submitted,
)
from darkroom.api.uploads import UploadOperations
from darkroom.aws.executions import Executions
from darkroom.aws.job_store import JobStore
from darkroom.aws.objects import Objects
from darkroom.aws.presign import Presigner
from darkroom.aws.shares import ShareStore
from darkroom.aws.uploads import (
    Upload,
    UploadStatus,
    UploadStore,
)
from darkroom.erasure import Erasure
from darkroom.errors import JobNotFound
from darkroom.jobs import Job, JobStatus, created_key, utc_now
from darkroom.observability import logger
from darkroom.recipes import parse_recipe
from darkroom.settings import ApiSettings

DEFAULT_PAGE = 20
MAX_PAGE = 100
_FAILED_EXECUTION = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})
# The most a reprocess's file names may take in its execution's input (JSON), leaving
# room in Step Functions' 256 KB for the rest of it.
MAX_FILES_INPUT_BYTES = 200 * 1024


class JobOperations(UploadOperations):
    """What each job route does; ApiService supplies the settings and adapters."""

    settings: ApiSettings
    jobs: JobStore
    uploads: UploadStore
    shares: ShareStore
    objects: Objects
    presigner: Presigner
    executions: Executions
    clock: Callable[[], float]
    job_favourites: Callable[[str], FavouriteList]

    def list_jobs(self, limit: int, after: str | None) -> JobPage:
        before = self._cursor(after)
        page = list(itertools.islice(self._newest(before, limit + 1), limit + 1))
        next_cursor = _encode_cursor(page[limit - 1]) if len(page) > limit else None
        views = [
            self._job_view(r, None) if isinstance(r, Job) else self._upload_view(r, None)
            for r in page[:limit]
        ]
        return JobPage(jobs=[view.summary() for view in views], next_cursor=next_cursor)

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

    def get_job(self, job_id: str) -> JobView:
        job_id = known_job_id(job_id)
        upload = self.uploads.get(job_id)
        job = self.jobs.find(job_id)
        if job is not None:
            return self._job_view(job, upload, with_state=True)
        if upload is None:
            raise NotFound(f"job {job_id} not found")
        view = self._upload_view(upload, self._declared_page(upload, None, paging.DEFAULT_FILES))
        if upload.status is UploadStatus.SUBMITTED:
            view = self._failed_before_registering(view)
        return view

    def job_files(self, job_id: str, cursor: str | None, limit: int) -> JobFiles:
        """A page of the job's files in name order: its file items once the pipeline has
        it, else the files its upload declared."""
        job_id = known_job_id(job_id)
        after = paging.decode_cursor(cursor)
        job = self.jobs.find(job_id)
        if job is not None:
            records, next_name = self.jobs.files_page(
                job_id, start_after=after, limit=limit, delivered=job.delivered
            )
            files = {r.name: FileView.of_record(r) for r in records}
        else:
            upload = self.uploads.get(job_id)
            if upload is None:
                raise NotFound(f"job {job_id} not found")
            files, next_name = self._declared_page(upload, after, limit)
        return JobFiles(
            job_id=job_id,
            files=files,
            next_cursor=None if next_name is None else paging.encode_cursor(next_name),
        )

    def submit_job(self, job_id: str) -> Submitted:
        job_id = known_job_id(job_id)
        upload = self.uploads.get(job_id)
        if upload is None:
            if self.jobs.find(job_id) is not None:
                raise Conflict(f"job {job_id} was already submitted")
            raise NotFound(f"job {job_id} not found")
        if upload.status is UploadStatus.CREATED:
            problems = self.upload_problems(upload)
            if problems:
                missing = [p["name"] for p in problems if p["actual_size"] is None]
                unfinished = [p["name"] for p in problems if p.get("in_parts")]
                wrong = [p["name"] for p in problems if p["actual_size"] is not None]
                parts = []
                if missing:
                    parts.append(f"not uploaded: {', '.join(missing[:20])}")
                if unfinished:
                    parts.append(f"uploads in parts not completed: {', '.join(unfinished[:20])}")
                if wrong:
                    parts.append(f"not the declared size: {', '.join(wrong[:20])}")
                raise Conflict(
                    f"job {job_id} cannot be submitted yet; " + "; ".join(parts), files=problems
                )
            submitted_at = utc_now()
            manifest: dict[str, Any] = {
                "job_id": job_id,
                "name": upload.name or job_id,
                "files": [{"name": f.name, "size": f.size} for f in upload.files],
                "submitted_at": submitted_at,
                "created_at": upload.created_at,  # kept by RegisterJob: the listing's order
            }
            if upload.recipe is not None:
                manifest["recipe"] = dict(upload.recipe)
            if upload.delivery is not None:
                manifest["delivery"] = dict(upload.delivery)
            # The manifest first: writing it starts the job; a retry after a failure in
            # between writes it again, which starts nothing new (executions are named
            # after the job).
            self.objects.put_json(self.settings.raw_bucket, keys.raw_manifest_key(job_id), manifest)
            upload = self.uploads.mark_submitted(job_id, submitted_at)
            logger.info("job submitted", extra={"job_id": job_id})
        elif self.jobs.find(job_id) is None:
            # Submitted, never registered: the orchestrator may have spent its tries in
            # an outage. Its execution is named after the job, so this starts it once.
            started = submissions.resubmit(job_id, self.executions)
            logger.info("job submitted again", extra={"job_id": job_id, "new": started.started_now})
        return Submitted(job_id=job_id, status="SUBMITTED", submitted_at=upload.submitted_at)

    def reprocess_job(self, job_id: str, body: ReprocessIn) -> Reprocessing:
        job_id = known_job_id(job_id)
        if body.recipe is not None:
            self.require_assets(parse_recipe(body.recipe))
        else:
            found = self.jobs.find(job_id)
            self.require_assets(found.recipe if found else None)
        files, selection = self._reprocess_files(job_id, body)
        try:
            now = self.clock()
            arn = pipeline.reprocess(
                job_id,
                self.executions,
                self.jobs,
                body.recipe,
                now=now,
                files=files,
                selection=selection,
            )
        except JobNotFound as exc:
            if self.uploads.get(job_id) is not None:
                raise Conflict(
                    f"job {job_id} has not been processed yet; reprocess it once it has finished"
                ) from exc
            raise NotFound(f"job {job_id} not found") from exc
        return Reprocessing(job_id=job_id, execution_arn=arn)

    def _reprocess_files(self, job_id: str, body: ReprocessIn) -> tuple[list[str] | None, str]:
        """The files a reprocess develops (None: all), checked against the job's own
        before anything starts: an unknown name is a 400 that names it."""
        if body.files is None:
            return None, "names"
        job = self.jobs.find(job_id)
        if job is None:
            return None, "names"  # the reprocess itself says not found, or not yet
        if body.files == "favourites":
            chosen = [m.file_name for m in self.job_favourites(job_id).merged]
            if not chosen:
                raise BadRequest(
                    f"job {job_id} has no favourites: none was marked through a proofing "
                    "share (`darkroom favourites JOB` lists them)"
                )
            kind = "favourites"
        else:
            chosen = list(dict.fromkeys(body.files))
            if not chosen:
                raise BadRequest('files must name at least one file (or be "favourites")')
            kind = "names"
        known = {record.name for record in self.jobs.files(job_id, delivered=job.delivered)}
        unknown = [name for name in chosen if name not in known]
        if unknown:
            shown = ", ".join(repr(n) for n in unknown[:5])
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise BadRequest(
                f"not files of job {job_id}: {shown}{more}; nothing was started "
                f"(`darkroom status {job_id} --all` lists its files)",
                unknown=unknown[:100],
            )
        size = len(json.dumps(chosen))
        if size > MAX_FILES_INPUT_BYTES:
            # The names travel in the execution's input, which Step Functions caps at
            # 256 KB; so many files are better reprocessed whole.
            raise BadRequest(
                f"{len(chosen)} file names are {size} bytes, more than one reprocess can "
                f"carry ({MAX_FILES_INPUT_BYTES}); reprocess the whole job instead"
            )
        return chosen, kind

    def delete_job(self, job_id: str) -> JobDeleted:
        job_id = known_job_id(job_id)
        s = self.settings
        erasure = Erasure(
            jobs=self.jobs,
            uploads=self.uploads,
            shares=self.shares,
            objects=self.objects,
            executions=self.executions,
            raw_bucket=s.raw_bucket,
            processed_bucket=s.processed_bucket,
            multipart=self.multipart,
        )
        try:
            erased = erasure.erase(job_id, now=self.clock())
        except JobNotFound as exc:
            raise NotFound(str(exc)) from exc
        return JobDeleted(
            job_id=job_id,
            object_versions=erased.object_versions,
            records=erased.records,
            shares=erased.shares,
        )

    # -- views ------------------------------------------------------------------------
    def _job_view(self, job: Job, upload: Upload | None, *, with_state: bool = False) -> JobView:
        """The job; with its state, the first page of its files too."""
        records, next_name = (
            self.jobs.files_page(
                job.job_id,
                start_after=None,
                limit=paging.DEFAULT_FILES,
                delivered=job.delivered,
            )
            if with_state
            else (None, None)
        )
        return JobView.of_job(
            job,
            records,
            submitted_at=upload.submitted_at if upload else None,
            state=self._current_state(job.execution_arn) if with_state else None,
            files_next_cursor=None if next_name is None else paging.encode_cursor(next_name),
        )

    def _declared_page(
        self, upload: Upload, after: str | None, limit: int
    ) -> tuple[dict[str, FileView], str | None]:
        """A page of the files an upload declared, in name order, with the name to go on
        after (None on the last page)."""
        declared = sorted(
            (f for f in upload.files if after is None or f.name > after), key=lambda f: f.name
        )
        page = declared[:limit]
        uploaded = self._uploaded(upload.job_id) if upload.status is UploadStatus.CREATED else None
        files: dict[str, FileView] = {}
        for f in page:
            status: FileViewStatus
            if upload.status is UploadStatus.SUBMITTED:
                status = "PENDING"
            elif uploaded is not None and uploaded.get(f.name) == f.size:
                status = "UPLOADED"
            else:
                status = "AWAITING_UPLOAD"
            files[f.name] = FileView(status=status, size=f.size)
        return files, page[-1].name if len(declared) > limit else None

    def _upload_view(
        self, upload: Upload, page: tuple[dict[str, FileView], str | None] | None
    ) -> JobView:
        """The job as its upload declared it; with a page of its files, if given."""
        files, next_name = page if page is not None else (None, None)
        return JobView(
            job_id=upload.job_id,
            name=upload.name,
            status=upload.status.value,
            files_total=upload.files_total,
            files_done=0,
            files_failed=0,
            attempt=0,
            created_at=upload.created_at,
            updated_at=upload.submitted_at or upload.created_at,
            submitted_at=upload.submitted_at,
            files=files,
            files_next_cursor=None if next_name is None else paging.encode_cursor(next_name),
        )

    def _failed_before_registering(self, view: JobView) -> JobView:
        """A submitted job whose execution failed before RegisterJob wrote its record
        (a bad manifest, say) would otherwise look SUBMITTED forever."""
        arn = self.executions.arn_for(pipeline.execution_name(view.job_id))
        try:
            execution = self.executions.describe(arn)
        except ClientError:
            return view
        if execution.get("status") not in _FAILED_EXECUTION:
            return view
        return view.model_copy(
            update={
                "status": JobStatus.FAILED.value,
                "execution_arn": arn,
                "error": execution.get("error") or "JobFailed",
                "cause": execution.get("cause"),
            }
        )

    def _current_state(self, execution_arn: str | None) -> str | None:
        if not execution_arn:
            return None
        try:
            return self.executions.current_state(execution_arn)
        except ClientError:
            return None

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


# -- routes ---------------------------------------------------------------------------
router = APIGatewayHttpRouter()
Jobs = Annotated[JobOperations, Depends(current_service)]
TAGS = ["photographer"]


@router.get(
    "/jobs",
    operation_id="list_jobs",
    tags=TAGS,
    summary="Recent jobs, newest first, a page at a time.",
    responses=answers(200, "One page of jobs (without per-file detail).", 400),
)
def list_jobs(
    jobs: Jobs,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    cursor: Annotated[
        str | None, Query(description="The `next_cursor` of the previous page.")
    ] = None,
) -> JobPage:
    return jobs.list_jobs(limit, cursor)


@router.get(
    "/jobs/<job_id>",
    operation_id="get_job",
    tags=TAGS,
    summary="A job's status, counts, timestamps, errors and its first page of files.",
    description=(
        "`files` holds the first files in name order; when more follow, "
        "`files_next_cursor` pages through the rest with `GET /jobs/{job_id}/files`."
    ),
    responses=answers(200, "The job.", 404),
)
def get_job(job_id: str, jobs: Jobs) -> JobView:
    return jobs.get_job(job_id)


@router.get(
    "/jobs/<job_id>/files",
    operation_id="list_job_files",
    tags=TAGS,
    summary="A page of a job's per-file progress, in name order.",
    description=(
        "`GET /jobs/{job_id}` holds the first page of its files and, when more follow, "
        "`files_next_cursor`: pass it here as `cursor`, then each page's `next_cursor`, "
        "until it is null."
    ),
    responses=answers(200, "A page of the job's files.", 400, 404),
)
def list_job_files(
    job_id: str,
    jobs: Jobs,
    limit: Annotated[int, Query(ge=1, le=paging.MAX_FILES)] = paging.DEFAULT_FILES,
    cursor: Annotated[
        str | None, Query(description="The `next_cursor` of the previous page.")
    ] = None,
) -> JobFiles:
    return jobs.job_files(job_id, cursor, limit)


@router.post(
    "/jobs/<job_id>/submit",
    operation_id="submit_job",
    tags=TAGS,
    summary="Check every declared file is uploaded with its size, then start the job.",
    description=(
        "Idempotent; submitting a submitted job answers 202 again, and starts its "
        "execution if it has none yet (at most once). 409 lists in `files` each file "
        "missing or not of its declared size."
    ),
    responses=answers(202, "Submitted; the pipeline picks the job up.", 404, 409),
    status_code=202,
)
def submit_job(job_id: str, jobs: Jobs) -> Submitted:
    return jobs.submit_job(job_id)


@router.post(
    "/jobs/<job_id>/reprocess",
    operation_id="reprocess_job",
    tags=TAGS,
    summary="Start a new execution for a finished job, optionally with another recipe.",
    description=(
        "Refused (409) while the job's execution runs, and while another reprocess of it "
        "is starting: of two calls at once, one starts an execution and the other is 409. "
        "A job whose execution ended without finishing it (stopped in the console) is "
        "first recorded as FAILED (ExecutionEnded), then run again. With `files` only "
        "those files are developed (recorded on the run as its `selection`); every other "
        "file keeps its delivered renditions. A name that is not one of the job's files, "
        "or no favourites to reprocess, is 400 before anything starts."
    ),
    responses=answers(202, "The new execution.", 400, 404, 409, 413),
    status_code=202,
)
def reprocess_job(
    job_id: str, jobs: Jobs, body: Annotated[ReprocessIn, Body()] = ReprocessIn()
) -> Reprocessing:
    return jobs.reprocess_job(job_id, body)


@router.delete(
    "/jobs/<job_id>",
    operation_id="delete_job",
    tags=TAGS,
    summary="Erase a job: every version of its originals, its renditions, shares, records.",
    description=(
        "Permanent: the originals' earlier versions and delete markers go too, so nothing "
        "can be restored. Refused (409) while a run is in progress: the job is submitted "
        "and not finished, or a reprocess of it is starting. Safe to repeat: a delete that "
        "failed midway is finished by the next one; once nothing of the job is left, 404."
    ),
    responses=answers(200, "Erased; what was removed.", 404, 409),
)
def delete_job(job_id: str, jobs: Jobs) -> JobDeleted:
    return jobs.delete_job(job_id)
