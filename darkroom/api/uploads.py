"""The upload routes: declare a job and get its upload URLs, resume an interrupted upload,
and complete or abort a file uploaded in parts.

Files up to the multipart threshold go up in one presigned PUT; larger ones in presigned
parts of an S3 multipart upload that the API starts, remembers (the uploads table), lists
back on resume and completes. An answer carries at most `upload_urls_per_answer` URLs;
the next resume hands out the rest.

Its four routes share the checks of a declared job's files, which is why this module runs
past 400 lines."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from botocore.exceptions import ClientError

from darkroom import keys, multipart
from darkroom.api.assets import AssetOperations
from darkroom.api.context import Caller, current_service
from darkroom.api.errors import BadRequest, Conflict, NotFound, answers, known_job_id
from darkroom.api.models import (
    AbortedUpload,
    CompletedUpload,
    CompleteUploadIn,
    CreatedJob,
    CreateJobIn,
    MultipartPlan,
    PartUrl,
    UploadedPart,
    UploadUrl,
    UploadUrls,
    iso,
)
from darkroom.api.validation import check_files
from darkroom.aws.job_store import JobStore
from darkroom.aws.multipart import MultipartUploads, Part, same_etag
from darkroom.aws.objects import Objects
from darkroom.aws.presign import Presigner
from darkroom.aws.uploads import (
    RETENTION_SECONDS,
    DeclaredFile,
    JobExists,
    Upload,
    UploadStatus,
    UploadStore,
)
from darkroom.jobs import DeliveryPolicy, utc_now
from darkroom.observability import logger
from darkroom.recipes import parse_recipe
from darkroom.settings import ApiSettings


class UploadOperations(AssetOperations):
    """What each upload route does; ApiService supplies the settings and adapters."""

    settings: ApiSettings
    jobs: JobStore
    uploads: UploadStore
    objects: Objects
    presigner: Presigner
    multipart: MultipartUploads
    clock: Callable[[], float]

    def create_job(self, body: CreateJobIn, caller: str | None) -> CreatedJob:
        s = self.settings
        check_files(
            body.files,
            max_file_bytes=s.max_file_bytes,
            max_job_bytes=s.max_job_bytes,
            max_files=s.max_files_per_job,
        )
        recipe = None
        if body.recipe is not None:
            parsed = parse_recipe(body.recipe)
            self.require_assets(parsed)
            recipe = parsed.model_dump(mode="json")
        if body.job_id is not None:
            try:
                job_id = keys.validate_job_id(body.job_id)
            except ValueError as exc:
                raise BadRequest(str(exc)) from exc
            if self.jobs.find(job_id) is not None:
                raise Conflict(f"job {job_id} already exists")
        else:
            job_id = keys.new_job_id()
        now = self.clock()
        upload = Upload(
            job_id=job_id,
            status=UploadStatus.CREATED,
            files=tuple(DeclaredFile(name=f.name, size=f.size) for f in body.files),
            created_at=utc_now(),
            name=body.name,
            recipe=recipe,
            delivery=_delivery(body),
            created_by=caller,
            expires_ttl=int(now) + RETENTION_SECONDS,
        )
        try:
            self.uploads.create(upload)
        except JobExists as exc:
            raise Conflict(str(exc)) from exc
        expires_in = s.upload_url_expiry_seconds
        uploads, more = self._upload_urls(job_id, upload.files, {})
        logger.info("job created", extra={"job_id": job_id, "files": len(upload.files)})
        return CreatedJob(
            job_id=job_id,
            name=upload.name,
            status="CREATED",
            expires_at=iso(now + expires_in),
            expires_in=expires_in,
            uploads=uploads,
            more=more,
        )

    def resume_upload(self, job_id: str) -> UploadUrls:
        """Fresh URLs for the declared files not uploaded yet: an interrupted upload goes
        on where it stopped, however long ago its first URLs expired; a file uploaded in
        parts keeps its multipart upload, and only the parts S3 lacks get URLs."""
        upload = self._open_upload(job_id)
        job_id = upload.job_id
        present = self._uploaded(job_id)
        wrong = [f for f in upload.files if present.get(f.name) not in (None, f.size)]
        if wrong:
            # An upload never replaces a file (If-None-Match on the PUT and the complete).
            raise Conflict(
                f"job {job_id} has files of another size than declared, which no upload "
                f"can replace: {', '.join(f.name for f in wrong)}; delete the job and "
                "upload it again",
                files=[
                    {"name": f.name, "expected_size": f.size, "actual_size": present[f.name]}
                    for f in wrong
                ],
            )
        expires_in = self.settings.upload_url_expiry_seconds
        uploads, more = self._upload_urls(job_id, upload.files, present)
        logger.info("upload resumed", extra={"job_id": job_id, "files": len(uploads)})
        return UploadUrls(
            job_id=job_id,
            status="CREATED",
            expires_at=iso(self.clock() + expires_in),
            expires_in=expires_in,
            uploads=uploads,
            uploaded=[f.name for f in upload.files if f.name in present],
            more=more,
        )

    def complete_upload(
        self, job_id: str, file_name: str, body: CompleteUploadIn
    ) -> CompletedUpload:
        """Assemble a file uploaded in parts, once S3 holds every part the plan asked for
        at its size and the client's ETags are S3's."""
        upload = self._open_upload(job_id)
        f = _declared(upload, file_name)
        done = CompletedUpload(job_id=upload.job_id, name=f.name, size=f.size, status="UPLOADED")
        bucket, key = self.settings.raw_bucket, keys.raw_key(upload.job_id, f.name)
        if self._stored_size(key) == f.size:
            return done  # completed already (an answer lost, a retry)
        if f.upload_id is None or f.part_size is None:
            raise Conflict(
                f"{f.name} has no upload in parts in progress; POST /jobs/{upload.job_id}"
                "/uploads for its URLs",
            )
        held = self.multipart.parts(bucket, key, f.upload_id)
        if held is None:
            self.uploads.end_multipart(upload.job_id, f.name, f.upload_id)
            raise Conflict(
                f"the upload in parts of {f.name} is gone (aborted or expired); POST "
                f"/jobs/{upload.job_id}/uploads starts it again"
            )
        etags = _checked_parts(f, f.part_size, held, body)
        try:
            self.multipart.complete(bucket, key, f.upload_id, etags, f.size)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "412"):
                raise Conflict(f"{f.name} exists already; an original is never replaced") from exc
            if code in ("InvalidPart", "InvalidPartOrder", "EntityTooSmall"):
                raise BadRequest(f"S3 refused the parts of {f.name}: {code}") from exc
            raise
        self.uploads.end_multipart(upload.job_id, f.name, f.upload_id)
        logger.info("upload completed", extra={"job_id": upload.job_id, "parts": len(etags)})
        return done

    def abort_upload(self, job_id: str, file_name: str) -> AbortedUpload:
        """Abort a file's upload in parts and free what its parts hold in S3; the next
        resume starts it afresh."""
        upload = self._open_upload(job_id)
        f = _declared(upload, file_name)
        bucket, key = self.settings.raw_bucket, keys.raw_key(upload.job_id, f.name)
        # Every upload of the key, not only the one recorded: two resumes at once may
        # each have started one.
        ids = {i for k, i in self.multipart.in_progress(bucket, key) if k == key}
        aborted = sum(self.multipart.abort(bucket, key, i) for i in sorted(ids))
        if f.upload_id is not None:
            self.uploads.end_multipart(upload.job_id, f.name, f.upload_id)
        logger.info("upload aborted", extra={"job_id": upload.job_id, "aborted": aborted})
        return AbortedUpload(job_id=upload.job_id, name=f.name, aborted=aborted)

    def upload_problems(self, upload: Upload) -> list[dict[str, Any]]:
        """Each declared file not uploaded at its size: what submitting refuses."""
        present = self._uploaded(upload.job_id)
        return [
            {
                "name": f.name,
                "expected_size": f.size,
                "actual_size": present.get(f.name),
                **({"in_parts": True} if f.upload_id else {}),
            }
            for f in upload.files
            if present.get(f.name) != f.size
        ]

    # -- helpers ----------------------------------------------------------------------
    def _open_upload(self, job_id: str) -> Upload:
        job_id = known_job_id(job_id)
        upload = self.uploads.get(job_id)
        if upload is None:
            if self.jobs.find(job_id) is not None:
                raise Conflict(f"job {job_id} was already submitted; its files cannot change")
            raise NotFound(f"job {job_id} not found")
        if upload.status is not UploadStatus.CREATED:
            raise Conflict(f"job {job_id} was already submitted; its files cannot change")
        return upload

    def _upload_urls(
        self, job_id: str, files: Sequence[DeclaredFile], present: dict[str, int]
    ) -> tuple[list[UploadUrl], bool]:
        """URLs for the files not present, within the answer's budget; whether any
        missing file (or part) was left for the next answer."""
        s = self.settings
        budget = s.upload_urls_per_answer
        urls: list[UploadUrl] = []
        for f in files:
            if f.name in present:
                continue
            if budget < 1:
                return urls, True
            if f.size <= s.multipart_threshold_bytes and f.upload_id is None:
                put = self.presigner.put(
                    s.raw_bucket, keys.raw_key(job_id, f.name), f.size, s.upload_url_expiry_seconds
                )
                urls.append(
                    UploadUrl(
                        name=f.name, size=f.size, method="PUT", url=put.url, headers=put.headers
                    )
                )
                budget -= 1
                continue
            plan = self._multipart_plan(job_id, f, budget)
            urls.append(UploadUrl(name=f.name, size=f.size, method="MULTIPART", multipart=plan))
            budget -= len(plan.parts)
            if not plan.all_parts:
                return urls, True
        return urls, False

    def _multipart_plan(self, job_id: str, f: DeclaredFile, budget: int) -> MultipartPlan:
        """The file's multipart upload (the one recorded, or a new one) and URLs for at
        most `budget` of the parts S3 does not have at their size."""
        s = self.settings
        bucket, key = s.raw_bucket, keys.raw_key(job_id, f.name)
        upload_id, part_bytes = f.upload_id, f.part_size
        held = self.multipart.parts(bucket, key, upload_id) if upload_id else None
        if upload_id is None or part_bytes is None or held is None:
            if upload_id is not None:
                # Gone (aborted, or expired by the bucket's lifecycle rule): start again.
                self.uploads.end_multipart(job_id, f.name, upload_id)
            part_bytes = multipart.part_size(f.size, s.multipart_part_bytes)
            started = self.multipart.start(bucket, key)
            upload_id, part_bytes = self.uploads.start_multipart(
                job_id, f.name, started, part_bytes
            )
            if upload_id != started:
                self.multipart.abort(bucket, key, started)
            held = self.multipart.parts(bucket, key, upload_id) or {}
        count = multipart.part_count(f.size, part_bytes)
        good = {
            n: p
            for n, p in held.items()
            if n <= count and p.size == multipart.part_range(n, f.size, part_bytes)[1]
        }
        missing = [n for n in range(1, count + 1) if n not in good]
        parts = []
        for n in missing[: max(0, budget)]:
            size = multipart.part_range(n, f.size, part_bytes)[1]
            put = self.presigner.part(bucket, key, upload_id, n, size, s.upload_url_expiry_seconds)
            parts.append(PartUrl(part_number=n, size=size, url=put.url, headers=put.headers))
        return MultipartPlan(
            upload_id=upload_id,
            part_size=part_bytes,
            parts_total=count,
            parts=parts,
            uploaded=[
                UploadedPart(part_number=n, etag=p.etag, size=p.size)
                for n, p in sorted(good.items())
            ],
            all_parts=len(parts) == len(missing),
        )

    def _stored_size(self, key: str) -> int | None:
        found = self.objects.list(self.settings.raw_bucket, key)
        return next((int(o.get("Size", 0)) for o in found if o["Key"] == key), None)

    def _uploaded(self, job_id: str) -> dict[str, int]:
        present: dict[str, int] = {}
        for obj in self.objects.list(self.settings.raw_bucket, keys.raw_prefix(job_id)):
            name = keys.file_name_from_raw_key(job_id, obj["Key"])
            if name is not None:
                present[name] = int(obj.get("Size", 0))
        return present


def _declared(upload: Upload, file_name: str) -> DeclaredFile:
    for f in upload.files:
        if f.name == file_name:
            return f
    raise NotFound(f"job {upload.job_id} declares no file {file_name!r}")


def _checked_parts(
    f: DeclaredFile, part_bytes: int, held: dict[int, Part], body: CompleteUploadIn
) -> dict[int, str]:
    """The parts to complete with, by number, once every check holds: the client names
    each part once, 1..n; S3 has each at its planned size; each ETag is S3's."""
    count = multipart.part_count(f.size, part_bytes)
    given = {p.part_number: p.etag for p in body.parts}
    if len(given) != len(body.parts) or set(given) != set(range(1, count + 1)):
        raise BadRequest(
            f"{f.name} is {count} parts: name each of parts 1 to {count} once",
            parts_total=count,
        )
    absent = [n for n in given if n not in held]
    wrong_size = [
        {"part_number": n, "size": held[n].size, "expected_size": size}
        for n in given
        if n in held and held[n].size != (size := multipart.part_range(n, f.size, part_bytes)[1])
    ]
    if absent or wrong_size:
        raise Conflict(
            f"S3 does not hold every part of {f.name} at its size yet"
            + (f"; missing: {', '.join(map(str, absent[:20]))}" if absent else "")
            + (f"; of another size: {len(wrong_size)}" if wrong_size else "")
            + "; POST /jobs/{job_id}/uploads for their URLs",
            missing_parts=absent,
            wrong_size_parts=wrong_size,
        )
    mismatched = [n for n, etag in given.items() if not same_etag(etag, held[n].etag)]
    if mismatched:
        raise BadRequest(
            f"the ETags of {len(mismatched)} part(s) of {f.name} are not S3's "
            f"(parts {', '.join(map(str, mismatched[:20]))}); the upload is kept: "
            f"POST /jobs/{{job_id}}/uploads lists the parts S3 holds",
            mismatched_parts=mismatched,
        )
    return {n: held[n].etag for n in sorted(given)}


