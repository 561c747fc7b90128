"""Proofing: through a share created with `proofing`, the client marks favourites and
leaves a short note per photo; the photographer lists them and may reprocess only those.

A client's write is its own item (darkroom.aws.favourites), never the job's files or
manifest. It is limited three ways: a note of at most 500 characters, one mark per
delivered file per share (so never more favourites than the share has files), and a
rate per link counted in the shares table (many Lambdas answer one link).

The gallery's controls are plain forms that POST here and are redirected back (no
script needed); proofing.js, a static file like gallery.js, sends the same as JSON
PUT/DELETE and updates the page in place.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from importlib import resources
from typing import Annotated
from urllib.parse import parse_qs, quote, unquote, urlencode

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import ValidationError

from darkroom import keys
from darkroom.api.context import BaseUrl, current_service
from darkroom.api.errors import (
    BadRequest,
    Forbidden,
    NotFound,
    TooManyRequests,
    answers,
    known_job_id,
)
from darkroom.api.models import (
    FavouriteIn,
    FavouriteList,
    FavouriteView,
    MergedFavourite,
    SharedFavourite,
)
from darkroom.api.openapi import PUBLIC
from darkroom.api.scripts import serve_script
from darkroom.aws.favourites import Favourite, FavouriteStore
from darkroom.aws.job_store import JobStore
from darkroom.aws.shares import Share, ShareStore
from darkroom.aws.uploads import UploadStore
from darkroom.jobs import Job, utc_now
from darkroom.observability import logger
from darkroom.settings import ApiSettings

SCRIPT = resources.files("darkroom.api").joinpath("proofing.js").read_text(encoding="utf-8")
PROOFING_SCRIPT_PATH = "/assets/proofing.js"
RATE_WINDOW_SECONDS = 60
# A form's body: a note of 500 characters, each up to 9 bytes once percent-encoded,
# and the other fields.
MAX_FORM_BYTES = 8 * 1024
# A form's `back` when it was sent from the photo's own page: the answer returns there.
# A word, never a URL, so the redirect cannot be pointed anywhere else.
BACK_TO_PHOTO = "photo"


def anchor(file_name: str) -> str:
    """The id of a photo's item on the gallery page, where a form's redirect returns."""
    digest = hashlib.sha256(file_name.encode()).digest()[:9]
    return "p-" + base64.urlsafe_b64encode(digest).decode()


class ProofingOperations:
    settings: ApiSettings
    jobs: JobStore
    uploads: UploadStore
    shares: ShareStore
    favourites: FavouriteStore
    clock: Callable[[], float]
    _shared: Callable[[str], tuple[Share, Job]]
    public_base: Callable[[str], str]

    def _proofing(self, token: str, file_name: str) -> tuple[Share, Job]:
        """The share, if it is open (404, 410), allows proofing (403), and this client
        has writes left this minute (429); then the file, if the share delivers it (404)."""
        share, job = self._shared(token)
        if not share.proofing:
            raise Forbidden(
                "this share link is for viewing and downloading; favourites need a "
                "proofing link (darkroom share JOB --proofing)"
            )
        limit = self.settings.proofing_writes_per_minute
        writes, retry_after = self.shares.spend_write(
            share.share_id, self.clock(), RATE_WINDOW_SECONDS
        )
        if writes > limit:
            raise TooManyRequests(
                f"at most {limit} changes a minute through one link; try again in {retry_after} s",
                retry_after=retry_after,
            )
        missing = NotFound("no such photo in this share")
        try:
            keys.validate_file_name(file_name)
        except ValueError as exc:
            raise missing from exc
        record = self.jobs.file(job.job_id, file_name, delivered=job.delivered)
        if record is None or not record.delivered:
            # Only what the client is shown can be marked: favourites never outnumber
            # the share's delivered files.
            raise missing
        return share, job

    def mark_favourite(self, token: str, file_name: str, body: FavouriteIn) -> SharedFavourite:
        share, job = self._proofing(token, file_name)
        favourite = Favourite(
            share_id=share.share_id, file_name=file_name, note=body.note, marked_at=utc_now()
        )
        self.favourites.mark(job.job_id, favourite)
        logger.info("favourite marked", extra={"job_id": job.job_id, "share_id": share.share_id})
        return SharedFavourite(note=favourite.note, marked_at=favourite.marked_at)

    def unmark_favourite(self, token: str, file_name: str) -> None:
        share, job = self._proofing(token, file_name)
        self.favourites.unmark(job.job_id, share.share_id, file_name)
        logger.info("favourite unmarked", extra={"job_id": job.job_id, "share_id": share.share_id})

    def share_favourites(self, share: Share) -> dict[str, SharedFavourite]:
        """What the client marked, by file name, for its gallery page."""
        if not share.proofing:
            return {}
        return {
            f.file_name: SharedFavourite(note=f.note, marked_at=f.marked_at)
            for f in self.favourites.of_share(share.job_id, share.share_id)
        }

    def job_favourites(self, job_id: str) -> FavouriteList:
        job_id = known_job_id(job_id)
        if self.jobs.find(job_id) is None and self.uploads.get(job_id) is None:
            raise NotFound(f"job {job_id} not found")
        by_share: dict[str, list[FavouriteView]] = {}
        by_file: dict[str, list[FavouriteView]] = {}
        for f in self.favourites.of_job(job_id):
            view = FavouriteView(
                file_name=f.file_name, share_id=f.share_id, note=f.note, marked_at=f.marked_at
            )
            by_share.setdefault(f.share_id, []).append(view)
            by_file.setdefault(f.file_name, []).append(view)
        merged = [
            MergedFavourite(file_name=name, notes=sorted(views, key=lambda v: v.marked_at))
            for name, views in sorted(by_file.items())
        ]
        return FavouriteList(job_id=job_id, by_share=by_share, merged=merged)


def favourite_names(favourites: FavouriteList) -> list[str]:
    return [m.file_name for m in favourites.merged]


# -- routes ---------------------------------------------------------------------------
router = APIGatewayHttpRouter()
Proofing = Annotated[ProofingOperations, Depends(current_service)]

_CLIENT_WRITE = (
    "Only through a share created with `proofing` (403 otherwise), for a file it "
    "delivers (404 otherwise); 410 once the link expired or was revoked. At most "
    "`proofing_writes_per_minute` (60 by default) writes a minute per link, counted in "
    "DynamoDB: 429 with `Retry-After` beyond. Never touches the job's files or manifest."
)


@router.put(
    "/share/<token>/favourites/<file_name>",
    operation_id="mark_favourite",
    tags=["client"],
    summary="Mark a shared photo as a favourite, with an optional note (idempotent).",
    description=f"`file_name` URL-quoted; marking again replaces the note. {_CLIENT_WRITE}",
    responses=answers(200, "The mark as kept.", 400, 403, 404, 409, 410, 429),
    openapi_extensions=PUBLIC,
)
def mark_favourite(
    token: str,
    file_name: str,
    proofing: Proofing,
    body: Annotated[FavouriteIn, Body()] = FavouriteIn(),
) -> SharedFavourite:
    return proofing.mark_favourite(token, unquote(file_name), body)


@router.delete(
    "/share/<token>/favourites/<file_name>",
    operation_id="unmark_favourite",
    tags=["client"],
    summary="Unmark a favourite (idempotent).",
    description=_CLIENT_WRITE,
    responses=answers(204, "Not a favourite any more.", 403, 404, 409, 410, 429),
    openapi_extensions=PUBLIC,
)
def unmark_favourite(token: str, file_name: str, proofing: Proofing) -> Response[None]:
    proofing.unmark_favourite(token, unquote(file_name))
    return Response(204)


@router.post(
    "/share/<token>/favourites/<file_name>",
    operation_id="proof_by_form",
    tags=["client"],
    summary="The gallery's form (no script): mark or unmark, then back to the page it was on.",
    description=(
        "An HTML form POST (`application/x-www-form-urlencoded`): `favourite=1` marks "
        "(with `note`), `favourite=0` unmarks; `page` is the gallery page's cursor to "
        "return to, or `back=photo` for the photo's own page. Answers 303 there, at the "
        "photo. A browser is shown 403, "
        f"404, 410 and 429 as a page. {_CLIENT_WRITE}"
    ),
    responses=answers(
        303, "Back to the gallery.", 400, 403, 404, 409, 410, 429, content={}, pages=True
    ),
    openapi_extensions=PUBLIC,
)
def proof_by_form(
    token: str, file_name: str, proofing: Proofing, base_url: BaseUrl
) -> Response[None]:
    from darkroom.api.app import app

    name = unquote(file_name)
    form = parse_form(app.current_event.decoded_body or "")
    wanted = form.get("favourite", "1")
    if wanted not in ("0", "1"):
        raise BadRequest('favourite must be "1" (mark) or "0" (unmark)')
    if wanted == "1":
        try:
            body = FavouriteIn(note=form.get("note") or None)
        except ValidationError as exc:
            raise BadRequest(f"note: {exc.errors()[0]['msg']}") from exc
        proofing.mark_favourite(token, name, body)
    else:
        proofing.unmark_favourite(token, name)
    share = f"{proofing.public_base(base_url)}/share/{quote(token, safe='')}"
    if form.get("back") == BACK_TO_PHOTO:
        location = f"{share}/view/{quote(name, safe='')}#{anchor(name)}"
    else:
        page = form.get("page")
        query = f"?{urlencode({'cursor': page})}" if page else ""
        location = f"{share}{query}#{anchor(name)}"
    headers = {
        "location": location,
        "cache-control": "no-store",
        "referrer-policy": "no-referrer",
    }
    return Response(303, None, None, headers)


def parse_form(body: str) -> dict[str, str]:
    """A urlencoded form's fields, the first of each name; too big a form is refused."""
    if len(body.encode()) > MAX_FORM_BYTES:
        raise BadRequest(f"the form is larger than {MAX_FORM_BYTES} bytes")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


@router.get(
    "/jobs/<job_id>/favourites",
    operation_id="list_favourites",
    tags=["photographer"],
    summary="What the job's proofing clients marked: per share, and merged by file.",
    description=(
        "Each favourite with its file name, note, when it was marked and through which "
        "share (also revoked or expired ones: the choice stays the client's). `merged` "
        "lists each file once, in name order: what `reprocess` with "
        '`files: "favourites"` develops.'
    ),
    responses=answers(200, "The favourites.", 404),
)
def list_favourites(job_id: str, proofing: Proofing) -> FavouriteList:
    return proofing.job_favourites(job_id)


serve_script(
    router,
    PROOFING_SCRIPT_PATH,
    operation_id="proofing_script",
    summary="The gallery's proofing script: marks favourites without leaving the page.",
    script=SCRIPT,
)
