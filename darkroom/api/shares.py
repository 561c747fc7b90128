"""Share links: the photographer creates and revokes them; the client opens one, with no
AWS account, and gets the job's renditions a page at a time (JSON, or a gallery page for
a browser), each behind a stable link that redirects to a fresh presigned GET.

(Just over 400 lines: a share's whole life, from creating it to following its links, is
one router.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal
from urllib.parse import quote, unquote, urlsplit

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from darkroom import durations, keys, names
from darkroom.api import gallery, paging, share_access, tokens
from darkroom.api.context import REQUEST_COOKIES, BaseUrl, Caller, PrefersHtml, current_service
from darkroom.api.errors import (
    BadRequest,
    Conflict,
    Gone,
    NotFound,
    PasswordRequired,
    TooManyAttempts,
    Unavailable,
    answers,
    known_job_id,
)
from darkroom.api.models import (
    CreatedShare,
    CreateShareIn,
    ExtendShareIn,
    SharedArchive,
    SharedFavourite,
    SharedFile,
    SharedJob,
    SharedJobSummary,
    ShareList,
    SharePasswordIn,
    ShareView,
    StudioView,
    iso,
)
from darkroom.api.openapi import PUBLIC
from darkroom.api.scripts import serve_script
from darkroom.api.share_links import (
    PAGE_FILES_BYTES,
    archive_name,
    disposition,
    download_name,
    encoded,
    recipe_of,
    recipe_order,
    shared_file,
)
from darkroom.aws.job_store import JobStore
from darkroom.aws.objects import Objects
from darkroom.aws.presign import Presigner
from darkroom.aws.shares import Share, ShareIdTaken, ShareStore
from darkroom.aws.uploads import UploadStore
from darkroom.filenames import job_naming as naming
from darkroom.jobs import Job, utc_now
from darkroom.observability import logger
from darkroom.recipes import label_of
from darkroom.settings import ApiSettings

# Files read at a time when looking for a photo's previous or next one: the neighbour
# is almost always the first (only files that never developed are passed over).
NEIGHBOUR_PAGE = 5


class ShareOperations:
    """What each share route does; ApiService supplies the settings and adapters."""

    settings: ApiSettings
    jobs: JobStore
    uploads: UploadStore
    shares: ShareStore
    objects: Objects
    presigner: Presigner
    clock: Callable[[], float]
    share_favourites: Callable[[Share], dict[str, SharedFavourite]]
    # The key that signs unlock cookies, or how to read it (the deployment's secret):
    # read on the first protected share, so an API that never meets one never asks.
    share_cookie_key: bytes | Callable[[], bytes]

    def create_share(
        self, job_id: str, body: CreateShareIn, caller: str | None, base_url: str
    ) -> CreatedShare:
        job_id = known_job_id(job_id)
        s = self.settings
        expires_in = s.share_default_expiry_seconds if body.expires_in is None else body.expires_in
        self._check_life(expires_in, "expires_in")
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
        password_hash = None
        if body.password is not None:
            if not self._cookie_key():
                # Such a share could never be opened: refuse it now, not at the client.
                raise Conflict(
                    "this deployment has no share cookie key (its secret was not loaded), "
                    "so a password-protected share could not be opened; share without "
                    "--password or fix the deployment"
                )
            password_hash = share_access.hash_password(body.password)
        expires_at = int(self.clock()) + expires_in
        issued = issue_share(
            self.shares,
            job_id,
            expires_at,
            created_by=caller,
            message=body.message,
            proofing=body.proofing,
            password_hash=password_hash,
        )
        base = self.public_base(base_url)
        logger.info("share created", extra={"job_id": job_id, "share_id": issued.share_id})
        return CreatedShare(
            share_id=issued.share_id,
            job_id=job_id,
            token=issued.token,
            url=f"{base}/share/{issued.token}",
            expires_at=iso(expires_at),
            expires_in=expires_in,
            password=password_hash is not None,
        )

    def _check_life(self, seconds: int, field: str) -> None:
        longest = self.settings.share_max_expiry_seconds
        if not 1 <= seconds <= longest:
            raise BadRequest(
                f"{field} must be between 1 second and {durations.words(longest)} "
                f"({longest} seconds); got {seconds}"
            )

    def list_shares(self, job_id: str) -> ShareList:
        job_id = known_job_id(job_id)
        if self.jobs.find(job_id) is None and self.uploads.get(job_id) is None:
            raise NotFound(f"job {job_id} not found")
        now = self.clock()
        views = [self._view(share, now) for share in self.shares.of_job(job_id)]
        return ShareList(shares=sorted(views, key=lambda v: v.created_at, reverse=True))

    @staticmethod
    def _view(share: Share, now: float) -> ShareView:
        state: Literal["active", "expired", "revoked"] = (
            "revoked" if share.revoked_at else "expired" if now >= share.expires_at else "active"
        )
        return ShareView(
            share_id=share.share_id,
            job_id=share.job_id,
            state=state,
            created_at=share.created_at,
            expires_at=iso(share.expires_at),
            revoked_at=share.revoked_at,
            message=share.message,
            proofing=share.proofing,
            views=share.views,
            downloads=share.downloads,
            password=share.password_hash is not None,
        )

    def extend_share(self, job_id: str, share_id: str, body: ExtendShareIn) -> ShareView:
        """A later expiry for a live or expired link; a revoked one stays revoked."""
        job_id = known_job_id(job_id)
        self._check_life(body.extend_by, "extend_by")
        missing = NotFound(f"share {share_id!r} of job {job_id} not found")
        share = self.shares.get(share_id) if tokens.valid_share_id(share_id) else None
        if share is None or share.job_id != job_id:
            raise missing
        if share.revoked_at:
            raise Conflict(f"share {share_id} was revoked; create a new one")
        now = int(self.clock())
        expires_at = max(now, share.expires_at) + body.extend_by
        longest = self.settings.share_max_expiry_seconds
        if expires_at - now > longest:
            raise BadRequest(
                f"extend_by would keep the link for {durations.words(expires_at - now)}; "
                f"a link lives at most {durations.words(longest)} from now"
            )
        extended = self.shares.extend(job_id, share_id, expires_at, utc_now())
        if extended is None:
            # Revoked (or erased) between the read and the write.
            raise Conflict(f"share {share_id} was revoked; create a new one")
        logger.info("share extended", extra={"job_id": job_id, "share_id": share_id})
        return self._view(extended, now)

    def set_share_password(self, job_id: str, share_id: str, body: SharePasswordIn) -> ShareView:
        """A new password for a live link, or none. The cookie is signed over the password
        hash's salt, so every browser unlocked before is asked again."""
        job_id = known_job_id(job_id)
        missing = NotFound(f"share {share_id!r} of job {job_id} not found")
        share = self.shares.get(share_id) if tokens.valid_share_id(share_id) else None
        if share is None or share.job_id != job_id:
            raise missing
        if share.revoked_at:
            raise Conflict(f"share {share_id} was revoked; create a new one")
        if body.password is not None and not self._cookie_key():
            raise Conflict(
                "this deployment has no share cookie key (its secret was not loaded), "
                "so a password-protected share could not be opened"
            )
        hashed = None if body.password is None else share_access.hash_password(body.password)
        changed = self.shares.set_password(job_id, share_id, hashed)
        if changed is None:
            raise Conflict(f"share {share_id} was revoked; create a new one")
        logger.info(
            "share password changed" if hashed else "share password removed",
            extra={"job_id": job_id, "share_id": share_id},
        )
        return self._view(changed, self.clock())

    def _cookie_key(self) -> bytes:
        """The unlock cookies' key, read once; a secret that cannot be read opens
        nothing (503), and is asked for again next time."""
        key = self.share_cookie_key
        if callable(key):
            try:
                key = key()
            except Exception as exc:
                logger.error("share cookie key not readable", exc_info=True)
                raise Unavailable(
                    "protected links cannot be checked right now; please try again in a minute"
                ) from exc
            self.share_cookie_key = key
        return key

    def _count(self, share: Share, counter: str) -> None:
        """Count a view or a download; a count that fails is lost, never the client's
        page or file."""
        try:
            self.shares.count(share.share_id, counter)
        except Exception:
            # Whatever failed (throttling, a network error, a share erased meanwhile):
            # a lost count is the lesser harm.
            logger.warning(
                "share count not recorded",
                extra={"share_id": share.share_id, "counter": counter},
                exc_info=True,
            )

    def revoke_share(self, job_id: str, share_id: str) -> None:
        job_id = known_job_id(job_id)
        if not tokens.valid_share_id(share_id) or not self.shares.revoke(
            job_id, share_id, utc_now()
        ):
            raise NotFound(f"share {share_id!r} of job {job_id} not found")
        logger.info("share revoked", extra={"job_id": job_id, "share_id": share_id})

    def _live_share(self, token: str) -> Share:
        """The share a token names, if it is neither revoked nor expired."""
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
        return share

    def _shared(self, token: str) -> tuple[Share, Job]:
        """The share a token opens and its job, if it may be opened now.

        Every route under /share/{token} comes through here, so this is the one place a
        password is asked for: a protected share opens only for a request carrying its
        unlock cookie (read from the request's cookies, REQUEST_COOKIES)."""
        unknown = NotFound("unknown share link")
        share = self._live_share(token)
        if share.password_hash is not None and not share_access.cookie_opens(
            self._cookie_key(),
            share_access.cookie_from(list(REQUEST_COOKIES.get())),
            share.token_sha256,
            share.password_hash,
            self.clock(),
        ):
            raise PasswordRequired(
                "this share is protected by a password: POST it to /share/{token}/unlock, "
                "then send the cookie that answer sets",
                token=token,
            )
        job = self.jobs.find(share.job_id)
        if job is None:
            raise unknown
        if not job.has_delivery:
            raise Conflict("the photos are not available yet; try again later")
        return share, job

    def unlock_share(self, token: str, password: str, base_url: str) -> str | None:
        """The Set-Cookie line that opens a protected share, if `password` is its
        password; None for a share that has none (nothing to unlock).

        Wrong passwords are limited per share (settings: share_unlock_attempts per
        share_unlock_window_seconds), counted in the shares table before the check, so
        a write that fails lets no one in (503)."""
        share = self._live_share(token)
        if share.password_hash is None:
            return None
        s = self.settings
        now = int(self.clock())
        window = s.share_unlock_window_seconds
        start = now - now % window
        try:
            counted = self.shares.count_unlock_attempt(
                share.share_id, start, window, s.share_unlock_attempts
            )
        except Exception as exc:
            # Never the password, nor the token: the share id says which.
            logger.error(
                "unlock attempt not counted; refused",
                extra={"share_id": share.share_id},
                exc_info=True,
            )
            raise Unavailable(
                "the password cannot be checked right now; please try again in a minute"
            ) from exc
        if not counted:
            raise TooManyAttempts(
                "too many wrong passwords for this share; try again later",
                token=token,
                retry_after=max(start + window - now, 1),
            )
        if not share_access.password_matches(password, share.password_hash):
            logger.info("share unlock refused: wrong password", extra={"share_id": share.share_id})
            raise PasswordRequired("wrong password", token=token, wrong=True)
        try:
            self.shares.refund_unlock_attempt(share.share_id, start)
        except Exception:
            # The client is in; at worst one right password counts as a wrong one.
            logger.warning(
                "unlock attempt not refunded", extra={"share_id": share.share_id}, exc_info=True
            )
        expires = min(now + s.share_cookie_seconds, share.expires_at)
        link = urlsplit(f"{self.public_base(base_url)}/share/{token}")
        logger.info("share unlocked", extra={"share_id": share.share_id})
        return share_access.set_cookie_header(
            share_access.sign_cookie(
                self._cookie_key(), share.token_sha256, share.password_hash, expires
            ),
            path=link.path,
            max_age=expires - now,
            secure=link.scheme == "https",
        )

    def open_share(self, token: str, cursor: str | None, limit: int, base_url: str) -> SharedJob:
        """One page of what is delivered, from the file items in name order: a reprocess
        in flight or one that failed changes none of it. Every link in it is stable."""
        share, job = self._shared(token)
        after = paging.decode_cursor(cursor)
        links = f"{self.public_base(base_url)}/share/{token}"
        records, next_name = self.jobs.files_page(
            job.job_id, start_after=after, limit=limit, delivered=job.delivered
        )
        files: list[SharedFile] = []
        budget = PAGE_FILES_BYTES
        file_names = naming(job)
        recipe = recipe_of(job)
        order = recipe_order(recipe)
        marks = self.share_favourites(share)
        for record in records:
            shared = shared_file(job, record, links, file_names, recipe)
            if shared is None:
                continue  # never developed: nothing to offer
            if record.name in marks:
                shared = shared.model_copy(update={"favourite": marks[record.name]})
            budget -= len(encoded(shared)) + 1
            if budget < 0 and files:
                # The page is full: the next one starts at this file.
                next_name = files[-1].name
                break
            files.append(shared)
        delivered = job.delivered
        prefix = keys.processed_prefix(job.job_id)
        if cursor is None:
            # The gallery opened (its further pages are the same visit).
            self._count(share, names.SHARE_VIEWS)
        return SharedJob(
            job=SharedJobSummary(
                job_id=job.job_id,
                name=job.name,
                # What is delivered, not what a reprocess in flight may make of it; what
                # failed is the photographer's business.
                files_done=delivered.files_delivered if delivered else 0,
                finished_at=delivered.finished_at if delivered else job.finished_at,
            ),
            studio=studio_of(self.settings),
            message=share.message,
            proofing=share.proofing,
            expires_at=iso(share.expires_at),
            archives={
                rendition: SharedArchive(
                    url=f"{links}/archives/{quote(rendition, safe='')}",
                    label=label_of(rendition, recipe),
                    bytes=archive.bytes,
                    files=archive.files,
                )
                # In the recipe's order, as each file's renditions are.
                for rendition, archive in sorted(
                    (delivered.archives if delivered else {}).items(),
                    key=lambda item: (order.get(item[0], len(order)), item[0]),
                )
                if archive.key.startswith(prefix)
            },
            files=files,
            next_cursor=None if next_name is None else paging.encode_cursor(next_name),
        )

    def photo_page(self, token: str, file_name: str, base_url: str) -> gallery.PhotoPage:
        """One delivered photo of the share and its neighbours in name order (those
        that never developed skipped), for its page of its own."""
        share, job = self._shared(token)
        missing = NotFound("no such photo in this share")
        try:
            keys.validate_file_name(file_name)
        except ValueError as exc:
            raise missing from exc
        links = f"{self.public_base(base_url)}/share/{token}"
        file_names, recipe = naming(job), recipe_of(job)
        record = self.jobs.file(job.job_id, file_name, delivered=job.delivered)
        photo = shared_file(job, record, links, file_names, recipe) if record is not None else None
        if photo is None:
            raise missing
        mark = self.share_favourites(share).get(photo.name)
        if mark is not None:
            photo = photo.model_copy(update={"favourite": mark})

        def neighbour(descending: bool) -> str | None:
            after: str | None = file_name
            while after is not None:
                records, after = self.jobs.files_page(
                    job.job_id,
                    start_after=after,
                    limit=NEIGHBOUR_PAGE,
                    delivered=job.delivered,
                    descending=descending,
                )
                for r in records:
                    near = shared_file(job, r, links, file_names, recipe)
                    if near is not None and near.page_url:
                        return near.page_url
            return None

        delivered = job.delivered
        return gallery.PhotoPage(
            shared=SharedJob(
                job=SharedJobSummary(
                    job_id=job.job_id,
                    name=job.name,
                    files_done=delivered.files_delivered if delivered else 0,
                    finished_at=delivered.finished_at if delivered else job.finished_at,
                ),
                studio=studio_of(self.settings),
                message=share.message,
                proofing=share.proofing,
                expires_at=iso(share.expires_at),
                files=[photo],
                next_cursor=None,
            ),
            photo=photo,
            share_url=links,
            previous_url=neighbour(descending=True),
            next_url=neighbour(descending=False),
        )

    def shared_file_url(self, token: str, file_name: str, rendition: str, download: bool) -> str:
        """A fresh presigned GET of one delivered rendition: inline, or as an attachment."""
        share, job = self._shared(token)
        missing = NotFound("no such photo in this share")
        try:
            keys.validate_file_name(file_name)
        except ValueError as exc:
            raise missing from exc
        record = self.jobs.file(job.job_id, file_name, delivered=job.delivered)
        output = record.delivered.get(rendition) if record is not None else None
        if record is None or output is None:
            raise missing
        url = self._presigned_get(
            job,
            output.key,
            missing,
            disposition(
                "attachment" if download else "inline",
                download_name(naming(job), record, rendition, output.key),
            ),
            output.content_type,
        )
        if download:
            self._count(share, names.SHARE_DOWNLOADS)
        return url

    def shared_archive_url(self, token: str, rendition: str) -> str:
        """A fresh presigned GET of one rendition's ZIP, as an attachment."""
        share, job = self._shared(token)
        archive = job.delivered.archives.get(rendition) if job.delivered else None
        missing = NotFound("no download-all archive for this rendition yet")
        if archive is None:
            raise missing
        url = self._presigned_get(
            job,
            archive.key,
            missing,
            disposition("attachment", archive_name(job, rendition)),
            "application/zip",
        )
        self._count(share, names.SHARE_DOWNLOADS)
        return url

    def _presigned_get(
        self,
        job: Job,
        key: str,
        missing: NotFound,
        content_disposition: str,
        content_type: str | None,
    ) -> str:
        """What a stable link redirects to: a fresh presigned GET of one of the job's
        delivered objects. Only this job's objects, whatever its records say."""
        if not key.startswith(keys.processed_prefix(job.job_id)):
            raise missing
        return self.presigner.get(
            self.settings.processed_bucket,
            key,
            self.settings.download_url_expiry_seconds,
            disposition=content_disposition,
            content_type=content_type,
        )

    def bucket_origin(self) -> str:
        """Where the renditions' presigned URLs point (what a gallery page's images are
        redirected to); presigning needs no request. A key the API may read, so even
        this URL is one its role allows."""
        url = self.presigner.get(self.settings.processed_bucket, names.PROCESSED_PREFIX, 60)
        return gallery.origin(url)

    def public_base(self, base_url: str) -> str:
        return (self.settings.api_public_url or base_url).rstrip("/")


