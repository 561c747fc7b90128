"""The job panel the CLI draws: per-file status and what each file delivers."""

from __future__ import annotations

import io

from rich.console import Console

from darkroom.api.models import JobView
from darkroom.cli.view import panel
from darkroom.jobs import DeliveredRun, FileRecord, FileStatus, Job, JobStatus, Output


def _text(view: dict) -> str:
    console = Console(record=True, width=160, file=io.StringIO())
    console.print(panel(view, view["job_id"]))
    return console.export_text()


def test_a_failed_reprocess_shows_its_attempt_and_what_is_still_delivered() -> None:
    job = Job(
        job_id="j1",
        status=JobStatus.FAILED,
        files_total=2,
        files_done=1,
        run_id="j1.rp-2",
        attempt=2,
        error="WorkerLost",
        cause="no heartbeat",
        delivered=DeliveredRun(
            run_id="j1", finished_at="2026-01-01T00:00:00.000Z", files_delivered=2
        ),
    )
    web = {"web": Output(key="processed/j1/j1/web/A.jpg")}
    files = [
        FileRecord(
            name="A.dng",
            run_id="j1.rp-2",
            status=FileStatus.DONE,
            outputs={"web": Output(key="processed/j1/j1.rp-2/web/A.jpg")},
            delivered_run="j1",
            delivered=web,
        ),
        FileRecord(name="B.dng", run_id="j1.rp-2", delivered_run="j1", delivered=web),
    ]
    text = _text(JobView.of_job(job, files).model_dump(mode="json"))
    assert "WorkerLost: no heartbeat" in text
    assert "j1.rp-2 (attempt 2)" in text
    assert "2 of 2 files, last from run j1" in text
    rows = {
        next(word for word in line.split() if word.endswith(".dng")): line
        for line in text.splitlines()
        if ".dng" in line
    }
    # Each file: its attempt in the failed run, and the first run's renditions delivered.
    assert "DONE" in rows["A.dng"] and "run j1 " in rows["A.dng"]
    assert "PENDING" in rows["B.dng"] and "run j1 " in rows["B.dng"]


def test_a_first_run_shows_nothing_delivered_yet() -> None:
    job = Job(job_id="j2", status=JobStatus.PROCESSING, files_total=1, run_id="j2", attempt=1)
    files = [FileRecord(name="A.dng", run_id="j2")]
    text = _text(JobView.of_job(job, files).model_dump(mode="json"))
    assert "nothing yet" in text and "PENDING" in text


def test_a_job_with_more_files_than_its_first_page_says_how_to_see_them_all() -> None:
    job = Job(job_id="j3", status=JobStatus.PROCESSING, files_total=250, run_id="j3")
    first = [FileRecord(name=f"F{n:03d}.dng", run_id="j3") for n in range(100)]
    view = JobView.of_job(job, first, files_next_cursor="RjA5OS5kbmc").model_dump(mode="json")
    text = _text(view)
    assert "F099.dng" in text
    assert "... and 150 more (status --all lists every file)" in text


def test_status_of_every_file_walks_the_pages_of_the_jobs_files() -> None:
    from darkroom.cli.studio_client import StudioClient

    class Pages:
        def __init__(self) -> None:
            self.asked: list[tuple[str, dict[str, object] | None]] = []

        def call(self, method: str, path: str, query: dict[str, object] | None = None) -> dict:
            self.asked.append((path, query))
            if path == "/jobs/j4":
                return {
                    "job_id": "j4",
                    "files": {"A.dng": {"status": "DONE"}},
                    "files_next_cursor": "c1",
                }
            cursor = (query or {})["cursor"]
            if cursor == "c1":
                return {"files": {"B.dng": {"status": "DONE"}}, "next_cursor": "c2"}
            return {"files": {"C.dng": {"status": "FAILED"}}, "next_cursor": None}

    api = Pages()
    client = StudioClient(api)  # type: ignore[arg-type]
    assert client.job("j4") == {
        "job_id": "j4",
        "files": {"A.dng": {"status": "DONE"}},
        "files_next_cursor": "c1",
    }
    whole = client.job("j4", every_file=True)
    assert list(whole["files"]) == ["A.dng", "B.dng", "C.dng"]
    assert "files_next_cursor" not in whole
    assert [q["cursor"] for p, q in api.asked if p == "/jobs/j4/files" and q] == ["c1", "c2"]


def test_a_file_rejected_in_its_sidecar_shows_as_skipped_not_failed() -> None:
    job = Job(
        job_id="j3",
        status=JobStatus.DONE,
        files_total=2,
        files_done=1,
        files_skipped=1,
        run_id="j3",
        attempt=1,
    )
    files = [
        FileRecord(name="A.dng", run_id="j3", status=FileStatus.DONE),
        FileRecord(name="B.dng", run_id="j3", status=FileStatus.SKIPPED),
    ]
    text = _text(JobView.of_job(job, files).model_dump(mode="json"))
    assert "1 done, 0 failed, 1 skipped (rejected), 2 total" in text
    assert "SKIPPED" in next(line for line in text.splitlines() if "B.dng" in line)


def _listing(width: int, *jobs: Job) -> str:
    from darkroom.cli.view import jobs_table

    console = Console(record=True, width=width, file=io.StringIO())
    console.print(
        jobs_table([JobView.of_job(job).summary().model_dump(mode="json") for job in jobs])
    )
    return console.export_text()


def test_the_jobs_table_never_shortens_a_job_id_however_narrow_the_terminal() -> None:
    jobs = [
        Job(
            job_id="20260101-120000-wedding-smith-jones-" + str(n),
            name="Smith & Jones wedding, the whole day [ceremony, party]",
            status=JobStatus.DONE_WITH_ERRORS,
            files_total=1200,
            files_done=1180,
            files_failed=20,
            created_at="2026-01-01T12:00:00.000Z",
        )
        for n in range(2)
    ]
    for width in (80, 100):
        text = _listing(width, *jobs)
        for job in jobs:
            assert job.job_id in text, (width, text)


def test_a_jobs_name_with_square_brackets_is_shown_as_written() -> None:
    job = Job(job_id="j5", name="[red]shoot[/red]", status=JobStatus.DONE)
    assert "[red]shoot[/red]" in _listing(160, job)


def test_a_job_shows_its_current_runs_recipe() -> None:
    from darkroom.recipes import parse_recipe

    recipe = parse_recipe(
        {
            "renditions": [{"name": "web", "long_edge": 1600, "quality": 80}],
            "exposure": {"mode": "manual", "compensation_ev": 0.5},
            "lens": "off",
        }
    ).model_dump(mode="json")
    job = Job(job_id="j6", status=JobStatus.DONE, recipe=recipe, run_id="j6", attempt=1)
    view = JobView.of_job(job, []).model_dump(mode="json")
    assert view["recipe"] == recipe  # --json: the whole recipe
    text = " ".join(_text(view).split())
    assert "recipe web 1600px jpeg q80; white balance camera; exposure manual +0.5 EV" in text
    assert "lens off" in text


def test_file_names_and_errors_with_square_brackets_are_shown_as_written() -> None:
    job = Job(job_id="j7", status=JobStatus.DONE_WITH_ERRORS, files_total=1, run_id="j7")
    files = [
        FileRecord(
            name="IMG_[red]_0001.nef",
            run_id="j7",
            status=FileStatus.FAILED,
            error="decode_failed: channels [red, green, blue] unreadable",
        )
    ]
    text = _text(JobView.of_job(job, files).model_dump(mode="json"))
    assert "IMG_[red]_0001.nef" in text
    assert "[red, green, blue]" in text
