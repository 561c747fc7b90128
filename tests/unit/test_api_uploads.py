"""Uploads through the API core (moto in-process): large files in presigned parts,
completed, resumed and aborted; answers that carry a bounded number of URLs; a job of
5,000 files."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from darkroom import keys, names
from darkroom.aws.ddb_codec import to_item
from tests.unit import test_api
from tests.unit.test_api import Api, _create

api = test_api.api  # the API core over moto, as test_api.py's tests have it

MIB = 1024**2
SIZE = 5 * MIB + 10  # two parts of S3's smallest size: 5 MiB and 10 bytes


@pytest.fixture
def parts_api(api: Api) -> Api:
    api.service.settings = api.service.settings.model_copy(
        update={
            "max_file_bytes": 64 * MIB,
            "max_job_bytes": 256 * MIB,
            "multipart_threshold_bytes": 5 * MIB,
            "multipart_part_bytes": 5 * MIB,
        }
    )
    return api


def _plan(doc: dict[str, Any], name: str) -> dict[str, Any]:
    upload = next(u for u in doc["uploads"] if u["name"] == name)
    assert upload["method"] == "MULTIPART" and "url" not in upload
    return dict(upload["multipart"])


def _put_part(api: Api, job_id: str, name: str, plan: dict[str, Any], number: int) -> str:
    """What the client's PUT to the part's URL does (moto in-process has no HTTP)."""
    offset = (number - 1) * plan["part_size"]
    size = min(plan["part_size"], SIZE - offset)
    answer = api.s3.upload_part(
        Bucket=names.RAW_BUCKET,
        Key=keys.raw_key(job_id, name),
        UploadId=plan["upload_id"],
        PartNumber=number,
        Body=b"p" * size,
    )
    return str(answer["ETag"])


def _in_progress(api: Api, job_id: str) -> list[str]:
    page = api.s3.list_multipart_uploads(Bucket=names.RAW_BUCKET, Prefix=keys.raw_prefix(job_id))
    return [u["UploadId"] for u in page.get("Uploads", [])]


def _complete(api: Api, job_id: str, name: str, parts: dict[int, str]) -> tuple[int, Any]:
    status, _, doc = api.call(
        "POST",
        f"/jobs/{job_id}/files/{quote(name)}/complete",
        {"parts": [{"part_number": n, "etag": e} for n, e in sorted(parts.items())]},
    )
    return status, doc


def test_a_file_over_the_threshold_gets_a_multipart_plan_with_signed_part_urls(
    parts_api: Api,
) -> None:
    doc = _create(parts_api, {"small.dng": 100, "big.dng": SIZE})
    assert next(u for u in doc["uploads"] if u["name"] == "small.dng")["method"] == "PUT"
    plan = _plan(doc, "big.dng")
    assert (plan["part_size"], plan["parts_total"], plan["all_parts"]) == (5 * MIB, 2, True)
    assert plan["uploaded"] == []
    assert [(p["part_number"], p["size"]) for p in plan["parts"]] == [(1, 5 * MIB), (2, 10)]
    for part in plan["parts"]:
        query = {k: v[0] for k, v in parse_qs(urlsplit(part["url"]).query).items()}
        assert query["uploadId"] == plan["upload_id"]
        assert query["partNumber"] == str(part["part_number"])
        # Signed for its length: S3 refuses a part of another size.
        assert "content-length" in query["X-Amz-SignedHeaders"].split(";")
        assert part["headers"] == {"Content-Length": str(part["size"])}
    assert _in_progress(parts_api, doc["job_id"]) == [plan["upload_id"]]
    stored = parts_api.service.uploads.get(doc["job_id"])
    assert stored is not None
    big = next(f for f in stored.files if f.name == "big.dng")
    assert (big.upload_id, big.part_size) == (plan["upload_id"], 5 * MIB)


def test_resuming_keeps_the_upload_and_hands_out_only_the_missing_parts(parts_api: Api) -> None:
    doc = _create(parts_api, {"big.dng": SIZE})
    job_id, plan = doc["job_id"], _plan(doc, "big.dng")
    first = _put_part(parts_api, job_id, "big.dng", plan, 1)
    status, _, resumed = parts_api.call("POST", f"/jobs/{job_id}/uploads")
    assert status == 200
    again = _plan(resumed, "big.dng")
    assert again["upload_id"] == plan["upload_id"]
    assert [p["part_number"] for p in again["parts"]] == [2]
    assert again["uploaded"] == [{"part_number": 1, "etag": first, "size": 5 * MIB}]
    assert resumed["uploaded"] == [] and resumed["more"] is False
    # The client completes with the ETags it kept and those the resume listed.
    second = _put_part(parts_api, job_id, "big.dng", again, 2)
    status, done = _complete(parts_api, job_id, "big.dng", {1: first, 2: second})
    assert (status, done["status"], done["size"]) == (200, "UPLOADED", SIZE)
    head = parts_api.s3.head_object(Bucket=names.RAW_BUCKET, Key=keys.raw_key(job_id, "big.dng"))
    assert head["ContentLength"] == SIZE
    assert _in_progress(parts_api, job_id) == []
    # Completing again (an answer lost) is the same answer; resuming lists it uploaded.
    assert _complete(parts_api, job_id, "big.dng", {1: first, 2: second})[0] == 200
    resumed = parts_api.call("POST", f"/jobs/{job_id}/uploads")[2]
    assert (resumed["uploads"], resumed["uploaded"]) == ([], ["big.dng"])
    assert parts_api.call("POST", f"/jobs/{job_id}/submit")[0] == 202


def test_a_wrong_etag_is_400_and_the_upload_stays_resumable(parts_api: Api) -> None:
    doc = _create(parts_api, {"big.dng": SIZE})
    job_id, plan = doc["job_id"], _plan(doc, "big.dng")
    etags = {n: _put_part(parts_api, job_id, "big.dng", plan, n) for n in (1, 2)}
    status, error = _complete(parts_api, job_id, "big.dng", {**etags, 2: '"0123abcd"'})
    assert status == 400 and error["mismatched_parts"] == [2], error
    assert "big.dng" in error["message"]
    assert _in_progress(parts_api, job_id) == [plan["upload_id"]]
    resumed = _plan(parts_api.call("POST", f"/jobs/{job_id}/uploads")[2], "big.dng")
    assert (resumed["upload_id"], resumed["parts"]) == (plan["upload_id"], [])
    assert {p["part_number"]: p["etag"] for p in resumed["uploaded"]} == etags
    assert _complete(parts_api, job_id, "big.dng", etags)[0] == 200


def test_completing_before_every_part_arrived_is_409_naming_the_missing_ones(
    parts_api: Api,
) -> None:
    doc = _create(parts_api, {"big.dng": SIZE})
    job_id, plan = doc["job_id"], _plan(doc, "big.dng")
    first = _put_part(parts_api, job_id, "big.dng", plan, 1)
    status, error = _complete(parts_api, job_id, "big.dng", {1: first, 2: '"x"'})
    assert (status, error["missing_parts"]) == (409, [2])
    status, error = _complete(parts_api, job_id, "big.dng", {1: first})
    assert status == 400 and "parts 1 to 2" in error["message"]
    assert _in_progress(parts_api, job_id) == [plan["upload_id"]]


def test_submitting_with_an_upload_in_parts_not_completed_is_refused_naming_it(
    parts_api: Api,
) -> None:
    doc = _create(parts_api, {"a.dng": 10, "big.dng": SIZE})
    job_id, plan = doc["job_id"], _plan(doc, "big.dng")
    parts_api.put_raw(job_id, "a.dng", 10)
    for n in (1, 2):
        _put_part(parts_api, job_id, "big.dng", plan, n)
    status, _, error = parts_api.call("POST", f"/jobs/{job_id}/submit")
    assert status == 409
    assert "uploads in parts not completed: big.dng" in error["message"]
    assert error["files"] == [
        {"name": "big.dng", "expected_size": SIZE, "actual_size": None, "in_parts": True}
    ]


def test_an_aborted_upload_leaves_nothing_in_progress_and_resuming_starts_afresh(
    parts_api: Api,
) -> None:
    doc = _create(parts_api, {"big one.dng": SIZE})
    job_id, plan = doc["job_id"], _plan(doc, "big one.dng")
    _put_part(parts_api, job_id, "big one.dng", plan, 1)
    status, _, aborted = parts_api.call(
        "POST", f"/jobs/{job_id}/files/{quote('big one.dng')}/abort"
    )
    assert (status, aborted["aborted"], aborted["name"]) == (200, 1, "big one.dng")
    assert _in_progress(parts_api, job_id) == []
    stored = parts_api.service.uploads.get(job_id)
    assert stored is not None and stored.files[0].upload_id is None
    # Completing what was aborted is 409; a resume starts a new upload, every part missing.
    assert _complete(parts_api, job_id, "big one.dng", {1: '"a"', 2: '"b"'})[0] == 409
    fresh = _plan(parts_api.call("POST", f"/jobs/{job_id}/uploads")[2], "big one.dng")
    assert fresh["upload_id"] != plan["upload_id"]
    assert [p["part_number"] for p in fresh["parts"]] == [1, 2]
    assert (
        parts_api.call("POST", f"/jobs/{job_id}/files/{quote('big one.dng')}/abort")[2]["aborted"]
        == 1
    )
    assert parts_api.call("POST", f"/jobs/{job_id}/files/nope.dng/abort")[0] == 404


def test_an_upload_gone_from_s3_is_started_again_on_resume(parts_api: Api) -> None:
    doc = _create(parts_api, {"big.dng": SIZE})
    job_id, plan = doc["job_id"], _plan(doc, "big.dng")
    # The bucket's lifecycle rule aborts an upload left for days.
    parts_api.s3.abort_multipart_upload(
        Bucket=names.RAW_BUCKET, Key=keys.raw_key(job_id, "big.dng"), UploadId=plan["upload_id"]
    )
    fresh = _plan(parts_api.call("POST", f"/jobs/{job_id}/uploads")[2], "big.dng")
    assert fresh["upload_id"] != plan["upload_id"] and len(fresh["parts"]) == 2
    assert _in_progress(parts_api, job_id) == [fresh["upload_id"]]


def test_an_answer_carries_a_bounded_number_of_urls_and_the_next_resume_the_rest(
    parts_api: Api,
) -> None:
    parts_api.service.settings = parts_api.service.settings.model_copy(
        update={"upload_urls_per_answer": 3}
    )
    doc = _create(parts_api, {"a.dng": 1, "b.dng": 1, "big.dng": SIZE, "c.dng": 1})
    job_id = doc["job_id"]
    assert [u["name"] for u in doc["uploads"]] == ["a.dng", "b.dng", "big.dng"]
    assert doc["more"] is True
    plan = _plan(doc, "big.dng")
    # One URL was left for the big file: part 1 now, part 2 with the next answer.
    assert ([p["part_number"] for p in plan["parts"]], plan["all_parts"]) == ([1], False)
    for name in ("a.dng", "b.dng"):
        parts_api.put_raw(job_id, name, 1)
    first = _put_part(parts_api, job_id, "big.dng", plan, 1)
    rest = parts_api.call("POST", f"/jobs/{job_id}/uploads")[2]
    assert [u["name"] for u in rest["uploads"]] == ["big.dng", "c.dng"]
    assert rest["more"] is False
    plan = _plan(rest, "big.dng")
    assert ([p["part_number"] for p in plan["parts"]], plan["all_parts"]) == ([2], True)
    assert plan["uploaded"][0]["etag"] == first


def test_a_job_of_five_thousand_files_with_the_longest_names_is_declared_and_read_back(
    api: Api,
) -> None:
    api.service.settings = api.service.settings.model_copy(
        update={"max_files_per_job": 5000, "max_job_bytes": 5_000_000}
    )
    files = {f"{i:04d}" + "a" * 247 + ".dng": 1000 for i in range(5000)}
    body = {"files": [{"name": n, "size": s} for n, s in files.items()]}
    # The body as a client sends it fits the API's body limit.
    assert len(json.dumps(body)) < 2 * MIB
    status, _, doc = api.call("POST", "/jobs", body)
    assert status == 201, doc
    assert len(doc["uploads"]) == 1000 and doc["more"] is True
    # The answer stays far under Lambda's 6 MB however many files the job has.
    assert len(json.dumps(doc)) < 2 * MIB
    upload = api.service.uploads.get(doc["job_id"])
    assert upload is not None
    assert (len(upload.files), upload.files_total, upload.total_bytes) == (5000, 5000, 5_000_000)
    # No item of the uploads table grows with the job.
    items = api.ddb.query(
        TableName=names.UPLOADS_TABLE,
        KeyConditionExpression="job_id = :j",
        ExpressionAttributeValues={":j": {"S": doc["job_id"]}},
    )["Items"]
    assert max(len(json.dumps(i)) for i in items) < 2048
    header = api.ddb.get_item(
        TableName=names.UPLOADS_TABLE,
        Key=to_item({names.JOB_ID: doc["job_id"], names.SORT_KEY: names.UPLOAD_ITEM}),
    )["Item"]
    assert header["files_total"] == {"N": "5000"} and len(json.dumps(header)) < 2048
    listed = api.call("GET", "/jobs")[2]["jobs"]
    assert next(j for j in listed if j["job_id"] == doc["job_id"])["files_total"] == 5000


def test_erasing_a_job_aborts_its_uploads_in_parts(parts_api: Api) -> None:
    doc = _create(parts_api, {"big.dng": SIZE})
    job_id = doc["job_id"]
    _put_part(parts_api, job_id, "big.dng", _plan(doc, "big.dng"), 1)
    assert parts_api.call("DELETE", f"/jobs/{job_id}")[0] == 200
    assert _in_progress(parts_api, job_id) == []
    assert parts_api.service.uploads.get(job_id) is None
