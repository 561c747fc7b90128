"""Erasing a job: every version of its originals, its renditions, its shares and every
record of it. The only way an original leaves the RAW bucket unless a deployer configured
an expiry.

Refused while a run may still read or write the job. Otherwise safe to repeat: each step
deletes whatever of the job is still there, and what identifies the job (its own item in
the jobs table) goes last, so a delete that failed midway is found and finished by the
next one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from darkroom import keys, pipeline
from darkroom.aws.executions import ENDED_STATUSES, Executions
from darkroom.aws.job_store import JobStore
from darkroom.aws.multipart import MultipartUploads
from darkroom.aws.objects import Objects
from darkroom.aws.shares import ShareStore
from darkroom.aws.uploads import UploadStatus, UploadStore
from darkroom.errors import JobBusy, JobNotFound
from darkroom.jobs import Job
from darkroom.observability import logger

# The name an erasure claims the job under. A job id never holds a ".", so no execution
# of any job bears it, and none is ever started with it: a reprocess or a console start
# meanwhile finds the job claimed and is refused.
_ERASURE_SUFFIX = ".erase"


@dataclass(frozen=True)
class Erased:
    job_id: str
    object_versions: int  # originals (every version and delete marker) and renditions
    records: int  # items in the jobs table and the upload record
    shares: int


@dataclass(frozen=True)
class Erasure:
    jobs: JobStore
    uploads: UploadStore
    shares: ShareStore
    objects: Objects
    executions: Executions
    raw_bucket: str
    processed_bucket: str
    # Uploads in parts still in progress hold the parts' bytes outside any object version.
    multipart: MultipartUploads | None = None

    def erase(self, job_id: str, *, now: float) -> Erased:
        """JobNotFound if nothing of the job exists; JobBusy while a run may use it."""
        keys.validate_job_id(job_id)
        job = self.jobs.find(job_id)
        upload = self.uploads.get(job_id)
        if job is not None:
            self._claim(job, now)
        elif upload is not None and upload.status is UploadStatus.SUBMITTED:
            self._refuse_if_starting(job_id)
        # The upload first: no new upload URL or submission from here on.
        records = int(self.uploads.delete(job_id))
        share_ids = [share.share_id for share in self.shares.of_job(job_id)]
        for share_id in share_ids:
            self.shares.delete(share_id)
        if self.multipart is not None:
            for key, upload_id in self.multipart.in_progress(
                self.raw_bucket, keys.raw_prefix(job_id)
            ):
                self.multipart.abort(self.raw_bucket, key, upload_id)
        versions = self.objects.delete_versions(self.raw_bucket, keys.raw_prefix(job_id))
        versions += self.objects.delete_versions(
            self.processed_bucket, keys.processed_prefix(job_id)
        )
        records += self.jobs.delete_job(job_id)
        if job is None and upload is None and not (versions or records or share_ids):
            raise JobNotFound(f"job {job_id} not found")
        erased = Erased(job_id, versions, records, len(share_ids))
        logger.info("job erased", extra={"job_id": job_id, **asdict(erased)})
        return erased

    def _claim(self, job: Job, now: float) -> None:
        """Claim the finished job for the erasure, as a reprocess claims it for its
        execution: from then on no run can start on it."""
        if not job.is_terminal:
            raise JobBusy(f"job {job.job_id} is {job.status}; delete it once it has finished")
        claim = self.executions.arn_for(erasure_name(job.job_id))
        if job.claimed_by == claim:
            return  # an earlier delete of this job claimed it and stopped midway
        replacing = None
        if job.claimed_by is not None:
            # A reprocess claimed it: its execution may be about to register the job,
            # unless it ended first or was never started (past the API's grace).
            status = self.executions.status(job.claimed_by)
            age = now - (job.claimed_at or 0)
            starting = status == "MISSING" and age < pipeline.CLAIM_GRACE_SECONDS
            if starting or status not in ENDED_STATUSES:
                name = job.claimed_by.rsplit(":", 1)[-1]
                raise JobBusy(f"job {job.job_id} is being reprocessed (execution {name})")
            replacing = job.claimed_by
        self.jobs.claim(job.job_id, claim, now=now, replacing=replacing)

    def _refuse_if_starting(self, job_id: str) -> None:
        """A submitted job the pipeline has not registered yet: its execution is about to
        read the originals, unless it has already ended."""
        status = self.executions.status(self.executions.arn_for(pipeline.execution_name(job_id)))
        if status == "MISSING" or status not in ENDED_STATUSES:
            raise JobBusy(f"job {job_id} was submitted and is starting; delete it once it ends")


def erasure_name(job_id: str) -> str:
    return keys.validate_job_id(job_id) + _ERASURE_SUFFIX
