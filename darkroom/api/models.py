"""What the API reads and answers, as pydantic models: the request bodies it validates,
the documents it returns (openapi.yaml is generated from these), and the one view of a
job that every reader (the API, the CLI) uses."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from darkroom.api.share_access import MAX_PASSWORD, MIN_PASSWORD
from darkroom.jobs import FileRecord, Job

MAX_NAME_LENGTH = 200  # characters of a job's display name


def iso(epoch: float) -> str:
    """A moment as the API writes it: UTC, to the second, e.g. 2026-05-01T12:00:00Z."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _absent(value: object) -> bool:
    return value is None


def _empty(value: object) -> bool:
    return not value


# -- requests -------------------------------------------------------------------------
class _Strict(BaseModel):
    # Strict: "12" is not a size and true is not 1; unknown fields are mistakes.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class FileIn(_Strict):
    name: str = Field(description="A plain RAW file name, e.g. IMG_0001.dng.")
    size: int = Field(description="Bytes; the upload URL is signed for exactly this length.")


MAX_EMAIL_LENGTH = 254
# One address, as a person types it: no display name, no list, nothing a mail header
# could be split on. What SES would refuse later is refused here, with the reason.
_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)


def email_address(value: str) -> str:
    value = value.strip()
    if len(value) > MAX_EMAIL_LENGTH or not _EMAIL.fullmatch(value):
        raise ValueError(
            f"{value[:60]!r} is not an email address: one address such as name@example.com"
        )
    return value


class ClientIn(_Strict):
    name: str | None = Field(default=None, min_length=1, max_length=MAX_NAME_LENGTH)
    email: str = Field(description="Where automatic delivery sends the share link.")

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return email_address(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and any(unicodedata.category(c).startswith("C") for c in value):
            raise ValueError("must be printable text")
        return value


class CreateJobIn(_Strict):
    files: list[FileIn] = Field(min_length=1)
    name: str | None = Field(default=None, min_length=1, max_length=MAX_NAME_LENGTH)
    recipe: dict[str, Any] | None = Field(
        default=None, description="The renditions to develop (see darkroom.recipes)."
    )
    job_id: str | None = Field(
        default=None,
        description="Optional; generated when absent. 1-40 of letters, digits, '-', '_'.",
    )
    client: ClientIn | None = Field(default=None, description="Who the job is for.")
    deliver: Literal["auto", "manual"] = Field(
        default="manual",
        description="auto: when the job's first run finishes, a share is created and its "
        "link emailed to the client (needs client.email).",
    )
    share_expires_in: int | None = Field(
        default=None, ge=60, description="The automatic share's life in seconds."
    )
    notify_client_on_reprocess: bool = Field(
        default=False,
        description="Email the client again when a reprocess updates what the link shows.",
    )

    @model_validator(mode="after")
    def _auto_needs_client(self) -> CreateJobIn:
        if self.deliver == "auto" and self.client is None:
            raise ValueError('deliver "auto" needs client.email: whom to send the link to')
        return self


class PutAssetIn(_Strict):
    size: int = Field(description="Bytes of the PNG; the upload URL is signed for exactly this.")


class ReprocessIn(_Strict):
    recipe: dict[str, Any] | None = Field(
        default=None, description="Another recipe; the job's own when absent."
    )
    files: Literal["favourites"] | list[str] | None = Field(
        default=None,
        description='Develop only these files: "favourites" (every file a client marked '
        "through a proofing share) or a list of file names. The other files keep what "
        "they deliver. Unknown names are refused (400) before anything starts. All "
        "files when absent.",
    )


MAX_SHARE_MESSAGE = 1000  # characters of the photographer's note on a share


class CreateShareIn(_Strict):
    expires_in: int | None = Field(
        default=None, description="Seconds until the link expires (default 7 days)."
    )
    message: str | None = Field(
        default=None,
        max_length=MAX_SHARE_MESSAGE,
        description="A note to the client, shown (as text) at the top of the gallery.",
    )
    proofing: bool = Field(
        default=False,
        description="Let the client mark favourites and leave a note per photo.",
    )

    @field_validator("message")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        if value is None:
            return None
        # Text for a page: line breaks stay, other control characters are mistakes.
        value = value.replace("\r\n", "\n")
        if any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in value):
            raise ValueError("must be text: no control characters other than line breaks")
        return value.strip() or None

    password: str | None = Field(
        default=None,
        min_length=MIN_PASSWORD,
        max_length=MAX_PASSWORD,
        description="A password the client must type before seeing anything (6 to 128 "
        "characters). Stored only as a salted scrypt hash; never returned.",
        json_schema_extra={"format": "password", "writeOnly": True},
    )


