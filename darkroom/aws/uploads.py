"""The uploads table: jobs the API created whose files are still arriving.

A job gets a record in the jobs table only when its execution registers it, and the job
model has no status for "declared, not yet submitted". The API keeps that phase here.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

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


class Upload(BaseModel):
    model_config = ConfigDict(frozen=True)

    job_id: str
    status: UploadStatus
    files: tuple[DeclaredFile, ...]
    created_at: str
    name: str | None = None
    recipe: dict[str, Any] | None = None
    submitted_at: str | None = None
    created_by: str | None = None
    expires_ttl: int = 0

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def created_key(self) -> str:
        return created_key(self.created_at, self.job_id)


class UploadStore:
    def __init__(self, table: str, ddb: Any | None = None) -> None:
        self._table = Table(table, names.UPLOADS_SCHEMA, ddb)

    def create(self, upload: Upload) -> None:
        item = upload.model_dump(mode="json", exclude_none=True)
        item[names.ENTITY] = names.UPLOAD_ENTITY
        item[names.CREATED_KEY] = upload.created_key
        try:
            self._table.put_new(item)
        except ConditionFailed as exc:
            raise JobExists(f"job {upload.job_id} already exists") from exc

    def get(self, job_id: str) -> Upload | None:
        item = self._table.get(self._table.key(job_id))
        return Upload.model_validate(item) if item else None

    def mark_submitted(self, job_id: str, when: str) -> Upload:
        """CREATED -> SUBMITTED; a second submission keeps the first one's time."""
        try:
            item = self._table.update(
                self._table.key(job_id),
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
        """Delete the job's upload record; whether there was one."""
        if self.get(job_id) is None:
            return False
        self._table.delete(self._table.key(job_id))
        return True

    def newest(self, *, before: str | None = None, page_size: int = 25) -> Iterator[Upload]:
        """Uploads newest first (before a created key, if given), a page at a time."""
        for item in self._table.newest(names.UPLOAD_ENTITY, before=before, page_size=page_size):
            yield Upload.model_validate(item)
