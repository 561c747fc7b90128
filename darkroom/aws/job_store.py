"""The jobs table. Every change is a conditional write keyed on the owning execution."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from typing import Any

from darkroom import names
from darkroom.aws.table import ConditionFailed, Table
from darkroom.errors import JobBusy, JobNotFound, StaleExecution
from darkroom.jobs import (
    TERMINAL,
    FileProgress,
    Job,
    JobStatus,
    created_key,
    pending_progress,
    sources_of,
    utc_now,
)


def job_key(job_id: str) -> dict[str, str]:
    """The key of a job's own item (its files' and runs' items share the partition)."""
    return {names.JOB_ID: job_id, names.SORT_KEY: names.JOB_ITEM}


class JobStore:
    def __init__(self, table: str, ddb: Any | None = None) -> None:
        self._table = Table(table, names.JOBS_SCHEMA, ddb)

    # -- reads --------------------------------------------------------------------
    def get(self, job_id: str) -> Job:
        item = self._table.get(job_key(job_id))
        if item is None:
            raise JobNotFound(f"job {job_id} not found")
        return Job.model_validate(item)

    def find(self, job_id: str) -> Job | None:
        try:
            return self.get(job_id)
        except JobNotFound:
            return None

    def newest(self, *, before: str | None = None, page_size: int = 25) -> Iterator[Job]:
        """Jobs newest first (before a created key, if given), a page at a time."""
        for item in self._table.newest(names.JOB_ENTITY, before=before, page_size=page_size):
            yield Job.model_validate(item)

    def registered(self, job_ids: Iterable[str]) -> set[str]:
        """Which of these jobs have a record."""
        keys = [job_key(job_id) for job_id in dict.fromkeys(job_ids)]
        return {item[names.JOB_ID] for item in self._table.get_many(keys)} if keys else set()

    # -- writes -------------------------------------------------------------------
    def register(
        self,
        *,
        job_id: str,
        execution_arn: str,
        files: Sequence[str],
        name: str | None,
        recipe: Mapping[str, Any] | None,
        created_at: str | None = None,
    ) -> Job:
        """Make `execution_arn` the job's owner: new jobs, or terminal ones (reprocessing)
        that no other execution has claimed; its own claim is released.

        Idempotent for the same execution (a retried RegisterJob); any other live owner
        means the job is already running, which is refused. `created_at` is when the job
        was declared (its upload), if it was; a job keeps the first one it is given.
        """
        now = utc_now()
        attribute_names = {
            "#s": "status",
            "#e": "error",
            "#entity": names.ENTITY,
            "#created_key": names.CREATED_KEY,
        }
        values: dict[str, Any] = {
            ":registered": JobStatus.REGISTERED,
            ":exec": execution_arn,
            ":exec_list": [execution_arn],
            ":empty": [],
            ":files": list(files),
            ":progress": {k: p.to_item() for k, p in pending_progress(files).items()},
            ":now": now,
            ":zero": 0,
            ":one": 1,
            ":entity": names.JOB_ENTITY,
            ":created": created_at or now,
            ":created_key": created_key(created_at or now, job_id),
        }
        sets = [
            "#s = :registered",
            "execution_arn = :exec",
            "executions = list_append(if_not_exists(executions, :empty), :exec_list)",
            "files = :files",
            "progress = :progress",
            "attempt = if_not_exists(attempt, :zero) + :one",
            # Both once, at creation: a job keeps its place in the listing when reprocessed.
            "created_at = if_not_exists(created_at, :created)",
            "#created_key = if_not_exists(#created_key, :created_key)",
            "#entity = :entity",
            "updated_at = :now",
        ]
        if name is not None:
            sets.append("#n = :name")
            attribute_names["#n"] = "name"
            values[":name"] = name
        if recipe is not None:
            sets.append("recipe = :recipe")
            values[":recipe"] = dict(recipe)
        terminal = {f":t{i}": s for i, s in enumerate(sorted(TERMINAL))}
        values.update(terminal)
        try:
            item = self._table.update(
                job_key(job_id),
                "SET "
                + ", ".join(sets)
                + " REMOVE #e, cause, instance_id, manifest_key, started_at, finished_at,"
                + " claimed_by, claimed_at",
                condition=f"(attribute_not_exists(job_id) OR #s IN ({', '.join(terminal)}))"
                " AND (attribute_not_exists(claimed_by) OR claimed_by = :exec)",
                names=attribute_names,
                values=values,
            )
        except ConditionFailed as exc:
            current = self.get(job_id)
            if current.execution_arn == execution_arn:
                return current
            if current.is_terminal and current.claimed_by:
                raise JobBusy(
                    f"job {job_id} is claimed by execution {current.claimed_by}, "
                    "which is reprocessing it"
                ) from exc
            raise JobBusy(
                f"job {job_id} is {current.status} under execution {current.execution_arn}; "
                "it can be reprocessed once that finishes"
            ) from exc
        return Job.model_validate(item)

    def claim(
        self, job_id: str, execution_arn: str, *, now: float, replacing: str | None = None
    ) -> Job:
        """Name `execution_arn` as the one execution about to reprocess this finished job.

        One conditional write: of two concurrent claims exactly one succeeds, and the
        other is JobBusy. Only that execution can then register the job. `replacing`
        takes over a claim whose execution will never register (the caller decides).
        """
        terminal = {f":t{i}": s for i, s in enumerate(sorted(TERMINAL))}
        unclaimed = "attribute_not_exists(claimed_by)"
        values: dict[str, Any] = {":exec": execution_arn, ":at": now, **terminal}
        if replacing is not None:
            unclaimed += " OR claimed_by = :replacing"
            values[":replacing"] = replacing
        try:
            item = self._table.update(
                job_key(job_id),
                "SET claimed_by = :exec, claimed_at = :at",
                condition=f"#s IN ({', '.join(terminal)}) AND ({unclaimed})",
                names={"#s": "status"},
                values=values,
            )
        except ConditionFailed as exc:
            current = self.get(job_id)
            if current.is_terminal and current.claimed_by:
                raise JobBusy(
                    f"job {job_id} is being reprocessed already "
                    f"(execution {current.claimed_by.rsplit(':', 1)[-1]})"
                ) from exc
            raise JobBusy(
                f"job {job_id} is {current.status}; reprocess it once it has finished"
            ) from exc
        return Job.model_validate(item)

    def release_claim(self, job_id: str, execution_arn: str) -> None:
        """Withdraw a claim whose execution was not started (only this execution's)."""
        # A claim already taken over, or released by registering, is left as it is.
        with suppress(ConditionFailed):
            self._table.update(
                job_key(job_id),
                "REMOVE claimed_by, claimed_at",
                condition="claimed_by = :exec",
                values={":exec": execution_arn},
            )

    def transition(
        self,
        job_id: str,
        execution_arn: str,
        target: JobStatus,
        *,
        set_fields: Mapping[str, Any] | None = None,
    ) -> Job:
        """Move the job to `target` if this execution owns it and the move is legal.

        Re-applying the same transition (a retried Lambda) is accepted.
        """
        allowed = sorted({*sources_of(target), target})
        values: dict[str, Any] = {
            ":target": target,
            ":exec": execution_arn,
            ":now": utc_now(),
            **{f":a{i}": s for i, s in enumerate(allowed)},
        }
        attribute_names = {"#s": "status"}
        sets = ["#s = :target", "updated_at = :now"]
        for i, (key, value) in enumerate((set_fields or {}).items()):
            attribute_names[f"#f{i}"] = key
            values[f":f{i}"] = value
            sets.append(f"#f{i} = :f{i}")
        allowed_values = ", ".join(f":a{i}" for i in range(len(allowed)))
        try:
            item = self._table.update(
                job_key(job_id),
                "SET " + ", ".join(sets),
                condition=f"execution_arn = :exec AND #s IN ({allowed_values})",
                names=attribute_names,
                values=values,
            )
        except ConditionFailed as exc:
            current = self.get(job_id)
            if current.execution_arn != execution_arn:
                raise StaleExecution(
                    f"job {job_id} now belongs to {current.execution_arn}, not {execution_arn}"
                ) from exc
            raise JobBusy(f"job {job_id} cannot go from {current.status} to {target}") from exc
        return Job.model_validate(item)

    def delete_job(self, job_id: str) -> int:
        """Delete every item of the job's partition, whatever its sort key; the job's own
        item last, so a delete that fails midway still finds the job when retried.
        How many items there were."""
        items = list(
            self._table.query(
                "#pk = :job", names={"#pk": names.JOB_ID}, values={":job": job_id}, consistent=True
            )
        )
        keys = [{names.JOB_ID: job_id, names.SORT_KEY: i[names.SORT_KEY]} for i in items]
        self._table.delete_many([k for k in keys if k[names.SORT_KEY] != names.JOB_ITEM])
        self._table.delete(job_key(job_id))
        return len(keys)

    def record_file(
        self, job_id: str, execution_arn: str, file_name: str, progress: FileProgress
    ) -> None:
        """Per-file progress, written as each file finishes (only while this run owns it)."""
        try:
            self._table.update(
                job_key(job_id),
                "SET progress.#f = :p, updated_at = :now",
                condition="execution_arn = :exec AND #s = :processing",
                names={"#f": file_name, "#s": "status"},
                values={
                    ":p": progress.to_item(),
                    ":now": utc_now(),
                    ":exec": execution_arn,
                    ":processing": JobStatus.PROCESSING,
                },
            )
        except ConditionFailed as exc:
            raise StaleExecution(
                f"job {job_id} is no longer processing under {execution_arn}"
            ) from exc