class UnlockShareIn(_Strict):
    password: str = Field(max_length=1024, description="The share's password.")


class ExtendShareIn(_Strict):
    extend_by: int = Field(
        description="Seconds added to the link's life, counted from its expiry (from now "
        "if it has expired); it may end at most the deployment's longest share life "
        "(90 days by default) from now."
    )


class SharePasswordIn(_Strict):
    password: str | None = Field(
        min_length=MIN_PASSWORD,
        max_length=MAX_PASSWORD,
        description="The link's new password (6 to 128 characters), or null to open it to "
        "anyone with the link. Either way every browser unlocked before must unlock again.",
        json_schema_extra={"format": "password", "writeOnly": True},
    )


# -- the job view ---------------------------------------------------------------------
JobViewStatus = Literal[
    # Before the pipeline has the job: declared, then submitted (the uploads table).
    "CREATED",
    "SUBMITTED",
    # darkroom.jobs.JobStatus, once RegisterJob has written the job's record.
    "REGISTERED",
    "STARTING",
    "PROCESSING",
    "DONE",
    "DONE_WITH_ERRORS",
    "FAILED",
]
FileViewStatus = Literal["AWAITING_UPLOAD", "UPLOADED", "PENDING", "DONE", "FAILED", "SKIPPED"]


class FileView(BaseModel):
    """One file of a job: its upload while it is declared, then its current run's attempt
    and what the client is delivered of it."""

    status: FileViewStatus
    size: int | None = Field(default=None, exclude_if=_absent)
    run_id: str | None = Field(
        default=None, exclude_if=_absent, description="The run of the current attempt."
    )
    outputs: dict[str, str] | None = Field(
        default=None, exclude_if=_empty, description="Rendition name -> S3 key (this attempt)."
    )
    error_code: str | None = Field(default=None, exclude_if=_empty)
    error: str | None = Field(default=None, exclude_if=_empty)
    delivered_run: str | None = Field(
        default=None, exclude_if=_absent, description="The run whose renditions are delivered."
    )
    delivered: dict[str, str] | None = Field(
        default=None,
        exclude_if=_empty,
        description="Rendition name -> S3 key: what shares and downloads serve.",
    )

    @classmethod
    def of_record(cls, record: FileRecord) -> FileView:
        return cls(
            status=record.status.value,
            run_id=record.run_id,
            outputs={r: o.key for r, o in record.outputs.items()} or None,
            error_code=record.error_code,
            error=record.error,
            delivered_run=record.delivered_run,
            delivered={r: o.key for r, o in record.delivered.items()} or None,
        )


class ArchiveView(BaseModel):
    """A "download all" ZIP of one rendition of what is delivered."""

    key: str = Field(description="S3 key in the processed bucket.")
    bytes: int = Field(ge=0)
    files: int = Field(ge=0)


class DeliveredView(BaseModel):
    """The last run whose renditions were delivered."""

    run_id: str
    finished_at: str | None = None
    manifest_key: str | None = None
    files_delivered: int = Field(ge=0)
    archives: dict[str, ArchiveView] | None = Field(
        default=None,
        exclude_if=_empty,
        description="Rendition name -> its ZIP of every delivered file, when packaged.",
    )


def _client_of(job: Job) -> dict[str, str] | None:
    policy = job.delivery_policy
    if policy is None:
        return None
    shown = {"deliver": policy.deliver}
    if policy.client_name:
        shown["name"] = policy.client_name
    if policy.client_email:
        shown["email"] = policy.client_email
    return shown


