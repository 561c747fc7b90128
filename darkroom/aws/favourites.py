"""A proofing client's favourites: one item each in the job's partition of the jobs
table (FAV#<share_id>#<file name>), beside the job's own items and never one of them.

Marking is idempotent (a second mark replaces the note), unmarking too; reading a share's
favourites or the whole job's is one query on the sort key's prefix."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict

from darkroom import names
from darkroom.aws.table import Table


class Favourite(BaseModel):
    model_config = ConfigDict(frozen=True)

    share_id: str
    file_name: str
    note: str | None = None
    marked_at: str


def favourite_key(job_id: str, share_id: str, file_name: str) -> dict[str, str]:
    return {
        names.JOB_ID: job_id,
        names.SORT_KEY: f"{names.FAVOURITE_ITEM_PREFIX}{share_id}#{file_name}",
    }


class FavouriteStore:
    def __init__(self, table: str, ddb: Any | None = None) -> None:
        self._table = Table(table, names.JOBS_SCHEMA, ddb)

    def mark(self, job_id: str, favourite: Favourite) -> None:
        # UpdateItem, not PutItem: the API's role may update the jobs table, and one
        # write whole either way (the note is set or removed with the mark).
        sets = "SET share_id = :share, file_name = :file, marked_at = :at"
        values: dict[str, Any] = {
            ":share": favourite.share_id,
            ":file": favourite.file_name,
            ":at": favourite.marked_at,
        }
        if favourite.note:
            expression = f"{sets}, note = :note"
            values[":note"] = favourite.note
        else:
            expression = f"{sets} REMOVE note"
        self._table.update(
            favourite_key(job_id, favourite.share_id, favourite.file_name),
            expression,
            values=values,
        )

    def unmark(self, job_id: str, share_id: str, file_name: str) -> None:
        self._table.delete(favourite_key(job_id, share_id, file_name))

    def of_share(self, job_id: str, share_id: str) -> Iterator[Favourite]:
        return self._query(job_id, f"{names.FAVOURITE_ITEM_PREFIX}{share_id}#")

    def of_job(self, job_id: str) -> Iterator[Favourite]:
        """Every share's, in (share, file name) order."""
        return self._query(job_id, names.FAVOURITE_ITEM_PREFIX)

    def _query(self, job_id: str, prefix: str) -> Iterator[Favourite]:
        for item in self._table.query(
            "#pk = :job AND begins_with(#sk, :prefix)",
            names={"#pk": names.JOB_ID, "#sk": names.SORT_KEY},
            values={":job": job_id, ":prefix": prefix},
            consistent=True,
        ):
            yield Favourite.model_validate(item)
