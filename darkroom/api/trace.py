"""A job's lineage for `darkroom trace`: each delivered rendition and the manifests that
record how it was made, as presigned GETs; on request, each delivered file's RAW original
too, at the version the job registered.

Verifying is left to the caller, which hashes what the URLs serve. A job's renditions
can be tens of GB: hashing them here would outlast API Gateway's 30 s limit on one
answer (and bill Lambda time for every byte), while the caller pays only the transfer,
reads the bytes exactly as a client would, and trusts no answer of ours about them.
Pages are small so each page's URLs outlive the hashing of its files."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from darkroom import keys
from darkroom.api import paging
from darkroom.api.context import current_service
from darkroom.api.errors import BadRequest, NotFound, answers, known_job_id
from darkroom.api.models import TracedFile, TracedOriginal, TracedRendition, TracePage
from darkroom.aws.job_store import JobStore
from darkroom.aws.presign import Presigner
from darkroom.jobs import FileRecord, Job
from darkroom.settings import ApiSettings

# Files per page: a page's renditions are hashed before the next page is asked for,
# within its URLs' lifetime (download_url_expiry_seconds).
DEFAULT_TRACE_FILES = 25
MAX_TRACE_FILES = 100


class TraceOperations:
    settings: ApiSettings
    jobs: JobStore
    presigner: Presigner

    def trace_job(
        self,
        job_id: str,
        file: str | None,
        cursor: str | None,
        limit: int,
        originals: bool = False,
    ) -> TracePage:
        job_id = known_job_id(job_id)
        job = self.jobs.find(job_id)
        if job is None:
            raise NotFound(f"job {job_id} has not run: there is no lineage to trace")
        next_name = None
        if file is not None:
            try:
                name = keys.validate_file_name(file)
            except ValueError as exc:
                raise BadRequest(f"file: {exc}") from exc
            record = self.jobs.file(job_id, name, delivered=job.delivered)
            if record is None:
                raise NotFound(f"job {job_id} has no file {name!r}")
            records = [record]
        else:
            after = paging.decode_cursor(cursor)
            records, next_name = self.jobs.files_page(
                job_id, start_after=after, limit=limit, delivered=job.delivered
            )
        expires_in = self.settings.download_url_expiry_seconds
        runs = {r.delivered_run for r in records if r.delivered_run}
        return TracePage(
            job_id=job_id,
            status=str(job.status),
            manifests={run: self._get(self._manifest_key(job, run)) for run in sorted(runs)},
            files=[self._traced(job_id, r, originals) for r in records],
            expires_in=expires_in,
            next_cursor=None if next_name is None else paging.encode_cursor(next_name),
        )

    def _traced(self, job_id: str, record: FileRecord, originals: bool) -> TracedFile:
        # Only this job's objects, whatever its records say.
        prefix = keys.processed_prefix(job_id)
        renditions = [
            TracedRendition(rendition=rendition, key=output.key, url=self._get(output.key))
            for rendition, output in sorted(record.delivered.items())
            if output.key.startswith(prefix)
        ]
        original = None
        if originals and record.delivered_run:
            key = keys.raw_key(job_id, record.name)
            url = self.presigner.get(
                self.settings.raw_bucket,
                key,
                self.settings.download_url_expiry_seconds,
                version_id=record.original_version,
            )
            original = TracedOriginal(key=key, version_id=record.original_version, url=url)
        return TracedFile(
            name=record.name,
            status=record.status.value,
            delivered_run=record.delivered_run,
            renditions=renditions,
            original=original,
        )

    @staticmethod
    def _manifest_key(job: Job, run: str) -> str:
        if job.delivered and job.delivered.run_id == run and job.delivered.manifest_key:
            return job.delivered.manifest_key
        return keys.run_manifest_key(job.job_id, run)

    def _get(self, key: str) -> str:
        return self.presigner.get(
            self.settings.processed_bucket, key, self.settings.download_url_expiry_seconds
        )


# -- routes ---------------------------------------------------------------------------
router = APIGatewayHttpRouter()
Traces = Annotated[TraceOperations, Depends(current_service)]


@router.get(
    "/jobs/<job_id>/trace",
    operation_id="trace_job",
    tags=["photographer"],
    summary="A page of a job's delivered renditions and the manifests of their runs.",
    description=(
        "For `darkroom trace`: each rendition a file delivers and the manifest of the run "
        "that made it (original's version and SHA-256, resolved recipe, software, each "
        "rendition's SHA-256, size and dimensions), as presigned GETs the caller hashes. "
        "`file` narrows the answer to one file; `originals=true` adds each delivered "
        "file's RAW original at its registered version."
    ),
    responses=answers(200, "A page of the job's lineage.", 400, 404),
)
def trace_job(
    job_id: str,
    traces: Traces,
    file: Annotated[str | None, Query(description="One file's name.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_TRACE_FILES)] = DEFAULT_TRACE_FILES,
    cursor: Annotated[
        str | None, Query(description="The `next_cursor` of the previous page.")
    ] = None,
    originals: Annotated[
        bool, Query(description="Also each delivered file's RAW original, to hash.")
    ] = False,
) -> TracePage:
    return traces.trace_job(job_id, file, cursor, limit, originals)
