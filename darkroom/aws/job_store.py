"""The jobs table: a job item and one item per file, in the job's partition.

(Over 400 lines: every conditional write on the table, so each condition reads beside
the others it must agree with.)

Every change is a conditional write keyed on the owning execution (or, for a file, the
run its current attempt belongs to)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from enum import Enum
from typing import Any, Final, Literal

from darkroom import keys, names
from darkroom.aws.job_events import JobEvents
from darkroom.aws.table import TRANSACTION_MAX, Check, ConditionFailed, Put, Table, Update
from darkroom.delivery import delivers_from, resolved
from darkroom.errors import JobBusy, JobNotFound, StaleExecution
from darkroom.jobs import (
    ATTEMPT_FIELDS,
    MAX_EXECUTIONS,
    TERMINAL,
    Archive,
    ArchiveSegment,
    DeliveredRun,
    FileProgress,
    FileRecord,
    FileStatus,
    Job,
    JobStatus,
    RunSelection,
    Shard,
    created_key,
    sources_of,
    utc_now,
)


def job_key(job_id: str) -> dict[str, str]:
    """The key of a job's own item (its files' and runs' items share the partition)."""
    return {names.JOB_ID: job_id, names.SORT_KEY: names.JOB_ITEM}


def file_key(job_id: str, file_name: str) -> dict[str, str]:
    return {names.JOB_ID: job_id, names.SORT_KEY: names.FILE_ITEM_PREFIX + file_name}


def shard_key(job_id: str, shard: int) -> dict[str, str]:
    return {names.JOB_ID: job_id, names.SORT_KEY: f"{names.SHARD_ITEM_PREFIX}{shard:06d}"}


def shard_items(
    job_id: str, run: str, shards: Mapping[str, int], *, packages: bool
) -> list[dict[str, Any]]:
    """One item per shard of the run (a Shard). A shard's files are a run of the sorted
    names (darkroom.shards.shard_of), so its first and last bound a key range holding
    its files and no other shard's. `packages`: the run's only shard packages it."""
    members: dict[int, list[str]] = {}
    for file_name, shard in shards.items():
        members.setdefault(shard, []).append(file_name)
    return [
        {
            **shard_key(job_id, shard),
            **Shard(
                run_id=run,
                first=min(files),
                last=max(files),
                files=len(files),
                packages=packages and len(members) == 1,
            ).model_dump(mode="json", exclude_none=True),
        }
        for shard, files in sorted(members.items())
    ]


class _Unread(Enum):
    POINTER = "pointer"


# A notice "sending" this long is a sender that died midway: it may be tried again.
NOTICE_STALE_SECONDS: Final = 300
MAX_NOTICE_ERROR_CHARS: Final = 500

# A file read's default: the job's delivered run is read from its item by the call. A
# caller holding the job passes `job.delivered` instead (None: nothing delivered yet).
UNREAD: Final = _Unread.POINTER
Pointer = DeliveredRun | None | Literal[_Unread.POINTER]


