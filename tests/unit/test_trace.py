"""Tracing a job: the API's trace pages (presigned GETs of each delivered rendition and of
its run's manifest), each rendition's verdict against the manifest (ok, tampered,
missing, unverified, not recorded), manifests from before lineage was recorded, and what
`darkroom trace` prints and exits with."""

# The `api` fixture comes from test_api; each test names it as a parameter.
# ruff: noqa: F811
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from rich.console import Console

from darkroom import keys, lineage, names, pipeline
from darkroom.aws.objects import Objects
from darkroom.cli import trace_cmd
from darkroom.jobs import FileProgress, FileStatus, JobStatus, Output
from darkroom.lineage import Gone, Unreadable, Verdict
from tests.unit.test_api import REGION, Api, api  # noqa: F401
from tests.unit.test_share_pages import deliver, pages


def _key_of(url: str) -> str:
    path = unquote(urlsplit(url).path)
    assert path.startswith("/" + names.PROCESSED_PREFIX), url
    return path[1:]


def _through_s3(api: Api, broken: frozenset[str] = frozenset()) -> lineage.Fetch:
    """Hash what a presigned URL serves, read from moto; keys in `broken` break off."""

    def fetch(url: str) -> tuple[str, int]:
        key = _key_of(url)
        if key in broken:
            raise Unreadable("connection reset mid-body")
        try:
            body = api.s3.get_object(Bucket=names.PROCESSED_BUCKET, Key=key)["Body"].read()
        except api.s3.exceptions.NoSuchKey as exc:
            raise Gone(key) from exc
        return hashlib.sha256(body).hexdigest(), len(body)

    return fetch


def _manifest_from_s3(api: Api) -> Any:
    def read(url: str) -> Mapping[str, Any]:
        body = api.s3.get_object(Bucket=names.PROCESSED_BUCKET, Key=_key_of(url))["Body"]
        return dict(json.loads(body.read()))

    return read


def _trace(api: Api, job_id: str, broken: frozenset[str] = frozenset(), **query: str):
    found = pages(api, f"/jobs/{job_id}/trace", **query)
    return lineage.trace_job(found, _manifest_from_s3(api), _through_s3(api, broken))


# -- the API's trace pages --------------------------------------------------------------
def test_a_trace_page_presigns_each_delivered_rendition_and_its_runs_manifest(api: Api) -> None:
    run = deliver(api, "t1", ["A.dng", "B.dng", "C.dng"], failed=frozenset({"B.dng"}))
    (page,) = pages(api, "/jobs/t1/trace")
    assert page["status"] == "DONE_WITH_ERRORS" and page["expires_in"] == 900
    assert {r: _key_of(u) for r, u in page["manifests"].items()} == {
        run: keys.run_manifest_key("t1", run)
    }
    a, b, c = page["files"]
    assert (a["name"], a["delivered_run"], b["delivered_run"]) == ("A.dng", run, None)
    assert [(r["rendition"], _key_of(r["url"])) for r in a["renditions"]] == [
        ("thumb", keys.rendition_key("t1", run, "thumb", "A.dng", "jpg")),
        ("web", keys.rendition_key("t1", run, "web", "A.dng", "jpg")),
    ]
    assert b["renditions"] == [] and b["status"] == "FAILED"
    assert len(c["renditions"]) == 2


def test_trace_pages_follow_the_cursor_and_one_file_can_be_asked_for(api: Api) -> None:
    deliver(api, "t2", ["A.dng", "B.dng", "C.dng"])
    found = pages(api, "/jobs/t2/trace", limit="2")
    assert [[f["name"] for f in p["files"]] for p in found] == [["A.dng", "B.dng"], ["C.dng"]]
    (one,) = pages(api, "/jobs/t2/trace", file="B.dng")
    assert [f["name"] for f in one["files"]] == ["B.dng"]


def test_tracing_an_unknown_file_or_a_job_that_never_ran_is_not_found(api: Api) -> None:
    deliver(api, "t3", ["A.dng"])
    status, _, doc = api.call("GET", "/jobs/t3/trace", query={"file": "Z.dng"})
    assert status == 404 and "Z.dng" in doc["message"]
    status, _, doc = api.call("GET", "/jobs/never/trace")
    assert status == 404 and "has not run" in doc["message"]
    status, _, _ = api.call("GET", "/jobs/t3/trace", query={"file": "../x"})
    assert status == 400