def studio_of(settings: ApiSettings) -> StudioView:
    return StudioView(
        name=settings.studio_name or None,
        logo_url=settings.studio_logo_url or None,
        accent_colour=settings.studio_accent_colour,
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
    "/jobs/<job_id>/shares",
    operation_id="list_shares",
    tags=["photographer"],
    summary="A job's share links, newest first, with how often each was opened and used.",
    description=(
        "Each share's state (active, expired, revoked), its expiry, its message and its "
        "counts: `views` (its gallery opened) and `downloads` (files and ZIPs). Counted "
        "per share, nothing about who. Tokens are never stored, so never listed."
    ),
    responses=answers(200, "The job's shares.", 404),
)
def list_shares(job_id: str, shares: Shares) -> ShareList:
    return shares.list_shares(job_id)


@router.post(
    "/jobs/<job_id>/shares/<share_id>/extend",
    operation_id="extend_share",
    tags=["photographer"],
    summary="Keep a share link working longer.",
    description=(
        "Adds `extend_by` seconds to the link's expiry (to now, if it has expired), up to "
        "the deployment's longest share life from now. The link and its token stay the "
        "same. A revoked link cannot be extended (409): create a new one."
    ),
    responses=answers(200, "The share with its new expiry.", 400, 404, 409),
)
def extend_share(
    job_id: str, share_id: str, body: Annotated[ExtendShareIn, Body()], shares: Shares
) -> ShareView:
    return shares.extend_share(job_id, share_id, body)


