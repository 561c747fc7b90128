"""Share links: the photographer creates and revokes them; the client opens one, with no
AWS account, and gets the job's renditions (JSON, or a gallery page for a browser)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Annotated, Any
from urllib.parse import quote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from darkroom import keys
from darkroom.api import gallery, tokens
from darkroom.api.context import BaseUrl, Caller, PrefersHtml, current_service
from darkroom.api.errors import (
    BadRequest,
    Conflict,
    Gone,
    NotFound,
    answers,
    known_job_id,
)
from darkroom.api.models import (
    CreatedShare,
    CreateShareIn,
    SharedFile,
    SharedJob,
    SharedJobSummary,
    SharedRendition,
    iso,
)
from darkroom.api.openapi import PUBLIC
from darkroom.aws.job_store import JobStore
from darkroom.aws.objects import Objects
from darkroom.aws.presign import Presigner
from darkroom.aws.shares import Share, ShareIdTaken, ShareStore
from darkroom.aws.uploads import UploadStore
from darkroom.jobs import Job, utc_now
from darkroom.observability import logger
from darkroom.settings import ApiSettings


def attachment(filename: str) -> str:
    """Content-Disposition naming the file, with an ASCII fallback for old clients."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


class ShareOperations:
    """What each share route does; ApiService supplies the settings and adapters."""

    settings: ApiSettings
    jobs: JobStore
    uploads: UploadStore
    shares: ShareStore
    objects: Objects
    presigner: Presigner
    clock: Callable[[], float]

    def create_share(
        self, job_id: str, body: CreateShareIn, caller: str | None, base_url: str
    ) -> CreatedShare:
        job_id = known_job_id(job_id)
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
        if not job.has_delivery:
            # A reprocess running, or one that failed, leaves earlier renditions shareable.
            raise Conflict(
                f"job {job_id} is {job.status} and has nothing delivered yet; "
                "share it once it has finished"
            )
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
                        created_by=caller,
                    )
                )
                break
            except ShareIdTaken:
                continue
        else:  # pragma: no cover - 80-bit ids do not collide three times
            raise RuntimeError("could not draw a free share id")
        base = (s.api_public_url or base_url).rstrip("/")
        logger.info("share created", extra={"job_id": job_id, "share_id": issued.share_id})
        return CreatedShare(
            share_id=issued.share_id,
            job_id=job_id,
            token=issued.token,
            url=f"{base}/share/{issued.token}",
            expires_at=iso(expires_at),
            expires_in=expires_in,
        )

    def revoke_share(self, job_id: str, share_id: str) -> None:
        job_id = known_job_id(job_id)
        if not tokens.valid_share_id(share_id) or not self.shares.revoke(
            job_id, share_id, utc_now()
        ):
            raise NotFound(f"share {share_id!r} of job {job_id} not found")
        logger.info("share revoked", extra={"job_id": job_id, "share_id": share_id})

    def open_share(self, token: str) -> SharedJob:
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
        if not job.has_delivery:
            raise Conflict("the photos are not available yet; try again later")
        return self._shared_job(job, share)

    def _shared_job(self, job: Job, share: Share) -> SharedJob:
        """What is delivered of each file, from the file items: a reprocess in flight or
        one that failed changes none of it."""
        s = self.settings
        prefix = keys.processed_prefix(job.job_id)
        expires_in = s.download_url_expiry_seconds
        files = []
        for record in self.jobs.files(job.job_id):
            name = record.name
            renditions = []
            smallest: tuple[int, str, str | None] | None = None
            for rendition, output in sorted(record.delivered.items()):
                key = output.key
                # Only this job's objects, whatever its record says.
                if not key.startswith(prefix):
                    continue
                filename = f"{PurePosixPath(name).stem}-{rendition}{PurePosixPath(key).suffix}"
                url = self.presigner.get(
                    s.processed_bucket, key, expires_in, disposition=attachment(filename)
                )
                renditions.append(
                    SharedRendition.of_output(rendition, filename, url, output.model_dump())
                )
                pixels = (output.width or 0) * (output.height or 0)
                if smallest is None or pixels < smallest[0]:
                    smallest = (pixels, key, output.content_type)
            preview_url = None
            if smallest is not None:
                # Inline (no attachment disposition), for <img> previews.
                preview_url = self.presigner.get(
                    s.processed_bucket, smallest[1], expires_in, content_type=smallest[2]
                )
            files.append(
                SharedFile(
                    name=name,
                    status="DONE" if renditions else "FAILED",
                    renditions=renditions,
                    preview_url=preview_url,
                )
            )
        done = sum(1 for f in files if f.status == "DONE")
        return SharedJob(
            job=SharedJobSummary(
                job_id=job.job_id,
                name=job.name,
                # What is delivered, not what a reprocess in flight may make of it.
                status="DONE" if done == len(files) else "DONE_WITH_ERRORS",
                files_total=len(files),
                files_done=done,
                files_failed=len(files) - done,
                finished_at=job.delivered.finished_at if job.delivered else job.finished_at,
            ),
            expires_at=iso(share.expires_at),
            links_expire_in=expires_in,
            files=files,
        )