class JobStore:
    def __init__(
        self, table: str, ddb: Any | None = None, *, events: JobEvents | None = None
    ) -> None:
        self._table = Table(table, names.JOBS_SCHEMA, ddb)
        # Every status written through this store is published there (issue 18).
        self._events = events

    def _published(self, job: Job) -> Job:
        if self._events is not None:
            self._events.publish(job)
        return job

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

    def files(self, job_id: str, *, delivered: Pointer = UNREAD) -> Iterator[FileRecord]:
        """The job's file items in name order, a page at a time (consistent reads), each
        with what it delivers (darkroom.delivery.resolved)."""
        pointer = self._pointer(job_id, delivered)
        for item in self._file_items(job_id):
            yield resolved(FileRecord.model_validate(item), pointer)

    def shard(self, job_id: str, run: str, shard: int) -> Shard | None:
        """The shard's item in `run` (None for a run registered without one)."""
        item = self._table.get(shard_key(job_id, shard))
        if item is None or item.get("run_id") != run:
            return None
        return Shard.model_validate(item)

    def shards(self, job_id: str, run: str) -> list[Shard]:
        """The run's shard items in shard order (none for a run registered without)."""
        items = self._table.query(
            "#pk = :job AND begins_with(#sk, :shard)",
            names={"#pk": names.JOB_ID, "#sk": names.SORT_KEY},
            values={":job": job_id, ":shard": names.SHARD_ITEM_PREFIX},
            consistent=True,
        )
        return [Shard.model_validate(i) for i in items if i.get("run_id") == run]

    def shard_files(
        self,
        job_id: str,
        run: str,
        shard: int,
        *,
        delivered: Pointer = UNREAD,
        bounds: Shard | None = None,
    ) -> Iterator[FileRecord]:
        """This run's file items of `shard`, in name order: the key range its shard item
        bounds (the whole job's files, filtered, for a run registered without one).
        `bounds`: that item, when the caller has read it already."""
        bounds = bounds or self.shard(job_id, run, shard)
        pointer = self._pointer(job_id, delivered)
        if bounds is None:
            items = self._file_items(job_id)
        else:
            items = self._table.query(
                "#pk = :job AND #sk BETWEEN :first AND :last",
                names={"#pk": names.JOB_ID, "#sk": names.SORT_KEY},
                values={
                    ":job": job_id,
                    ":first": names.FILE_ITEM_PREFIX + bounds.first,
                    ":last": names.FILE_ITEM_PREFIX + bounds.last,
                },
                consistent=True,
            )
        for item in items:
            record = FileRecord.model_validate(item)
            if record.run_id == run and record.shard == shard:
                yield resolved(record, pointer)

    def files_page(
        self,
        job_id: str,
        *,
        start_after: str | None,
        limit: int,
        delivered: Pointer = UNREAD,
        descending: bool = False,
    ) -> tuple[list[FileRecord], str | None]:
        """Up to `limit` file items in name order (reversed with `descending`: those
        before `start_after`), after the file named `start_after`; and the name to
        continue after, None when no file follows. One more item is read than
        returned, so the last page says it is the last."""
        pointer = self._pointer(job_id, delivered)
        items = self._table.query(
            "#pk = :job AND begins_with(#sk, :file)",
            names={"#pk": names.JOB_ID, "#sk": names.SORT_KEY},
            values={":job": job_id, ":file": names.FILE_ITEM_PREFIX},
            consistent=True,
            descending=descending,
            page_size=limit + 1,
            start_after=None if start_after is None else file_key(job_id, start_after),
        )
        records = [
            resolved(FileRecord.model_validate(i), pointer)
            for i in itertools.islice(items, limit + 1)
        ]
        if len(records) > limit:
            return records[:limit], records[limit - 1].name
        return records, None

    def file(
        self, job_id: str, file_name: str, *, delivered: Pointer = UNREAD
    ) -> FileRecord | None:
        pointer = self._pointer(job_id, delivered)
        record = self._file_item(job_id, file_name)
        return resolved(record, pointer) if record else None

    def _pointer(self, job_id: str, delivered: Pointer) -> DeliveredRun | None:
        """The run the job delivers. Read before the file items: whatever finishes or
        registers meanwhile, a file then resolves to what it delivered at the read or
        later, never to what it delivered before."""
        if delivered is UNREAD:
            job = self.find(job_id)
            return job.delivered if job else None
        return delivered

    def _file_items(self, job_id: str) -> Iterator[dict[str, Any]]:
        return self._table.query(
            "#pk = :job AND begins_with(#sk, :file)",
            names={"#pk": names.JOB_ID, "#sk": names.SORT_KEY},
            values={":job": job_id, ":file": names.FILE_ITEM_PREFIX},
            consistent=True,
        )

    def _file_item(self, job_id: str, file_name: str) -> FileRecord | None:
        """The file's item as stored: its attempt, and what it delivers unresolved."""
        item = self._table.get(file_key(job_id, file_name))
        return FileRecord.model_validate(item) if item else None

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
        versions: Mapping[str, str | None] | None = None,
        shards: Mapping[str, int] | None = None,
        packaged_by_shard: bool = False,
        sidecars: Mapping[str, tuple[str, str | None]] | None = None,
        numbers: Mapping[str, int] | None = None,
        selection: RunSelection | None = None,
        delivery_policy: Mapping[str, Any] | None = None,
    ) -> Job:
        """Make `execution_arn` the job's owner: new jobs, or terminal ones (reprocessing)
        that no other execution has claimed; its own claim is released. Then give each
        file a pending attempt in this run, keeping what it has delivered: copied into
        its item, since what the job's delivered run gave it goes with the attempt.

        Idempotent for the same execution (a retried RegisterJob); any other live owner
        means the job is already running, which is refused. `created_at` is when the job
        was declared (its upload), if it was; a job keeps the first one it is given.
        `versions` are the originals' S3 version ids; a file keeps the first it is given.
        `shards`: which shard of the run develops each file (0 when not given).
        `packaged_by_shard`: a run of one shard is packaged by that shard's worker.
        `sidecars`: file -> its XMP sidecar's name and S3 version, as this run reads them.
        `numbers`: each file's number in the whole job by name, when the run develops
        only some files (`selection` says which were asked for; `files` are those).
        """
        job = self._register_job(
            job_id, execution_arn, files, name, recipe, created_at, selection, delivery_policy
        )
        self._register_files(
            job_id,
            execution_arn,
            files,
            versions or {},
            shards or {},
            packaged_by_shard,
            job.delivered,
            sidecars or {},
            numbers or {},
        )
        return job

    def _register_job(
        self,
        job_id: str,
        execution_arn: str,
        files: Sequence[str],
        name: str | None,
        recipe: Mapping[str, Any] | None,
        created_at: str | None,
        selection: RunSelection | None = None,
        delivery_policy: Mapping[str, Any] | None = None,
    ) -> Job:
        now = utc_now()
        current = self.find(job_id)
        if current is not None and current.execution_arn == execution_arn:
            return current  # a retried RegisterJob: the job item is written already
        executions = [*(current.executions if current else ()), execution_arn]
        attribute_names = {
            "#s": "status",
            "#e": "error",
            "#entity": names.ENTITY,
            "#created_key": names.CREATED_KEY,
        }
        values: dict[str, Any] = {
            ":registered": JobStatus.REGISTERED,
            ":exec": execution_arn,
            ":run": keys.run_id(execution_arn),
            ":executions": executions[-MAX_EXECUTIONS:],
            ":total": len(files),
            ":now": now,
            ":zero": 0,
            ":attempt": (current.attempt if current else 0) + 1,
            ":previous": current.attempt if current else 0,
            ":entity": names.JOB_ENTITY,
            ":created": created_at or now,
            ":created_key": created_key(created_at or now, job_id),
        }
        sets = [
            "#s = :registered",
            "execution_arn = :exec",
            "run_id = :run",
            "executions = :executions",
            "files_total = :total",
            "files_done = :zero",
            "files_failed = :zero",
            "files_skipped = :zero",
            "attempt = :attempt",
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
        removes = "#e, cause, instance_id, manifest_key, started_at, finished_at, claimed_by, "
        removes += "claimed_at, files, progress"
        attribute_names["#sel"] = "selection"
        if selection is not None:
            sets.append("#sel = :selection")
            values[":selection"] = selection.model_dump(mode="json")
        else:
            removes += ", #sel"  # a whole run after a partial one
        if delivery_policy is not None:
            sets.append("delivery_policy = :policy")
            values[":policy"] = dict(delivery_policy)
        terminal = {f":t{i}": s for i, s in enumerate(sorted(TERMINAL))}
        values.update(terminal)
        try:
            item = self._table.update(
                job_key(job_id),
                "SET "
                + ", ".join(sets)
                # `delivered` stays: what the client has until this run finishes.
                + f" REMOVE {removes}",
                # The attempt read above is still the job's: the executions kept are its.
                condition="(attribute_not_exists(job_id) OR "
                f"(#s IN ({', '.join(terminal)}) AND attempt = :previous))"
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
        return self._published(Job.model_validate(item))

    def _register_files(
        self,
        job_id: str,
        execution_arn: str,
        files: Sequence[str],
        versions: Mapping[str, str | None],
        shards: Mapping[str, int],
        packaged_by_shard: bool,
        delivered: DeliveredRun | None,
        sidecars: Mapping[str, tuple[str, str | None]],
        numbers: Mapping[str, int],
    ) -> None:
        """Whole file items, in transactions that each hold only while the job is this
        execution's and registered, and that never reset an attempt this run recorded.

        `delivered` is the job's delivered run, which registering leaves as it is: what
        a file resolves to against it is copied into the file's item, since the attempt
        the pointer goes by is about to be replaced or, for a file this run does not
        list, to be pointed away from when this run finishes."""
        run = keys.run_id(execution_arn)
        existing = {r.name: r for r in self.files(job_id, delivered=delivered)}
        owned = Check(
            job_key(job_id),
            "execution_arn = :exec AND #s = :registered",
            names={"#s": "status"},
            values={":exec": execution_arn, ":registered": JobStatus.REGISTERED},
        )
        # Rewritten whole by a retried RegisterJob (the same bounds), never once this run's
        # shard has recorded its ZIPs or its parts of them.
        puts = [
            *_attempt_puts(job_id, run, files, existing, versions, shards, sidecars, numbers),
            *_unlisted_puts(job_id, files, existing, delivered),
            *(
                Put(
                    item,
                    condition="attribute_not_exists(run_id) OR run_id <> :run"
                    " OR (attribute_not_exists(archives) AND attribute_not_exists(#parts))",
                    names={"#parts": "segments"},  # a DynamoDB reserved word
                    values={":run": run},
                )
                for item in shard_items(job_id, run, shards, packages=packaged_by_shard)
            ),
        ]
        batch = TRANSACTION_MAX - 1
        for start in range(0, len(puts), batch):
            try:
                self._table.write_together([owned, *puts[start : start + batch]])
            except ConditionFailed as exc:
                raise JobBusy(
                    f"job {job_id} changed while execution {run} registered its files"
                ) from exc

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
        return self._published(Job.model_validate(item))

    # -- notices (darkroom.notify): each message of a run sent once ----------------
    def claim_notice(self, job_id: str, run: str, kind: str, *, now: float) -> bool:
        """Take the right to send the run's `kind` message: True once, and again only
        after a failed try (or one in flight past `stale_after`: its sender died);
        False when it was sent, or another sender holds it."""
        key = {names.JOB_ID: job_id, names.SORT_KEY: f"{names.NOTICE_ITEM_PREFIX}{run}#{kind}"}
        try:
            self._table.update(
                key,
                "SET #st = :sending, claimed_at = :now",
                condition="attribute_not_exists(#st) OR #st = :failed OR "
                "(#st = :sending AND claimed_at < :stale)",
                names={"#st": "state"},
                values={
                    ":sending": "sending",
                    ":failed": "failed",
                    ":now": int(now),
                    ":stale": int(now) - NOTICE_STALE_SECONDS,
                },
            )
        except ConditionFailed:
            return False
        return True

    def finish_notice(
        self, job_id: str, run: str, kind: str, *, error: str | None, detail: str = ""
    ) -> None:
        """The try's outcome on its notice item; a failure also on the job, for
        `darkroom status` (a success clears that kind's error)."""
        key = {names.JOB_ID: job_id, names.SORT_KEY: f"{names.NOTICE_ITEM_PREFIX}{run}#{kind}"}
        self._table.update(
            key,
            "SET #st = :state, detail = :detail, finished_at = :now",
            names={"#st": "state"},
            values={
                ":state": "failed" if error else "sent",
                ":detail": (error or detail)[:MAX_NOTICE_ERROR_CHARS],
                ":now": utc_now(),
            },
        )
        if error:
            self.record_notice_error(job_id, kind, f"{run}: {error}")
        else:
            with suppress(ConditionFailed):
                self._table.update(
                    job_key(job_id),
                    "REMOVE notice_errors.#k",
                    condition="attribute_exists(notice_errors.#k)",
                    names={"#k": kind},
                )

    def record_notice_error(self, job_id: str, kind: str, why: str) -> None:
        """`notice_errors[kind] = why` on the job (shown by `darkroom status`); the
        job's status is not touched. Setting the same text again changes nothing."""
        # A map's key is set only once the map exists: two writes, both idempotent.
        self._table.update(
            job_key(job_id),
            "SET notice_errors = if_not_exists(notice_errors, :empty)",
            values={":empty": {}},
        )
        self._table.update(
            job_key(job_id),
            "SET notice_errors.#k = :why",
            names={"#k": kind},
            values={":why": why[:MAX_NOTICE_ERROR_CHARS]},
        )

    def record_auto_share(self, job_id: str, share_id: str) -> None:
        self._table.update(
            job_key(job_id), "SET auto_share_id = :share", values={":share": share_id}
        )

    def notice_state(self, job_id: str, run: str, kind: str) -> str | None:
        item = self._table.get(
            {names.JOB_ID: job_id, names.SORT_KEY: f"{names.NOTICE_ITEM_PREFIX}{run}#{kind}"}
        )
        return None if item is None else str(item.get("state"))

    def record_shard_archives(
        self, job_id: str, run: str, shard: int, archives: Mapping[str, Archive]
    ) -> None:
        """The ZIPs the shard's worker wrote of the run, on its shard item, for MarkDone:
        only while the item is that run's."""
        with suppress(ConditionFailed):  # a later run registered: its item, not ours
            self._table.update(
                shard_key(job_id, shard),
                "SET archives = :archives",
                condition="run_id = :run",
                values={
                    ":run": run,
                    ":archives": {r: a.model_dump(mode="json") for r, a in archives.items()},
                },
            )

    def record_shard_segments(
        self, job_id: str, run: str, shard: int, segments: Mapping[str, ArchiveSegment]
    ) -> None:
        """The shard's parts of the run's ZIPs, on its shard item, for the packager: only
        while the item is that run's."""
        with suppress(ConditionFailed):  # a later run registered: its item, not ours
            self._table.update(
                shard_key(job_id, shard),
                "SET #parts = :segments",
                condition="run_id = :run",
                names={"#parts": "segments"},  # a DynamoDB reserved word
                values={
                    ":run": run,
                    ":segments": {r: p.model_dump(mode="json") for r, p in segments.items()},
                },
            )

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
    ) -> bool:
        """A file's outcome in this run, written as it finishes (only while this run owns
        the job), and counted on the job in the same transaction.

        Once per (run, file): a repeat finds the attempt no longer pending and counts
        nothing (False)."""
        run = keys.run_id(execution_arn)
        counter = {FileStatus.DONE: "files_done", FileStatus.SKIPPED: "files_skipped"}.get(
            progress.status, "files_failed"
        )
        attempt = progress.to_item()
        sets = ", ".join(f"#a{i} = :a{i}" for i in range(len(attempt)))
        cleared = [f for f in ATTEMPT_FIELDS if f not in attempt]
        now = utc_now()
        try:
            self._table.write_together(
                [
                    Update(
                        file_key(job_id, file_name),
                        f"SET {sets}, updated_at = :now"
                        + (
                            " REMOVE " + ", ".join(f"#c{i}" for i in range(len(cleared)))
                            if cleared
                            else ""
                        ),
                        condition="run_id = :run AND #a0 = :pending",
                        names={
                            **{f"#a{i}": k for i, k in enumerate(attempt)},
                            **{f"#c{i}": k for i, k in enumerate(cleared)},
                        },
                        values={
                            **{f":a{i}": v for i, v in enumerate(attempt.values())},
                            ":run": run,
                            ":pending": FileStatus.PENDING,
                            ":now": now,
                        },
                    ),
                    Update(
                        job_key(job_id),
                        f"ADD {counter} :one SET updated_at = :now",
                        condition="execution_arn = :exec AND #s = :processing",
                        names={"#s": "status"},
                        values={
                            ":one": 1,
                            ":now": now,
                            ":exec": execution_arn,
                            ":processing": JobStatus.PROCESSING,
                        },
                    ),
                ]
            )
        except ConditionFailed as exc:
            record = self._file_item(job_id, file_name)
            current = self.find(job_id)
            owned = (
                current is not None
                and current.execution_arn == execution_arn
                and current.status is JobStatus.PROCESSING
            )
            if (
                owned
                and record is not None
                and record.run_id == run
                and record.status is not FileStatus.PENDING
            ):
                return False
            raise StaleExecution(
                f"job {job_id} is no longer processing {file_name} under {execution_arn}"
            ) from exc
        return True


def _attempt_puts(
    job_id: str,
    run: str,
    files: Sequence[str],
    existing: Mapping[str, FileRecord],
    versions: Mapping[str, str | None],
    shards: Mapping[str, int],
    sidecars: Mapping[str, tuple[str, str | None]],
    numbers: Mapping[str, int] | None = None,
) -> list[Put]:
    """Each listed file's item with a pending attempt in `run`, keeping what the file
    delivers (`existing`, resolved); none for one this run recorded already (RegisterJob
    retried late), and the puts themselves never reset such an attempt."""
    puts = []
    # `files` in name order: each file's number in the job ({seq} of a filename template).
    for seq, file_name in enumerate(files, start=1):
        old = existing.get(file_name)
        if old is not None and old.run_id == run and old.status is not FileStatus.PENDING:
            continue
        record = FileRecord(
            name=file_name,
            original_version=(old.original_version if old else None) or versions.get(file_name),
            run_id=run,
            delivered_run=old.delivered_run if old else None,
            delivered=old.delivered if old else {},
            delivered_at=old.delivered_at if old else None,
            shard=shards.get(file_name, 0),
            # A run of some files numbers each as the whole job does.
            seq=(numbers or {}).get(file_name, seq),
            sidecar=sidecars[file_name][0] if file_name in sidecars else None,
            sidecar_version=sidecars[file_name][1] if file_name in sidecars else None,
        )
        item = {**file_key(job_id, file_name), **record.model_dump(mode="json", exclude_none=True)}
        puts.append(
            Put(
                item,
                condition="attribute_not_exists(run_id) OR run_id <> :run OR #st = :pending",
                names={"#st": "status"},
                values={":run": run, ":pending": FileStatus.PENDING},
            )
        )
    return puts


def _unlisted_puts(
    job_id: str,
    files: Sequence[str],
    existing: Mapping[str, FileRecord],
    delivered: DeliveredRun | None,
) -> list[Put]:
    """The items of files the run does not list (their originals gone) that deliver by
    the job's pointer alone, rewritten with that delivery copied in and their attempt
    as it was: once the run finishes, the pointer no longer names their attempt's run."""
    if delivered is None:
        return []
    listed = set(files)
    return [
        Put(
            {**file_key(job_id, old.name), **old.model_dump(mode="json", exclude_none=True)},
            condition="run_id = :was",
            values={":was": old.run_id},
        )
        for old in existing.values()
        if old.name not in listed and delivers_from(old, delivered.run_id)
    ]
