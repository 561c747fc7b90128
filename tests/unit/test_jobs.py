import itertools

import pytest
from pydantic import ValidationError

from darkroom.aws.ddb_codec import from_item, to_item
from darkroom.jobs import (
    MAX_ERROR_CHARS,
    MAX_SOFTWARE,
    MAX_VERSION_CHARS,
    TERMINAL,
    DeliveredRun,
    FileProgress,
    FileRecord,
    FileStatus,
    Job,
    JobStatus,
    Output,
    can_transition,
    finished_status,
    sources_of,
    stable_error_name,
)


def test_a_job_runs_registered_starting_processing_then_terminal() -> None:
    path = [JobStatus.REGISTERED, JobStatus.STARTING, JobStatus.PROCESSING, JobStatus.DONE]
    assert can_transition(None, path[0])
    for current, target in itertools.pairwise(path):
        assert can_transition(current, target)


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
def test_reprocessing_is_allowed_from_terminal_statuses_only(terminal: JobStatus) -> None:
    assert can_transition(terminal, JobStatus.REGISTERED)
    assert sources_of(JobStatus.REGISTERED) == TERMINAL


@pytest.mark.parametrize("live", [JobStatus.REGISTERED, JobStatus.STARTING, JobStatus.PROCESSING])
def test_a_live_job_cannot_be_registered_again(live: JobStatus) -> None:
    assert not can_transition(live, JobStatus.REGISTERED)


def test_every_live_status_can_fail_but_done_cannot() -> None:
    assert sources_of(JobStatus.FAILED) == {
        JobStatus.REGISTERED,
        JobStatus.STARTING,
        JobStatus.PROCESSING,
    }
    assert not can_transition(JobStatus.DONE, JobStatus.FAILED)


def test_some_failed_files_give_the_distinct_done_with_errors_status() -> None:
    assert finished_status(3, 0) is JobStatus.DONE
    assert finished_status(2, 1) is JobStatus.DONE_WITH_ERRORS


def test_a_file_record_holds_its_attempt_and_what_it_delivers() -> None:
    web = Output(key="processed/j/r2/web/a.jpg", width=2048, height=1365)
    record = FileRecord(
        name="a.dng",
        run_id="r2",
        status=FileStatus.FAILED,
        error_code="blank_frame",
        error="a.dng: empty",
        delivered_run="r1",
        delivered={"web": Output(key="processed/j/r1/web/a.jpg")},
    )
    assert record.progress == FileProgress(
        status=FileStatus.FAILED, error_code="blank_frame", error="a.dng: empty"
    )
    item = from_item(to_item({"job_id": "j", "sk": "FILE#a.dng", **record.model_dump()}))
    assert FileRecord.model_validate(item) == record
    assert FileProgress(status=FileStatus.DONE, outputs={"web": web}).to_item() == {
        "status": "DONE",
        "outputs": {"web": {"key": web.key, "width": 2048, "height": 1365}},
    }


def test_a_job_has_a_delivery_once_a_run_delivered_a_file() -> None:
    job = Job(job_id="j", status=JobStatus.FAILED)
    assert not job.has_delivery
    delivered = DeliveredRun(run_id="r1", files_delivered=2)
    assert job.model_copy(update={"delivered": delivered}).has_delivery


def test_a_job_round_trips_through_its_item_with_keys_it_does_not_model() -> None:
    job = Job(
        job_id="j",
        status=JobStatus.PROCESSING,
        files_total=2,
        files_done=1,
        run_id="j",
        recipe={"exposure": {"compensation_ev": 0.5}},
        executions=("arn:1",),
        attempt=2,
        delivered=DeliveredRun(run_id="j", files_delivered=1),
        created_at="2026-01-01T00:00:00.000Z",
    )
    item = from_item(to_item(job.model_dump(mode="json", exclude_none=True)))
    item.update({"sk": "JOB", "entity": "JOB", "created_key": job.created_key})
    assert Job.model_validate(item) == job
    assert job.created_key == "2026-01-01T00:00:00.000Z#j"


def test_an_attempt_stores_only_what_it_has_and_a_short_error() -> None:
    assert FileProgress().to_item() == {"status": "PENDING"}
    failed = FileProgress(status=FileStatus.FAILED, error_code="blank_frame", error="b: empty")
    assert failed.to_item() == {
        "status": "FAILED",
        "error_code": "blank_frame",
        "error": "b: empty",
    }
    long = FileProgress(status=FileStatus.FAILED, error_code="x", error="e" * 10_000)
    assert len(long.to_item()["error"]) == MAX_ERROR_CHARS


def test_an_attempts_lineage_round_trips_through_its_item_and_stays_small() -> None:
    done = FileProgress(
        status=FileStatus.DONE,
        outputs={"web": Output(key="processed/j/r/web/a.jpg", sha256="a" * 64)},
        original_sha256="b" * 64,
        recipe_sha256="c" * 64,
        software={"darkroom": "0.1.0", "libraw": "0.22.2"},
        timings={"download": 0.25, "upload": 0.125},
    )
    item = from_item(to_item({"job_id": "j", "sk": "FILE#a.dng", **done.to_item()}))
    record = FileRecord.model_validate({"name": "a.dng", **item})
    assert record.progress == done
    # Versions come from installed packages, not users; still, an item stays bounded.
    odd = FileProgress(software={f"lib{i}": "9" * 500 for i in range(20)}).to_item()
    assert len(odd["software"]) == MAX_SOFTWARE
    assert {len(v) for v in odd["software"].values()} == {MAX_VERSION_CHARS}
    # Nothing recorded, nothing stored: an item from before lineage reads the same.
    assert set(FileProgress().to_item()) == {"status"}


def test_records_are_immutable() -> None:
    with pytest.raises(ValidationError):
        Job(job_id="j", status=JobStatus.DONE).status = JobStatus.FAILED  # type: ignore[misc]


def test_step_functions_error_names_become_stable_darkroom_names() -> None:
    assert stable_error_name("States.Timeout") == "WorkerTimedOut"
    assert stable_error_name("States.HeartbeatTimeout") == "WorkerLost"
    assert stable_error_name("States.Runtime") == "PipelineRuntime"
    assert stable_error_name("InvalidJob") == "InvalidJob"
    assert stable_error_name(None) == "JobFailed"
    assert not any(
        stable_error_name(e).startswith("States.")
        for e in ("States.ALL", "States.TaskFailed", "States.Permissions", "States.X.Y")
    )