# -- routes ---------------------------------------------------------------------------
# A path parameter arrives as the client percent-encoded it (the event's raw path).
router = APIGatewayHttpRouter()
Uploads = Annotated[UploadOperations, Depends(current_service)]
TAGS = ["photographer"]


@router.post(
    "/jobs",
    operation_id="create_job",
    tags=TAGS,
    summary="Declare a job's RAW files; upload URLs for each.",
    description=(
        "File names are single plain names with a camera RAW extension (dng, cr2, cr3, nef, "
        "arw, raf, orf, rw2, pef, srw, iiq, ...), unique up to their extension since "
        "renditions are named after them. Each file and the whole job are size-limited "
        "(413). A file up to the multipart threshold has one URL (`method: PUT`): upload "
        "it with `PUT`, sending the headers given with it (the declared `Content-Length`, "
        "and `If-None-Match: *`: a URL creates its file once and never replaces it). A "
        "larger one (`method: MULTIPART`) is uploaded in parts: PUT each part to its URL, "
        "then complete it (`POST /jobs/{job_id}/files/{file_name}/complete`). With `more`, "
        "ask `POST /jobs/{job_id}/uploads` for the rest of the URLs. Then submit the job."
    ),
    responses=answers(201, "The job is created; upload its files, then submit it.", 400, 409, 413),
    status_code=201,
)
def create_job(body: CreateJobIn, uploads: Uploads, caller: Caller) -> CreatedJob:
    return uploads.create_job(body, caller)


