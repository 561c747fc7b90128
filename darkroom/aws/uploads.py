"""The uploads table: jobs the API created whose files are still arriving.

A job gets a record in the jobs table only when its execution registers it, and the job
model has no status for "declared, not yet submitted". The API keeps that phase here:
one upload item (sk UPLOAD) and one item per declared file (sk FILE#<name>), so no item
grows with the job; a file uploaded in parts keeps its multipart upload id on its item.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from darkroom import names
from darkroom.aws.table import ConditionFailed, Table
from darkroom.errors import DarkroomError
from darkroom.jobs import created_key

# Items outlive their job's submission by a while (GET /jobs/{id} reads them until the
# execution registers the job); DynamoDB TTL removes abandoned ones eventually.
RETENTION_SECONDS = 30 * 24 * 3600


class UploadStatus(StrEnum):
    CREATED = "CREATED"  # declared; files are being uploaded
    SUBMITTED = "SUBMITTED"  # manifest written; the execution has not registered it yet


class JobExists(DarkroomError):
    """A job with that id already exists."""


class DeclaredFile(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    size: int
    # A file uploaded in parts: its multipart upload in S3 and the size of its parts.
    upload_id: str | None = None
    part_size: int | None = None


class Upload(BaseModel):
    """A declared job. `files` is every declared file when read by `get`; the listing
    (`newest`) leaves them out, and `files_total` / `total_bytes` count them either way."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    status: UploadStatus
    created_at: str
    files: tuple[DeclaredFile, ...] = ()
    files_total: int = 0
    total_bytes: int = 0
    name: str | None = None
    recipe: dict[str, Any] | None = None
    # darkroom.jobs.DeliveryPolicy, as given at creation: written to the manifest.
    delivery: dict[str, Any] | None = None
    submitted_at: str | None = None
    created_by: str | None = None
    expires_ttl: int = 0

    @model_validator(mode="before")
    @classmethod
    def _count(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("files") and not data.get("files_total"):
            files = [DeclaredFile.model_validate(f) for f in data["files"]]
            data = {**data, "files_total": len(files), "total_bytes": sum(f.size for f in files)}
        return data

    @property
    def created_key(self) -> str:
        return created_key(self.created_at, self.job_id)


def _file_key(job_id: str, name: str) -> dict[str, str]:
    return {names.JOB_ID: job_id, names.SORT_KEY: names.FILE_ITEM_PREFIX + name}


class UploadStore:
    def __init__(self, table: str, ddb: Any | None = None) -> None:
        self._table = Table(table, names.UPLOADS_SCHEMA, ddb)

    def _key(self, job_id: str) -> dict[str, Any]:
        return self._table.key(job_id, names.UPLOAD_ITEM)

    def create(self, upload: Upload) -> None:
        """The upload item first (it claims the job id), then one item per file."""
        item = upload.model_dump(mode="json", exclude_none=True, exclude={"files"})
        item.update(self._key(upload.job_id))
        item[names.ENTITY] = names.UPLOAD_ENTITY
        item[names.CREATED_KEY] = upload.created_key
        try:
            self._table.put(item, condition=f"attribute_not_exists({names.JOB_ID})")
        except ConditionFailed as exc:
            raise JobExists(f"job {upload.job_id} already exists") from exc
        self._table.put_many(
            [
                {
                    **_file_key(upload.job_id, f.name),
                    **f.model_dump(mode="json", exclude_none=True),
                    names.TTL_ATTRIBUTE: upload.expires_ttl,
                }
                for f in upload.files
            ]
        )

    def get(self, job_id: str) -> Upload | None:
        """The upload with every declared file (one query of the job's items)."""
        header: dict[str, Any] | None = None
        files = []
        for item in self._table.query(
            "#pk = :job", names={"#pk": names.JOB_ID}, values={":job": job_id}, consistent=True
        ):
            if item[names.SORT_KEY] == names.UPLOAD_ITEM:
                header = item
            elif item[names.SORT_KEY].startswith(names.FILE_ITEM_PREFIX):
                files.append(DeclaredFile.model_validate(item))
        if header is None:
            return None
        return Upload.model_validate({**header, "files": tuple(files)})

    def start_multipart(
        self, job_id: str, name: str, upload_id: str, part_size: int
    ) -> tuple[str, int]:
        """Record a file's multipart upload, unless one is recorded already: the upload id
        and part size that stand (the other ones, when two requests started one at once)."""
        try:
            self._table.update(
                _file_key(job_id, name),
                "SET upload_id = :id, part_size = :part",
                condition="attribute_exists(#pk) AND attribute_not_exists(upload_id)",
                names={"#pk": names.JOB_ID},
                values={":id": upload_id, ":part": part_size},
            )
        except ConditionFailed:
            item = self._table.get(_file_key(job_id, name))
            if item is None or not item.get("upload_id"):
                raise
            return str(item["upload_id"]), int(item["part_size"])
        return upload_id, part_size

    def end_multipart(self, job_id: str, name: str, upload_id: str) -> None:
        """Forget a file's multipart upload (completed or aborted), if it is still that one."""
        with contextlib.suppress(ConditionFailed):
            self._table.update(
                _file_key(job_id, name),
                "REMOVE upload_id, part_size",
                condition="upload_id = :id",
                values={":id": upload_id},
            )

    def mark_submitted(self, job_id: str, when: str) -> Upload:
        """CREATED -> SUBMITTED; a second submission keeps the first one's time."""
        try:
            item = self._table.update(
                self._key(job_id),
                "SET #s = :submitted, submitted_at = :when",
                condition="#s = :created",
                names={"#s": "status"},
                values={
                    ":submitted": UploadStatus.SUBMITTED,
                    ":created": UploadStatus.CREATED,
                    ":when": when,
                },
            )
        except ConditionFailed:
            current = self.get(job_id)
            if current is None:
                raise
            return current
        return Upload.model_validate(item)

    def delete(self, job_id: str) -> bool:
        """Delete the job's upload and file items; whether there was an upload."""
        found = [
            {names.JOB_ID: job_id, names.SORT_KEY: item[names.SORT_KEY]}
            for item in self._table.query(
                "#pk = :job", names={"#pk": names.JOB_ID}, values={":job": job_id}, consistent=True
            )
        ]
        # The file items first: a delete that stops midway leaves the upload to find.
        self._table.delete_many([k for k in found if k[names.SORT_KEY] != names.UPLOAD_ITEM])
        self._table.delete(self._key(job_id))
        return any(k[names.SORT_KEY] == names.UPLOAD_ITEM for k in found)

    def newest(self, *, before: str | None = None, page_size: int = 25) -> Iterator[Upload]:
        """Uploads newest first (before a created key, if given), a page at a time, without
        their files."""
        for item in self._table.newest(names.UPLOAD_ENTITY, before=before, page_size=page_size):
            yield Upload.model_validate(item)
