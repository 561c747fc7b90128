"""The shares table: client share links, stored by id with only a hash of their token."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, computed_field, field_validator

from darkroom import names
from darkroom.aws.table import ConditionFailed, Table

# Expired and revoked shares stay long enough to answer 410 rather than 404, then
# DynamoDB TTL removes them.
RETENTION_AFTER_EXPIRY_SECONDS = 30 * 24 * 3600
# A share's write counter: rate#<share_id>#<window>. Never a share id (those are hex).
RATE_ITEM_PREFIX = "rate#"


def _attempts_key(share_id: str, window_start: int) -> str:
    # Share ids are 20 hex digits: this never names a share.
    return f"{share_id}#unlock#{window_start}"


class ShareIdTaken(Exception):
    """A freshly drawn share id collided with an existing one (practically never)."""


class Share(BaseModel):
    model_config = ConfigDict(frozen=True)

    share_id: str
    job_id: str
    token_sha256: str
    created_at: str
    expires_at: int  # epoch seconds
    revoked_at: str | None = None
    created_by: str | None = None
    # The photographer's note to the client, shown on the gallery page.
    message: str | None = None
    # A proofing share lets its client mark favourites and leave notes.
    proofing: bool = False
    # The client's password, if the photographer set one: only its scrypt hash
    # (darkroom.api.share_access), never returned by any route.
    password_hash: str | None = None
    # Counted per share, never per person: how often its gallery was opened and its
    # files or ZIPs downloaded.
    views: int = 0
    downloads: int = 0

    @field_validator("views", "downloads", mode="before")
    @classmethod
    def _advisory(cls, value: Any) -> Any:
        # A count only informs the photographer: one that cannot be read (damaged by
        # hand, say) reads as unknown, 0, and never stops the link from opening.
        try:
            return max(int(value), 0)
        except (TypeError, ValueError):
            return 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def expires_ttl(self) -> int:
        return self.expires_at + RETENTION_AFTER_EXPIRY_SECONDS


class ShareStore:
    def __init__(self, table: str, ddb: Any | None = None) -> None:
        self._table = Table(table, names.SHARES_SCHEMA, ddb)

    def put(self, share: Share) -> None:
        try:
            self._table.put_new(share.model_dump(mode="json", exclude_none=True))
        except ConditionFailed as exc:
            raise ShareIdTaken(share.share_id) from exc

    def get(self, share_id: str) -> Share | None:
        item = self._table.get(self._table.key(share_id))
        return Share.model_validate(item) if item else None

    def revoke(self, job_id: str, share_id: str, when: str) -> Share | None:
        """Revoke a share of this job (idempotent); None if no such share of this job."""
        try:
            item = self._table.update(
                self._table.key(share_id),
                "SET revoked_at = if_not_exists(revoked_at, :when)",
                # The job must match: a share id alone never acts on another job's link.
                condition="attribute_exists(share_id) AND job_id = :job",
                values={":when": when, ":job": job_id},
            )
        except ConditionFailed:
            return None
        return Share.model_validate(item)

    def extend(self, job_id: str, share_id: str, expires_at: int, when: str) -> Share | None:
        """Move a live share's expiry (to `expires_at`, epoch seconds); None if no such
        share of this job, or it was revoked."""
        try:
            item = self._table.update(
                self._table.key(share_id),
                "SET expires_at = :at, expires_ttl = :ttl, extended_at = :when",
                condition="attribute_exists(share_id) AND job_id = :job "
                "AND attribute_not_exists(revoked_at)",
                values={
                    ":at": expires_at,
                    ":ttl": expires_at + RETENTION_AFTER_EXPIRY_SECONDS,
                    ":when": when,
                    ":job": job_id,
                },
            )
        except ConditionFailed:
            return None
        return Share.model_validate(item)

    def set_password(self, job_id: str, share_id: str, password_hash: str | None) -> Share | None:
        """A live share's new password hash (None: no password); None if no such share
        of this job, or it was revoked."""
        expression = (
            "SET password_hash = :hash" if password_hash is not None else "REMOVE password_hash"
        )
        values: dict[str, Any] = {":job": job_id}
        if password_hash is not None:
            values[":hash"] = password_hash
        try:
            item = self._table.update(
                self._table.key(share_id),
                expression,
                condition="attribute_exists(share_id) AND job_id = :job "
                "AND attribute_not_exists(revoked_at)",
                values=values,
            )
        except ConditionFailed:
            return None
        return Share.model_validate(item)

    def count(self, share_id: str, counter: str) -> None:
        """One more view or download: an atomic ADD, so concurrent clients never lose a
        count, and nothing is read or stored about who it was."""
        if counter not in (names.SHARE_VIEWS, names.SHARE_DOWNLOADS):
            raise ValueError(f"a share counts no {counter!r}")
        self._table.update(
            self._table.key(share_id),
            "ADD #counter :one",
            # Never create an item: a share erased meanwhile stays erased.
            condition="attribute_exists(share_id)",
            names={"#counter": counter},
            values={":one": 1},
        )

    def spend_write(self, share_id: str, now: float, window_seconds: int) -> tuple[int, int]:
        """Count one client write through a share in the current fixed window: how many
        this window has seen (this one included) and the seconds until it ends.

        Kept in the table, not in a function's memory: many Lambdas answer one link. The
        counter is its own item (no job_id, so outside the job's index), and DynamoDB's
        TTL removes it once its window is long past."""
        window = int(now) // window_seconds
        ends = (window + 1) * window_seconds
        key = f"{RATE_ITEM_PREFIX}{share_id}#{window}"
        writes = self._count_in_window(key, "writes", expires=ends + window_seconds)
        assert writes is not None  # no limit: always counted
        return writes, max(ends - int(now), 1)

    def count_unlock_attempt(
        self, share_id: str, window_start: int, window_seconds: int, limit: int
    ) -> bool:
        """Count one unlock attempt in the window starting at `window_start` (epoch
        seconds); False, counting nothing, once `limit` are counted in it.

        One item per share and window, beside the shares (its key is no share id, and it
        has no job id, so the job index never sees it), gone by TTL after its window: the
        API runs as many Lambdas at once, so the count lives here, not in memory. Counted
        before the password is checked, so parallel guesses cannot all pass the check
        before any is counted; a failed write raises, and the caller lets no one in."""
        counted = self._count_in_window(
            _attempts_key(share_id, window_start),
            "attempts",
            expires=window_start + 2 * window_seconds,
            limit=limit,
        )
        return counted is not None

    def _count_in_window(
        self, key: str, counter: str, *, expires: int, limit: int | None = None
    ) -> int | None:
        """One more on a window's counter item (an atomic ADD; the item is made on the
        first, and TTL removes it at `expires`): the new count, or None, counting
        nothing, once `limit` are counted."""
        condition, values = None, {":one": 1, ":ttl": expires}
        if limit is not None:
            condition = "attribute_not_exists(#counter) OR #counter < :limit"
            values[":limit"] = limit
        try:
            item = self._table.update(
                self._table.key(key),
                "ADD #counter :one SET #ttl = :ttl",
                condition=condition,
                names={"#counter": counter, "#ttl": names.TTL_ATTRIBUTE},
                values=values,
            )
        except ConditionFailed:
            return None
        return int(item.get(counter, 1))

    def refund_unlock_attempt(self, share_id: str, window_start: int) -> None:
        """Uncount an attempt that gave the right password: only wrong ones use up the
        limit."""
        self._table.update(
            self._table.key(_attempts_key(share_id, window_start)),
            "ADD attempts :minus",
            condition="attempts > :zero",
            values={":minus": -1, ":zero": 0},
        )

    def of_job(self, job_id: str) -> list[Share]:
        """Every share of a job (the job's index, which projects whole items: shares are
        otherwise read by id)."""
        return [
            Share.model_validate(item)
            for item in self._table.query(
                "#job = :job",
                names={"#job": names.JOB_ID},
                values={":job": job_id},
                index=names.JOB_SHARES_INDEX,
            )
        ]

    def delete(self, share_id: str) -> None:
        self._table.delete(self._table.key(share_id))