class JobView(BaseModel):
    """A job as the studio sees it, from its declaration to its last rendition."""

    job_id: str
    name: str | None = None
    status: JobViewStatus
    files_total: int = Field(ge=0)
    files_done: int = Field(ge=0, description="Of the current run.")
    files_failed: int = Field(ge=0, description="Of the current run.")
    files_skipped: int = Field(
        default=0, ge=0, description="Of the current run: rejected in their XMP sidecar."
    )
    attempt: int = Field(ge=0)
    run_id: str | None = Field(default=None, description="The current run (execution name).")
    selection: dict[str, Any] | None = Field(
        default=None,
        exclude_if=_absent,
        description='The current run develops only some files: {"kind": "favourites" or '
        '"names", "files": how many}. The others keep what they deliver.',
    )
    execution_arn: str | None = None
    instance_id: str | None = None
    manifest_key: str | None = None
    error: str | None = None
    cause: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    submitted_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    state: str | None = Field(
        default=None,
        description="The state machine state the job's execution is in (or ended in).",
    )
    recipe: dict[str, Any] | None = Field(
        default=None,
        exclude_if=_absent,
        description="The current run's recipe, as it was registered (defaults filled in).",
    )
    delivered: DeliveredView | None = Field(
        default=None,
        exclude_if=_absent,
        description="What the client gets: kept through a reprocess and after a failed one.",
    )
    client: dict[str, str] | None = Field(
        default=None,
        exclude_if=_absent,
        description="Who the job is for: name and email, and deliver (auto or manual).",
    )
    notice_errors: dict[str, str] | None = Field(
        default=None,
        exclude_if=_absent,
        description="Notices that failed to go out (client, photographer, webhook): "
        '"<run>: <why>". Never a reason the job failed.',
    )
    # Left out of listings, which show counts only; a job's view holds its first page.
    files: dict[str, FileView] | None = Field(default=None, exclude_if=_absent)
    files_next_cursor: str | None = Field(
        default=None,
        exclude_if=_absent,
        description="More files follow: GET /jobs/{job_id}/files?cursor= this.",
    )

    @classmethod
    def of_job(
        cls,
        job: Job,
        files: Iterable[FileRecord] | None = None,
        *,
        submitted_at: str | None = None,
        state: str | None = None,
        files_next_cursor: str | None = None,
    ) -> JobView:
        return cls(
            job_id=job.job_id,
            name=job.name,
            status=job.status.value,
            files_total=job.files_total,
            files_done=job.files_done,
            files_failed=job.files_failed,
            files_skipped=job.files_skipped,
            attempt=job.attempt,
            run_id=job.run_id,
            selection=job.selection.model_dump() if job.selection else None,
            execution_arn=job.execution_arn,
            instance_id=job.instance_id,
            manifest_key=job.manifest_key,
            error=job.error,
            cause=job.cause,
            created_at=job.created_at,
            updated_at=job.updated_at,
            submitted_at=submitted_at,
            started_at=job.started_at,
            client=_client_of(job),
            notice_errors=dict(job.notice_errors) or None,
            finished_at=job.finished_at,
            state=state,
            recipe=job.recipe,
            delivered=DeliveredView.model_validate(job.delivered.model_dump())
            if job.delivered
            else None,
            files=None
            if files is None
            else {r.name: FileView.of_record(r) for r in sorted(files, key=lambda r: r.name)},
            files_next_cursor=files_next_cursor,
        )

    def summary(self) -> JobView:
        """The view without its per-file detail and recipe, as listings show it."""
        return self.model_copy(update={"files": None, "files_next_cursor": None, "recipe": None})

    @property
    def is_registered(self) -> bool:
        """Whether the pipeline has the job (its record exists), not just the API."""
        return self.status not in ("CREATED", "SUBMITTED")