# -- verdicts -------------------------------------------------------------------------
def test_every_untouched_rendition_verifies_against_its_manifest(api: Api) -> None:
    run = deliver(api, "t4", ["A.dng", "B.dng"])
    traced = _trace(api, "t4")
    assert traced.counts["ok"] == 4 and not traced.failed and not traced.unverified
    assert trace_cmd.exit_status(traced) == 0
    assert set(traced.runs) == {run}
    assert traced.runs[run]["recipe_resolved"]["renditions"][0]["name"] == "web"


def test_a_rendition_overwritten_in_s3_is_reported_tampered(api: Api) -> None:
    run = deliver(api, "t5", ["A.dng", "B.dng"])
    key = keys.rendition_key("t5", run, "web", "B.dng", "jpg")
    # The same size, other bytes: only the digest can tell.
    size = api.s3.head_object(Bucket=names.PROCESSED_BUCKET, Key=key)["ContentLength"]
    api.s3.put_object(Bucket=names.PROCESSED_BUCKET, Key=key, Body=b"x" * size)
    traced = _trace(api, "t5")
    verdicts = {(f.name, r.rendition): r for f in traced.files for r in f.renditions}
    assert verdicts["B.dng", "web"].verdict is Verdict.TAMPERED
    assert verdicts["B.dng", "web"].reason == "its bytes are not those recorded"
    assert traced.counts == {**traced.counts, "ok": 3, "tampered": 1}
    assert trace_cmd.exit_status(traced) == trace_cmd.TAMPERED_EXIT


def test_a_rendition_whose_object_is_gone_is_reported_missing(api: Api) -> None:
    run = deliver(api, "t6", ["A.dng"])
    key = keys.rendition_key("t6", run, "thumb", "A.dng", "jpg")
    api.s3.delete_object(Bucket=names.PROCESSED_BUCKET, Key=key)
    traced = _trace(api, "t6")
    (thumb,) = [r for r in traced.files[0].renditions if r.rendition == "thumb"]
    assert (thumb.verdict, thumb.reason) == (Verdict.MISSING, "the object is gone")
    assert trace_cmd.exit_status(traced) == trace_cmd.TAMPERED_EXIT


def test_a_get_failing_midway_leaves_that_file_unverified_neither_ok_nor_tampered(
    api: Api,
) -> None:
    run = deliver(api, "t7", ["A.dng", "B.dng"])
    broken = frozenset({keys.rendition_key("t7", run, "web", "A.dng", "jpg")})
    traced = _trace(api, "t7", broken)
    a, b = traced.files
    assert [r.verdict for r in a.renditions] == [Verdict.OK, Verdict.UNVERIFIED]
    assert "connection reset" in (a.renditions[1].reason or "")
    assert all(r.verdict is Verdict.OK for r in b.renditions)
    assert not traced.failed and trace_cmd.exit_status(traced) == trace_cmd.UNVERIFIED_EXIT


def test_an_unreadable_manifest_leaves_its_files_unverified(api: Api) -> None:
    run = deliver(api, "t8", ["A.dng"])
    api.s3.delete_object(Bucket=names.PROCESSED_BUCKET, Key=keys.run_manifest_key("t8", run))
    found = pages(api, "/jobs/t8/trace")

    def gone(url: str) -> Mapping[str, Any]:
        raise Gone(url)

    traced = lineage.trace_job(found, gone, _through_s3(api))
    assert traced.runs[run] == {"problem": "its run's manifest is gone"}
    assert {r.verdict for r in traced.files[0].renditions} == {Verdict.UNVERIFIED}


def test_a_file_a_reprocess_did_not_deliver_is_traced_to_the_run_that_did(api: Api) -> None:
    first = deliver(api, "t12", ["A.dng", "B.dng"])
    jobs = api.service.jobs
    arn = f"arn:aws:states:{REGION}:123456789012:execution:{names.state_machine_name()}:t12-again"
    jobs.register(job_id="t12", execution_arn=arn, files=["A.dng", "B.dng"], name="s", recipe=None)
    jobs.transition("t12", arn, JobStatus.STARTING)
    jobs.transition("t12", arn, JobStatus.PROCESSING)
    again = keys.run_id(arn)
    key = keys.rendition_key("t12", again, "web", "A.dng", "jpg")
    api.s3.put_object(Bucket=names.PROCESSED_BUCKET, Key=key, Body=b"again")
    digest = hashlib.sha256(b"again").hexdigest()
    web = Output(key=key, width=2, height=1, bytes=5, sha256=digest)
    jobs.record_file(
        "t12", arn, "A.dng", FileProgress(status=FileStatus.DONE, outputs={"web": web})
    )
    failed = FileProgress(status=FileStatus.FAILED, error_code="x", error="B")
    jobs.record_file("t12", arn, "B.dng", failed)
    objects = Objects(api.s3)
    pipeline.mark_done(
        "t12", arn, None, jobs=jobs, objects=objects, processed_bucket=names.PROCESSED_BUCKET
    )
    traced = _trace(api, "t12")
    assert set(traced.runs) == {first, again}
    assert {f.name: f.run for f in traced.files} == {"A.dng": again, "B.dng": first}
    assert [r.rendition for r in traced.files[0].renditions] == ["web"]
    assert traced.counts["ok"] == 3 and not traced.failed


