"""The jobs table. Every change is a conditional write keyed on the owning execution."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from darkroom.aws.clients import client, error_code
from darkroom.aws.ddb_codec import from_item, to_attribute
from darkroom.errors import JobBusy, JobNotFound, StaleExecution
from darkroom.jobs import (
    TERMINAL,
    FileProgress,
    Job,
    JobStatus,
    pending_progress,
    sources_of,
    utc_now,
)


class JobStore:
    def __init__(self, table: str, ddb: Any | None = None) -> None:
        self._table = table
        self._ddb = ddb or client("dynamodb")

    # -- encoding -----------------------------------------------------------------
    def _v(self, value: Any) -> Any:
        return to_attribute(value)

    def _item(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        return from_item(raw)

    # -- reads --------------------------------------------------------------------
    def get(self, job_id: str) -> Job:
        raw = self._ddb.get_item(
            TableName=self._table, Key={"job_id": {"S": job_id}}, ConsistentRead=True
        ).get("Item")
        if not raw:
            raise JobNotFound(f"job {job_id} not found")
        return Job.from_item(self._item(raw))

    def find(self, job_id: str) -> Job | None:
        try:
            return self.get(job_id)
        except JobNotFound:
            return None

    def recent(self, limit: int = 20) -> list[Job]:
        """The newest jobs. A scan: fine for a studio's table; the API issue adds an index."""
        items: list[Job] = []
        kwargs: dict[str, Any] = {"TableName": self._table}
        while True:
            page = self._ddb.scan(**kwargs)
            items.extend(Job.from_item(self._item(i)) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        items.sort(key=lambda j: j.updated_at or "", reverse=True)
        return items[:limit]

    # -- writes -------------------------------------------------------------------
    def register(
        self,
        *,
        job_id: str,
        execution_arn: str,
        files: Sequence[str],
        name: str | None,
        recipe: Mapping[str, Any] | None,
    ) -> Job:
        """Make `execution_arn` the job's owner: new jobs, or terminal ones (reprocessing).

        Idempotent for the same execution (a retried RegisterJob); any other live owner
        means the job is already running, which is refused.
        """
        now = utc_now()
        names = {"#s": "status"}
        values: dict[str, Any] = {
            ":registered": self._v(str(JobStatus.REGISTERED)),
            ":exec": self._v(execution_arn),
            ":exec_list": self._v([execution_arn]),
            ":empty": self._v([]),
            ":files": self._v(list(files)),
            ":progress": self._v({k: p.to_item() for k, p in pending_progress(files).items()}),
            ":now": self._v(now),
            ":zero": self._v(0),
            ":one": self._v(1),
        }
        sets = [
            "#s = :registered",
            "execution_arn = :exec",
            "executions = list_append(if_not_exists(executions, :empty), :exec_list)",
            "files = :files",
            "progress = :progress",
            "attempt = if_not_exists(attempt, :zero) + :one",
            "created_at = if_not_exists(created_at, :now)",
            "updated_at = :now",
        ]
        if name is not None:
            sets.append("#n = :name")
            names["#n"] = "name"
            values[":name"] = self._v(name)
        if recipe is not None:
            sets.append("recipe = :recipe")
            values[":recipe"] = self._v(dict(recipe))
        terminal = {f":t{i}": self._v(str(s)) for i, s in enumerate(sorted(TERMINAL))}
        values.update(terminal)
        try:
            raw = self._ddb.update_item(
                TableName=self._table,
                Key={"job_id": {"S": job_id}},
                UpdateExpression="SET "
                + ", ".join(sets)
                + " REMOVE #e, cause, instance_id, manifest_key, started_at, finished_at",
                ConditionExpression=(
                    f"attribute_not_exists(job_id) OR #s IN ({', '.join(terminal)})"
                ),
                ExpressionAttributeNames={**names, "#e": "error"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            current = self.get(job_id)
            if current.execution_arn == execution_arn:
                return current
            raise JobBusy(
                f"job {job_id} is {current.status} under execution {current.execution_arn}; "
                "it can be reprocessed once that finishes"
            ) from exc
        return Job.from_item(self._item(raw))

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
        now = utc_now()
        allowed = sorted({*sources_of(target), target})
        values: dict[str, Any] = {
            ":target": self._v(str(target)),
            ":exec": self._v(execution_arn),
            ":now": self._v(now),
            **{f":a{i}": self._v(str(s)) for i, s in enumerate(allowed)},
        }
        names = {"#s": "status"}
        sets = ["#s = :target", "updated_at = :now"]
        for i, (key, value) in enumerate((set_fields or {}).items()):
            names[f"#f{i}"] = key
            values[f":f{i}"] = self._v(value)
            sets.append(f"#f{i} = :f{i}")
        condition = (
            "execution_arn = :exec AND #s IN ("
            + ", ".join(f":a{i}" for i in range(len(allowed)))
            + ")"
        )
        try:
            raw = self._ddb.update_item(
                TableName=self._table,
                Key={"job_id": {"S": job_id}},
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            current = self.get(job_id)
            if current.execution_arn != execution_arn:
                raise StaleExecution(
                    f"job {job_id} now belongs to {current.execution_arn}, not {execution_arn}"
                ) from exc
            raise JobBusy(f"job {job_id} cannot go from {current.status} to {target}") from exc
        return Job.from_item(self._item(raw))

    def record_file(
        self, job_id: str, execution_arn: str, file_name: str, progress: FileProgress
    ) -> None:
        """Per-file progress, written as each file finishes (only while this run owns it)."""
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key={"job_id": {"S": job_id}},
                UpdateExpression="SET progress.#f = :p, updated_at = :now",
                ConditionExpression="execution_arn = :exec AND #s = :processing",
                ExpressionAttributeNames={"#f": file_name, "#s": "status"},
                ExpressionAttributeValues={
                    ":p": self._v(progress.to_item()),
                    ":now": self._v(utc_now()),
                    ":exec": self._v(execution_arn),
                    ":processing": self._v(str(JobStatus.PROCESSING)),
                },
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise StaleExecution(
                    f"job {job_id} is no longer processing under {execution_arn}"
                ) from exc
            raise