class JobFiles(BaseModel):
    """A page of a job's files, in name order."""

    job_id: str
    files: dict[str, FileView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class JobPage(BaseModel):
    jobs: list[JobView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


# -- answers of the job routes --------------------------------------------------------
class PartUrl(BaseModel):
    part_number: int = Field(ge=1)
    size: int = Field(description="Bytes: the part is signed for exactly this length.")
    url: str
    headers: dict[str, str] = Field(description="Send exactly these headers with the PUT.")


class UploadedPart(BaseModel):
    part_number: int = Field(ge=1)
    etag: str
    size: int


class MultipartPlan(BaseModel):
    """A file uploaded in parts: PUT part n (bytes (n-1)*part_size onwards) to its URL and
    keep the ETag S3 answers; once S3 has every part, complete the upload."""

    upload_id: str
    part_size: int
    parts_total: int
    parts: list[PartUrl] = Field(description="The parts S3 does not have yet, with URLs.")
    uploaded: list[UploadedPart] = Field(description="The parts S3 has already.")
    all_parts: bool = Field(
        description="True when `parts` lists every missing part: upload them, then POST "
        "/jobs/{job_id}/files/{file_name}/complete with every part's ETag. False: the "
        "answer ran out of URLs; ask POST /jobs/{job_id}/uploads for the rest."
    )


class UploadUrl(BaseModel):
    name: str
    size: int
    method: Literal["PUT", "MULTIPART"]
    url: str | None = Field(default=None, exclude_if=_absent, description="PUT: the URL.")
    headers: dict[str, str] | None = Field(
        default=None, exclude_if=_absent, description="PUT: send exactly these headers."
    )
    multipart: MultipartPlan | None = Field(
        default=None, exclude_if=_absent, description="MULTIPART: the parts to upload."
    )


_MORE = (
    "True when some files still need URLs (an answer carries at most a set number): "
    "upload these, then ask POST /jobs/{job_id}/uploads for the rest."
)


class CreatedJob(BaseModel):
    job_id: str
    name: str | None
    status: Literal["CREATED"]
    expires_at: str = Field(json_schema_extra={"format": "date-time"})
    expires_in: int
    uploads: list[UploadUrl]
    more: bool = Field(default=False, description=_MORE)


class UploadUrls(BaseModel):
    """Fresh upload URLs for a declared job's files that have not arrived yet."""

    job_id: str
    status: Literal["CREATED"]
    expires_at: str = Field(json_schema_extra={"format": "date-time"})
    expires_in: int
    uploads: list[UploadUrl] = Field(description="One per declared file not uploaded yet.")
    uploaded: list[str] = Field(description="Declared files already uploaded, at their size.")
    more: bool = Field(default=False, description=_MORE)


class CompletedPart(_Strict):
    part_number: int = Field(ge=1)
    etag: str = Field(description="The ETag S3 answered to the part's PUT.")


class CompleteUploadIn(_Strict):
    parts: list[CompletedPart] = Field(min_length=1)


class CompletedUpload(BaseModel):
    job_id: str
    name: str
    size: int
    status: Literal["UPLOADED"]


class AbortedUpload(BaseModel):
    job_id: str
    name: str
    aborted: int = Field(description="Multipart uploads of the file aborted (0: none).")


class JobDeleted(BaseModel):
    """What erasing a job removed (on a repeated delete, what was left of it)."""

    job_id: str
    object_versions: int = Field(
        description="Versions and delete markers of its originals, and its renditions."
    )
    records: int = Field(description="Its items in the jobs table and its upload record.")
    shares: int


class Submitted(BaseModel):
    job_id: str
    status: Literal["SUBMITTED"]
    submitted_at: str | None


class Reprocessing(BaseModel):
    job_id: str
    execution_arn: str


# -- shares ---------------------------------------------------------------------------
class CreatedShare(BaseModel):
    share_id: str = Field(description="Keep it to revoke the link.")
    job_id: str
    token: str = Field(description="Shown once; only its hash is stored.")
    url: str = Field(description="The link to send the client: /share/{token}.")
    expires_at: str = Field(json_schema_extra={"format": "date-time"})
    expires_in: int
    password: bool = Field(default=False, description="Whether the link asks for a password.")


class ShareView(BaseModel):
    """A share as its photographer sees it: never its token, which is not stored."""

    share_id: str
    job_id: str
    state: Literal["active", "expired", "revoked"]
    created_at: str
    expires_at: str = Field(json_schema_extra={"format": "date-time"})
    revoked_at: str | None = None
    message: str | None = Field(default=None, exclude_if=_absent)
    proofing: bool = False
    views: int = Field(description="Times its gallery (or its first page as JSON) was opened.")
    downloads: int = Field(description="Files and ZIPs downloaded through it.")
    password: bool = Field(default=False, description="Whether the link asks for a password.")


class ShareList(BaseModel):
    shares: list[ShareView] = Field(description="Newest first.")


class SharedRendition(BaseModel):
    rendition: str
    label: str = Field(
        description='What the client is shown: the recipe\'s label, or "Web", '
        '"Full resolution", "Thumbnail".'
    )
    filename: str = Field(description="The name the download saves as.")
    url: str = Field(
        description="A stable link: it checks the share, then redirects to a fresh "
        "presigned GET that shows the rendition inline."
    )
    download_url: str = Field(description="The same link with ?download=1: an attachment.")
    width: int | None = None
    height: int | None = None
    bytes: int | None = None
    content_type: str | None = None

    @classmethod
    def of_output(
        cls, rendition: str, label: str, filename: str, url: str, meta: Mapping[str, Any]
    ) -> SharedRendition:
        return cls(
            rendition=rendition,
            label=label,
            filename=filename,
            url=url,
            download_url=f"{url}?download=1",
            width=meta.get("width"),
            height=meta.get("height"),
            bytes=meta.get("bytes"),
            content_type=meta.get("content_type"),
        )


MAX_FAVOURITE_NOTE = 500  # characters of a client's note on one photo


def _note_text(value: str | None) -> str | None:
    """A note as it is kept: text with its line breaks, nothing else invisible."""
    if value is None:
        return None
    value = value.replace("\r\n", "\n")
    if any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in value):
        raise ValueError("must be text: no control characters other than line breaks")
    return value.strip() or None


class FavouriteIn(_Strict):
    note: str | None = Field(
        default=None,
        max_length=MAX_FAVOURITE_NOTE,
        description="A short note for the photographer about this photo (at most 500 "
        "characters); marking again replaces it, and no note removes it.",
    )

    @field_validator("note")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return _note_text(value)


class SharedFavourite(BaseModel):
    note: str | None = Field(default=None, exclude_if=_absent)
    marked_at: str


class FavouriteView(BaseModel):
    file_name: str
    share_id: str
    note: str | None = Field(default=None, exclude_if=_absent)
    marked_at: str


class MergedFavourite(BaseModel):
    file_name: str
    notes: list[FavouriteView] = Field(
        description="Each share's mark on the file, oldest first (with its note, if any)."
    )


class FavouriteList(BaseModel):
    """A job's favourites, as its proofing clients marked them."""

    job_id: str
    by_share: dict[str, list[FavouriteView]] = Field(
        description="Share id -> its favourites, in file name order."
    )
    merged: list[MergedFavourite] = Field(
        description="Every file marked through any share, in file name order."
    )


class SharedFile(BaseModel):
    """A file with delivered renditions (one that never developed is not listed)."""

    name: str
    status: Literal["DONE"] = "DONE"
    renditions: list[SharedRendition] = Field(description="In the recipe's order.")
    preview_url: str | None = Field(
        default=None,
        exclude_if=_absent,
        description="The stable inline link of the smallest rendition.",
    )
    view_rendition: str | None = Field(
        default=None,
        exclude_if=_absent,
        description="The rendition the full-window viewer shows: the one named or "
        'labelled "web", else the largest downscaled one a browser can display.',
    )
    page_url: str | None = Field(
        default=None,
        exclude_if=_absent,
        description="The file's own viewer page (HTML), with previous and next links.",
    )
    favourite: SharedFavourite | None = Field(
        default=None,
        exclude_if=_absent,
        description="On a proofing share: the client's mark on this file, if any.",
    )


class SharedArchive(BaseModel):
    """A ZIP of every delivered file's rendition ("download all")."""

    url: str = Field(description="A stable link that redirects to the ZIP (an attachment).")
    label: str
    bytes: int
    files: int


class SharedJobSummary(BaseModel):
    """The job as its client sees it: what is delivered (files that failed are the
    photographer's business, in `GET /jobs/{id}`)."""

    job_id: str
    name: str | None
    files_done: int = Field(description="Files delivered.")
    finished_at: str | None


class StudioView(BaseModel):
    """Who is sharing: the deployment's studio settings."""

    name: str | None = Field(default=None, exclude_if=_absent)
    logo_url: str | None = Field(default=None, exclude_if=_absent)
    accent_colour: str


class SharedJob(BaseModel):
    """One page of a share: the job, its download-all ZIPs, and some of its files."""

    job: SharedJobSummary
    studio: StudioView
    message: str | None = Field(
        default=None, exclude_if=_absent, description="The photographer's note to the client."
    )
    expires_at: str = Field(json_schema_extra={"format": "date-time"})
    archives: dict[str, SharedArchive] = Field(
        default_factory=dict, description="Rendition -> its ZIP, once one is made."
    )
    proofing: bool = Field(
        default=False, description="Whether the client may mark favourites through it."
    )
    files: list[SharedFile] = Field(description="In name order.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last. A page may "
        "hold fewer files than `limit` (each page stays under 1 MB)."
    )


# -- studio assets ----------------------------------------------------------------------
class AssetUpload(BaseModel):
    name: str
    key: str = Field(description="Where it is stored, in the RAW bucket.")
    size: int
    method: Literal["PUT"] = "PUT"
    url: str = Field(description="PUT the PNG here, with exactly `headers`.")
    headers: dict[str, str]
    expires_in: int
    expires_at: str


class Asset(BaseModel):
    name: str
    size: int
    modified: str
    version_id: str | None = Field(
        default=None, exclude_if=_absent, description="The version a run's manifest names."
    )


class AssetList(BaseModel):
    assets: list[Asset]


class AssetDeleted(BaseModel):
    name: str
    deleted: bool


# -- a job's lineage ------------------------------------------------------------------
class TracedRendition(BaseModel):
    rendition: str
    key: str = Field(description="S3 key in the processed bucket.")
    url: str = Field(description="A presigned GET of it, for `expires_in` seconds.")


class TracedOriginal(BaseModel):
    key: str = Field(description="S3 key in the RAW bucket.")
    version_id: str | None = Field(
        description="The version the job registered (null in an unversioned bucket)."
    )
    url: str = Field(description="A presigned GET of that version, for `expires_in` seconds.")


class TracedFile(BaseModel):
    name: str
    status: FileViewStatus = Field(description="The current run's attempt at it.")
    delivered_run: str | None = Field(
        description="The run whose renditions are delivered; its manifest holds the "
        "file's lineage. Null: nothing of the file is delivered."
    )
    renditions: list[TracedRendition] = Field(description="What is delivered, to verify.")
    original: TracedOriginal | None = Field(
        default=None,
        exclude_if=_absent,
        description="With `originals=true`, for a delivered file: its RAW original, to "
        "hash against the SHA-256 its run's manifest recorded.",
    )


class TracePage(BaseModel):
    """A page of a job's files with what checking their lineage needs: each delivered
    rendition and the manifest of each run that delivers one, as presigned GETs. The
    caller hashes the bytes itself (the API never reads a rendition)."""

    job_id: str
    status: str
    manifests: dict[str, str] = Field(
        description="Run id -> a presigned GET of that run's manifest.json, for every "
        "run a file of this page is delivered by."
    )
    files: list[TracedFile] = Field(description="In name order.")
    expires_in: int = Field(description="Seconds each URL of the page stays valid.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page (fresh URLs); null on the last."
    )