# -- manifests from before lineage ------------------------------------------------------
OLD_ENTRY = {
    "name": "A.dng",
    "status": "DONE",
    "shard": 0,
    "develop_seconds": 1.2,
    "outputs": {"web": {"key": "processed/j/r/web/A.jpg", "width": 10, "height": 5, "bytes": 3}},
}
OLD_MANIFEST = {"job_id": "j", "run_id": "r", "recipe": None, "files": [OLD_ENTRY]}
TRACED = {
    "name": "A.dng",
    "status": "DONE",
    "delivered_run": "r",
    "renditions": [{"rendition": "web", "key": "processed/j/r/web/A.jpg", "url": "u"}],
}


def test_an_older_manifest_reads_as_not_recorded_never_as_a_crash() -> None:
    traced = lineage.trace_job(
        [{"job_id": "j", "status": "DONE", "manifests": {"r": "m"}, "files": [TRACED]}],
        lambda url: OLD_MANIFEST,
        lambda url: ("f" * 64, 3),
    )
    (file,) = traced.files
    assert (file.original_sha256, file.recipe_sha256, file.software) == (None, None, {})
    (web,) = file.renditions
    # Its size still matches; with no digest recorded there is nothing more to check.
    assert (web.verdict, web.width, web.height) == (Verdict.NOT_RECORDED, 10, 5)
    assert trace_cmd.exit_status(traced) == 0
    text = _printed(traced, detailed=True)
    assert "not recorded" in text and "A.dng" in text
    assert json.loads(json.dumps(traced.as_json()))["files"][0]["software"] == {}


def test_an_older_manifests_rendition_of_another_size_is_still_tampered() -> None:
    traced = lineage.trace_job(
        [{"job_id": "j", "status": "DONE", "manifests": {"r": "m"}, "files": [TRACED]}],
        lambda url: OLD_MANIFEST,
        lambda url: ("f" * 64, 4),
    )
    (web,) = traced.files[0].renditions
    assert (web.verdict, web.reason) == (Verdict.TAMPERED, "4 bytes served, 3 recorded")


# -- what `darkroom trace` prints ---------------------------------------------------------
def _printed(traced: lineage.Trace, *, detailed: bool = False) -> str:
    console = Console(record=True, width=250)
    console.print(trace_cmd.render(traced, detailed=detailed))
    return console.export_text()


def test_the_table_shows_each_renditions_lineage_and_verdict(api: Api) -> None:
    run = deliver(api, "t9", ["A.dng"])
    key = keys.rendition_key("t9", run, "web", "A.dng", "jpg")
    api.s3.put_object(Bucket=names.PROCESSED_BUCKET, Key=key, Body=b"changed")
    traced = _trace(api, "t9")
    text = _printed(traced)
    assert "job t9: DONE" in text and f"run {run}" in text
    assert "thumb" in text and "ok" in text
    assert "tampered" in text
    assert "2 renditions: 1 ok, 1 tampered" in text


def test_one_files_trace_shows_every_digest_whole(api: Api) -> None:
    deliver(api, "t10", ["A.dng", "B.dng"])
    traced = _trace(api, "t10", file="A.dng")
    assert [f.name for f in traced.files] == ["A.dng"]
    text = _printed(traced, detailed=True)
    digest = traced.files[0].renditions[0].sha256
    assert digest and digest in text
    assert "original sha256" in text