@router.put(
    "/jobs/<job_id>/shares/<share_id>/password",
    operation_id="set_share_password",
    tags=["photographer"],
    summary="Change a share link's password, or remove it.",
    description=(
        "Sets a new password (stored only as a salted scrypt hash) or, with null, opens "
        "the link to anyone who has it. Every browser unlocked before must unlock again. "
        "The link and its token stay the same. A revoked link is 409."
    ),
    responses=answers(200, "The share, `password` saying whether it has one.", 400, 404, 409),
)
def set_share_password(
    job_id: str, share_id: str, body: Annotated[SharePasswordIn, Body()], shares: Shares
) -> ShareView:
    return shares.set_share_password(job_id, share_id, body)


@router.get(
    "/share/<token>",
    operation_id="open_share",
    tags=["client"],
    summary="A page of the shared job's delivered renditions, each with stable links.",
    description=(
        "JSON by default; with `Accept: text/html` a gallery page (previews, view and "
        "download links, download-all ZIPs; further pages load as the client scrolls, or "
        'through its "More photos" link). Files come in name order, `limit` at most '
        "(fewer when a page would pass 1 MB); pass `next_cursor` as `cursor` for the next "
        "page. Every link is stable for the share's life: it checks the share, then "
        "redirects to a fresh presigned S3 GET. Always the delivered renditions: a "
        "reprocess switches a file only once it has finished, and a failed one changes "
        "nothing. A file that never developed is not listed, nor counted. A browser "
        "(`Accept: text/html`) is answered 404, 409 and 410 with a page saying what to "
        "do; other clients get the JSON error. Opening the first page counts a view."
    ),
    responses=answers(
        200,
        "The shared renditions.",
        400,
        401,
        404,
        409,
        410,
        content={
            "application/json": {"model": SharedJob},
            "text/html": {"schema": {"type": "string"}},
        },
        pages=True,
    ),
    # Open to anyone: the token is the only key.
    openapi_extensions=PUBLIC,
)
def open_share(
    token: str,
    shares: Shares,
    prefers_html: PrefersHtml,
    base_url: BaseUrl,
    cursor: Annotated[
        str | None, Query(description="The `next_cursor` of the previous page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=paging.MAX_FILES)] = paging.DEFAULT_FILES,
) -> Response[Any]:
    shared = shares.open_share(token, cursor, limit, base_url)
    if prefers_html:
        base = shares.public_base(base_url)
        page = gallery.Page(
            shared=shared,
            share_url=f"{base}/share/{token}",
            script_url=f"{base}{GALLERY_SCRIPT_PATH}",
            limit=None if limit == paging.DEFAULT_FILES else limit,
            viewer_script_url=f"{base}{VIEWER_SCRIPT_PATH}",
            cursor=cursor,
            proofing_script_url=f"{base}/assets/proofing.js",
        )
        headers = {
            **PRIVATE_HEADERS,
            "content-security-policy": gallery.content_security_policy(
                page, shares.bucket_origin()
            ),
            "x-robots-tag": "noindex, nofollow",
        }
        return Response(200, "text/html; charset=utf-8", gallery.render(page), headers)
    return Response(200, "application/json", shared.model_dump(mode="json"), PRIVATE_HEADERS)


# The link carries the token: nothing may pass it on as a referrer.
PRIVATE_HEADERS = {"referrer-policy": "no-referrer", "vary": "Accept"}


def _redirect(url: str) -> Response[None]:
    # Never cached: each click gets a presigned URL of its own, fresh.
    headers = {"location": url, "cache-control": "no-store", "referrer-policy": "no-referrer"}
    return Response(302, None, None, headers)


@router.get(
    "/share/<token>/files/<file_name>/<rendition>",
    operation_id="open_shared_file",
    tags=["client"],
    summary="One delivered rendition of a shared file: a redirect to a fresh presigned GET.",
    description=(
        "The stable link a share page lists (`file_name` URL-quoted). It checks the share "
        "as `GET /share/{token}` does (404 unknown, 410 expired or revoked), then answers "
        "302 to a presigned S3 GET (SigV4, 15 minutes by default) of what is delivered of "
        "the file: inline, or with `download=1` as an attachment saved as "
        "`<stem>-<rendition>.<ext>`, counted as a download of the share. 404 when the "
        "file has no such rendition delivered."
    ),
    responses=answers(
        302,
        "To the rendition; `Location` is a presigned S3 GET.",
        401,
        404,
        409,
        410,
        content={},
        pages=True,
    ),
    openapi_extensions=PUBLIC,
)
def open_shared_file(
    token: str,
    file_name: str,
    rendition: str,
    shares: Shares,
    download: Annotated[
        int, Query(ge=0, le=1, description="1: save as an attachment; 0: view inline.")
    ] = 0,
) -> Response[None]:
    # The gateway hands the path segment over as the client quoted it.
    return _redirect(shares.shared_file_url(token, unquote(file_name), rendition, download == 1))


@router.get(
    "/share/<token>/view/<file_name>",
    operation_id="view_shared_file",
    tags=["client"],
    summary="One shared photo on a page of its own, with previous and next links (HTML).",
    description=(
        "What a gallery preview links to (`file_name` URL-quoted), so a client without "
        "script can look at each photo large: the page shows the file's viewer rendition "
        "(the one named or labelled `web`, else the largest downscaled one a browser can "
        "show) through its stable inline link, links to the previous and next delivered "
        "photo in the gallery's name order (across its pages), back to the gallery, and "
        "a download link per rendition, in the recipe's order; on a proofing share, the "
        "photo's favourite form, which returns here. With script, the gallery "
        "opens its full-window viewer instead. Always HTML, under the gallery's strict CSP "
        "with no script. The share is checked as `GET /share/{token}` does; a browser is "
        "answered 404, 409 and 410 with the gallery's friendly pages, other clients with "
        "the JSON error. Not counted as a view."
    ),
    responses=answers(
        200,
        "The photo's page.",
        404,
        409,
        410,
        content={"text/html": {"schema": {"type": "string"}}},
        pages=True,
    ),
    openapi_extensions=PUBLIC,
)
def view_shared_file(
    token: str, file_name: str, shares: Shares, base_url: BaseUrl
) -> Response[str]:
    page = shares.photo_page(token, unquote(file_name), base_url)
    headers = {
        **PRIVATE_HEADERS,
        "content-security-policy": gallery.photo_policy(page, shares.bucket_origin()),
        "x-robots-tag": "noindex, nofollow",
    }
    return Response(200, "text/html; charset=utf-8", gallery.render_photo(page), headers)


@router.get(
    "/share/<token>/archives/<rendition>",
    operation_id="open_shared_archive",
    tags=["client"],
    summary="The ZIP of every delivered file's rendition: a redirect to a fresh presigned GET.",
    description=(
        "Checks the share as `GET /share/{token}` does, then answers 302 to a presigned "
        "S3 GET of the rendition's download-all ZIP, as an attachment. 404 while the "
        "delivered run has no ZIP of that rendition. Counted as a download of the share."
    ),
    responses=answers(
        302,
        "To the ZIP; `Location` is a presigned S3 GET.",
        401,
        404,
        409,
        410,
        content={},
        pages=True,
    ),
    openapi_extensions=PUBLIC,
)
def open_shared_archive(token: str, rendition: str, shares: Shares) -> Response[None]:
    return _redirect(shares.shared_archive_url(token, rendition))


GALLERY_SCRIPT_PATH = "/assets/gallery.js"
serve_script(
    router,
    GALLERY_SCRIPT_PATH,
    operation_id="gallery_script",
    summary="The gallery page's script: loads further pages as the client scrolls.",
    script=gallery.SCRIPT,
)

VIEWER_SCRIPT_PATH = "/assets/viewer.js"
serve_script(
    router,
    VIEWER_SCRIPT_PATH,
    operation_id="viewer_script",
    summary="The gallery's full-window viewer: opens a preview large, keys and swipe.",
    script=gallery.VIEWER_SCRIPT,
)


def issue_share(
    shares: ShareStore,
    job_id: str,
    expires_at: int,
    *,
    created_by: str | None,
    message: str | None = None,
    proofing: bool = False,
    password_hash: str | None = None,
) -> tokens.IssuedToken:
    """A new share of the job, its token returned (only its hash is stored): what the
    share route and automatic delivery (darkroom.notify) create."""
    for _ in range(3):
        issued = tokens.issue()
        try:
            shares.put(
                Share(
                    share_id=issued.share_id,
                    job_id=job_id,
                    token_sha256=issued.sha256,
                    created_at=utc_now(),
                    expires_at=expires_at,
                    created_by=created_by,
                    message=message,
                    proofing=proofing,
                    password_hash=password_hash,
                )
            )
            return issued
        except ShareIdTaken:
            continue
    raise RuntimeError("could not draw a free share id")  # pragma: no cover