@router.post(
    "/jobs/<job_id>/uploads",
    operation_id="resume_upload",
    tags=TAGS,
    summary="Fresh upload URLs for the declared files (and parts) not uploaded yet.",
    description=(
        "Resumes an interrupted upload: `uploads` has the URLs of the declared files that "
        "have not arrived (send the headers given with each), `uploaded` names the ones "
        "that have. A file uploaded in parts keeps its upload: URLs only for the parts S3 "
        "does not have, and the ETags of those it has. Only for a job not yet submitted "
        "(409 after). An upload can create its file once and never replace it, so a file "
        "of another size than declared is 409: delete the job and create it again."
    ),
    responses=answers(200, "The URLs of the files still to upload.", 404, 409),
)
def resume_upload(job_id: str, uploads: Uploads) -> UploadUrls:
    return uploads.resume_upload(job_id)


@router.post(
    "/jobs/<job_id>/files/<file_name>/complete",
    operation_id="complete_upload",
    tags=TAGS,
    summary="Complete a file uploaded in parts, with every part's ETag.",
    description=(
        "Checked against what S3 holds: each part 1..n once, each at its planned size, "
        "each ETag S3's; the file then exists at its declared size and is never replaced. "
        "400 for ETags that are not S3's, 409 while parts are missing: either way the "
        "upload is kept and resumable. Completing a completed file answers 200 again."
    ),
    responses=answers(200, "The file is uploaded.", 400, 404, 409),
)
def complete_upload(
    job_id: str, file_name: str, body: CompleteUploadIn, uploads: Uploads
) -> CompletedUpload:
    return uploads.complete_upload(job_id, unquote(file_name), body)


@router.post(
    "/jobs/<job_id>/files/<file_name>/abort",
    operation_id="abort_upload",
    tags=TAGS,
    summary="Abort a file's upload in parts; its parts are freed.",
    description=(
        "The next `POST /jobs/{job_id}/uploads` starts the file's upload afresh. A file "
        "with no upload in parts in progress answers `aborted: 0`."
    ),
    responses=answers(200, "What was aborted.", 404, 409),
)
def abort_upload(job_id: str, file_name: str, uploads: Uploads) -> AbortedUpload:
    return uploads.abort_upload(job_id, unquote(file_name))


def _delivery(body: CreateJobIn) -> dict[str, Any] | None:
    """The job's delivery policy, for its manifest (None: nothing was said)."""
    if body.client is None and body.deliver == "manual":
        return None
    policy = DeliveryPolicy(
        client_name=body.client.name if body.client else None,
        client_email=body.client.email if body.client else None,
        deliver=body.deliver,
        share_expires_in=body.share_expires_in,
        notify_client_on_reprocess=body.notify_client_on_reprocess,
    )
    return policy.model_dump(mode="json")