def test_the_json_is_complete(api: Api) -> None:
    run = deliver(api, "t11", ["A.dng"])
    document = json.loads(json.dumps(_trace(api, "t11").as_json()))
    assert document["runs"][run]["recipe_sha256"]
    (file,) = document["files"]
    assert set(file) >= {
        "name",
        "run",
        "original_version",
        "original_sha256",
        "recipe_sha256",
        "recipe",
        "software",
        "timings",
        "renditions",
    }
    assert {r["verdict"] for r in file["renditions"]} == {"ok"}
    assert set(file["renditions"][0]) >= {"sha256", "bytes", "width", "height", "served_sha256"}


# -- the RAW originals (--originals) -------------------------------------------------------
def test_originals_are_presigned_only_when_asked_and_only_for_delivered_files(api: Api) -> None:
    deliver(api, "t12", ["A.dng", "B.dng"], failed=frozenset({"B.dng"}))
    (plain,) = pages(api, "/jobs/t12/trace")
    assert all("original" not in f for f in plain["files"])
    (page,) = pages(api, "/jobs/t12/trace", originals="true")
    a, b = page["files"]
    assert "original" not in b, "nothing of B.dng is delivered: nothing to trace it to"
    assert a["original"]["key"] == keys.raw_key("t12", "A.dng")
    url = urlsplit(a["original"]["url"])
    assert unquote(url.path) == f"/{keys.raw_key('t12', 'A.dng')}"
    assert url.netloc.startswith(names.RAW_BUCKET)


DEVELOPED = hashlib.sha256(b"the RAW as developed").hexdigest()
ENTRY = {**OLD_ENTRY, "original_version": "v1", "original_sha256": DEVELOPED}
MANIFEST = {**OLD_MANIFEST, "files": [ENTRY]}


def _trace_original(original: dict[str, Any], fetch: lineage.Fetch) -> lineage.RenditionCheck:
    page = {
        "job_id": "j",
        "status": "DONE",
        "manifests": {"r": "m"},
        "files": [{**TRACED, "original": {"key": "raw/j/A.dng", "url": "o", **original}}],
    }
    traced = lineage.trace_job([page], lambda url: MANIFEST, fetch)
    check = traced.files[0].original
    assert check is not None
    return check


def test_an_original_still_as_developed_is_ok_and_one_changed_or_gone_fails_the_trace() -> None:
    def serving(body: bytes) -> lineage.Fetch:
        def fetch(url: str) -> tuple[str, int]:
            if url == "o":
                return hashlib.sha256(body).hexdigest(), len(body)
            return "f" * 64, 3  # the web rendition (no digest in this manifest)

        return fetch

    ok = _trace_original({"version_id": "v1"}, serving(b"the RAW as developed"))
    assert (ok.verdict, ok.sha256, ok.served_bytes) == (Verdict.OK, DEVELOPED, 20)
    changed = _trace_original({"version_id": "v1"}, serving(b"other bytes"))
    assert (changed.verdict, changed.reason) == (
        Verdict.TAMPERED,
        "its bytes are not those the run developed",
    )
    # Another version registered since: not what the delivered renditions were made from.
    moved = _trace_original({"version_id": "v2"}, serving(b"the RAW as developed"))
    assert moved.verdict is Verdict.TAMPERED
    assert moved.reason == "the run developed version v1; the job's original is now version v2"

    def gone(url: str) -> tuple[str, int]:
        raise Gone(url)

    assert _trace_original({"version_id": "v1"}, gone).verdict is Verdict.MISSING

    def archived(url: str) -> tuple[str, int]:
        raise Unreadable("403 InvalidObjectState: the object is archived")

    unread = _trace_original({"version_id": "v1"}, archived)
    assert unread.verdict is Verdict.UNVERIFIED and "archived" in (unread.reason or "")


def test_the_table_puts_the_original_first_and_counts_it_apart() -> None:
    page = {
        "job_id": "j",
        "status": "DONE",
        "manifests": {"r": "m"},
        "files": [{**TRACED, "original": {"key": "raw/j/A.dng", "url": "o", "version_id": "v1"}}],
    }
    traced = lineage.trace_job(
        [page],
        lambda url: MANIFEST,
        lambda url: (DEVELOPED, 20) if url == "o" else ("f" * 64, 3),
    )
    assert trace_cmd.exit_status(traced) == 0
    text = _printed(traced)
    rows = [line for line in text.splitlines() if "original" in line or " web " in line]
    assert "original" in rows[1] and "web" in rows[2], rows
    assert "1 rendition and 1 original: 1 ok, 1 not recorded" in text
    document = json.loads(json.dumps(traced.as_json()))
    assert document["files"][0]["original"]["verdict"] == "ok"