# -- routes ---------------------------------------------------------------------------
router = APIGatewayHttpRouter()
Shares = Annotated[ShareOperations, Depends(current_service)]


@router.post(
    "/jobs/<job_id>/shares",
    operation_id="create_share",
    tags=["photographer"],
    summary="A share link for the client to download a job's delivered renditions.",
    description=(
        "The token (256 random bits) is returned once and stored only as a hash; keep "
        "`share_id` to revoke the link. A job can be shared once a run has delivered "
        "renditions (409 before), also while it is reprocessed or after a reprocess "
        "failed: the link serves what is delivered."
    ),
    responses=answers(201, "The share link.", 400, 404, 409, 413),
    status_code=201,
)
def create_share(
    job_id: str,
    shares: Shares,
    caller: Caller,
    base_url: BaseUrl,
    body: Annotated[CreateShareIn, Body()] = CreateShareIn(),
) -> CreatedShare:
    return shares.create_share(job_id, body, caller, base_url)


@router.delete(
    "/jobs/<job_id>/shares/<share_id>",
    operation_id="revoke_share",
    tags=["photographer"],
    summary="Revoke a share link (idempotent).",
    responses=answers(204, "Revoked; the link now answers 410.", 404),
)
def revoke_share(job_id: str, share_id: str, shares: Shares) -> Response[None]:
    shares.revoke_share(job_id, share_id)
    return Response(204)


@router.get(
    "/share/<token>",
    operation_id="open_share",
    tags=["client"],
    summary="The shared job's renditions, each with a short-lived download URL.",
    description=(
        "JSON by default; with `Accept: text/html` a gallery page (previews and download "
        "links). Download URLs are presigned S3 GETs (SigV4, 15 minutes by default) that "
        "save the file under its original name (`Content-Disposition: attachment`). "
        "Always the delivered renditions: a reprocess switches a file only once it has "
        "finished, and a failed one changes nothing."
    ),
    responses=answers(
        200,
        "The shared renditions.",
        404,
        409,
        410,
        content={
            "application/json": {"model": SharedJob},
            "text/html": {"schema": {"type": "string"}},
        },
    ),
    # Open to anyone: the token is the only key.
    openapi_extensions=PUBLIC,
)
def open_share(token: str, shares: Shares, prefers_html: PrefersHtml) -> Response[Any]:
    shared = shares.open_share(token)
    # The link carries the token: nothing may pass it on as a referrer.
    headers = {"referrer-policy": "no-referrer", "vary": "Accept"}
    if prefers_html:
        headers["content-security-policy"] = gallery.content_security_policy(shared)
        headers["x-robots-tag"] = "noindex, nofollow"
        return Response(200, "text/html; charset=utf-8", gallery.render(shared), headers)
    return Response(200, "application/json", shared.model_dump(mode="json"), headers)
