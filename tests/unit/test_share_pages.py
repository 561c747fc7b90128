"""Pages of a share and of a job's files: cursors, page sizes, the 1 MB bound, and the
stable links of each page, over moto's in-process AWS through the API's handler."""

# The `api` fixture comes from test_api; each test names it as a parameter.
# ruff: noqa: F811
from __future__ import annotations

import base64
import hashlib
import json
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from darkroom import keys, names, pipeline
from darkroom.api import paging
from darkroom.api.errors import BadRequest
from darkroom.aws.ddb_codec import to_attribute, to_item
from darkroom.aws.objects import Objects
from darkroom.jobs import (
    Archive,
    DeliveredRun,
    FileProgress,
    FileRecord,
    FileStatus,
    JobStatus,
    Output,
)
from darkroom.recipes import MAX_RENDITIONS
from tests.unit.test_api import REGION, Api, api, follow  # noqa: F401

MB = 1_000_000
HTML = {"accept": "text/html"}


def deliver(api: Api, job_id: str, files: list[str], failed: frozenset[str] = frozenset()) -> str:
    """A finished run of `files` in which those in `failed` did not develop."""
    jobs = api.service.jobs
    arn = f"arn:aws:states:{REGION}:123456789012:execution:{names.state_machine_name()}:{job_id}"
    jobs.register(job_id=job_id, execution_arn=arn, files=files, name="shoot", recipe=None)
    run = keys.run_id(arn)
    jobs.transition(job_id, arn, JobStatus.STARTING)
    jobs.transition(job_id, arn, JobStatus.PROCESSING)
    for name in files:
        if name in failed:
            progress = FileProgress(status=FileStatus.FAILED, error_code="decode", error="bad")
        else:
            outputs = {}
            for rendition, (w, h) in {"web": (2048, 1365), "thumb": (400, 267)}.items():
                key = keys.rendition_key(job_id, run, rendition, name, "jpg")
                body = f"{run}:{rendition}:{name}".encode()
                api.s3.put_object(Bucket=names.PROCESSED_BUCKET, Key=key, Body=body)
                outputs[rendition] = Output(
                    key=key,
                    width=w,
                    height=h,
                    bytes=len(body),
                    content_type="image/jpeg",
                    sha256=hashlib.sha256(body).hexdigest(),
                )
            progress = FileProgress(status=FileStatus.DONE, outputs=outputs)
        jobs.record_file(job_id, arn, name, progress)
    manifest_key = keys.run_manifest_key(job_id, run)
    api.s3.put_object(Bucket=names.PROCESSED_BUCKET, Key=manifest_key, Body=b"{}")
    pipeline.mark_done(
        job_id,
        arn,
        {"manifest_key": manifest_key},
        jobs=jobs,
        objects=Objects(api.s3),
        processed_bucket=names.PROCESSED_BUCKET,
    )
    return run


def pages(api: Api, path: str, **query: str) -> list[dict[str, Any]]:
    found = []
    cursor = None
    while True:
        status, _, doc = api.call(
            "GET", path, query={**query, **({"cursor": cursor} if cursor else {})}
        )
        assert status == 200, doc
        found.append(doc)
        cursor = doc["next_cursor"]
        if cursor is None:
            return found


# -- cursors --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["IMG_0001.dng", "Élan.nef", "漢字 😀.CR3", "x" * 251 + ".dng"])
def test_a_cursor_reads_back_as_the_file_name_it_was_made_from(name: str) -> None:
    cursor = paging.encode_cursor(name)
    assert cursor.isascii() and "=" not in cursor and len(cursor) <= 400
    assert paging.decode_cursor(cursor) == name


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "%%%",
        "not a cursor",
        "SU1HXzAwMDEuZG5n=",  # padded: not as issued
        "SU1HXzAwMDEuZG5n!",
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),  # not UTF-8
        paging.encode_cursor("../escape.dng"),
        paging.encode_cursor("a/b.dng"),
        paging.encode_cursor("x" * 300),
        "A" * 5000,
    ],
)
def test_a_garbage_or_tampered_cursor_is_refused_with_a_clear_message(cursor: str) -> None:
    with pytest.raises(BadRequest, match="cursor is not one this API issued"):
        paging.decode_cursor(cursor)


def test_bad_cursors_and_limits_are_400_on_every_paged_route(api: Api) -> None:
    deliver(api, "paged", ["A.dng", "B.dng"])
    token = api.share("paged")["token"]
    for path in (f"/share/{token}", "/jobs/paged/files"):
        for query in (
            {"cursor": "%%%"},
            {"cursor": paging.encode_cursor("../../etc/passwd")},
            {"cursor": "\u00e9"},
            {"limit": "0"},
            {"limit": str(paging.MAX_FILES + 1)},
            {"limit": "lots"},
        ):
            status, _, doc = api.call("GET", path, query=query)
            assert (status, doc["error"]) == (400, "bad_request"), (path, query, doc)
            assert "cursor" in doc["message"] or "limit" in doc["message"], doc
        assert api.call("GET", path, query={"limit": str(paging.MAX_FILES)})[0] == 200


# -- share pages ----------------------------------------------------------------------
def test_a_share_pages_through_its_files_in_name_order_leaving_out_those_that_failed(
    api: Api,
) -> None:
    files = [f"IMG_{n:04d}.dng" for n in range(8)]
    deliver(api, "seven", files, failed=frozenset({"IMG_0003.dng"}))
    token = api.share("seven")["token"]
    found = pages(api, f"/share/{token}", limit="3")
    assert [[f["name"] for f in page["files"]] for page in found] == [
        ["IMG_0000.dng", "IMG_0001.dng", "IMG_0002.dng"],
        ["IMG_0004.dng", "IMG_0005.dng"],  # IMG_0003 never developed: not listed
        ["IMG_0006.dng", "IMG_0007.dng"],
    ]
    assert found[-1]["next_cursor"] is None
    # The client is told what is delivered, not what failed (the studio's `darkroom
    # status` says that).
    summary = found[0]["job"]
    assert summary["files_done"] == 7
    assert not {"status", "files_total", "files_failed"} & set(summary)
    _, _, html = api.call("GET", f"/share/{token}", headers=HTML)
    assert "7 photos." in html and "could not" not in html and "IMG_0003" not in html
    # Its link answers as a missing photo, whatever is asked of it.
    for rendition in ("web", "thumb"):
        status, _, doc = api.call("GET", f"/share/{token}/files/IMG_0003.dng/{rendition}")
        assert status == 404 and doc["message"] == "no such photo in this share"
    assert api.call("GET", f"/share/{token}/files/IMG_0000.dng/print")[0] == 404
    assert api.call("GET", f"/share/{token}/files/..%2F..%2Fsecret.dng/web")[0] == 404
    # Every link of every page leads to the very rendition delivered.
    records = {r.name: r for r in api.service.jobs.files("seven")}
    for page in found:
        for f in page["files"]:
            for r in f["renditions"]:
                status, headers, _ = follow(api, r["download_url"])
                assert status == 302
                key = unquote(urlsplit(headers["location"]).path).lstrip("/")
                assert key == records[f["name"]].delivered[r["rendition"]].key


def test_an_exact_multiple_of_the_page_size_ends_without_an_empty_page(api: Api) -> None:
    deliver(api, "six", [f"F{n}.dng" for n in range(6)])
    token = api.share("six")["token"]
    found = pages(api, f"/share/{token}", limit="3")
    assert [len(p["files"]) for p in found] == [3, 3]


def test_a_page_is_read_from_the_file_items_after_the_cursor_never_a_manifest(api: Api) -> None:
    deliver(api, "items", [f"F{n}.dng" for n in range(5)])
    token = api.share("items")["token"]
    first = api.call("GET", f"/share/{token}", query={"limit": "2"})[2]
    calls: list[tuple[str, dict[str, Any]]] = []
    api.ddb.meta.events.register(
        "provide-client-params.dynamodb.*",
        lambda params, model, **_: calls.append((model.name, dict(params))),
    )
    s3_calls: list[str] = []
    api.s3.meta.events.register("before-call.s3.*", lambda model, **_: s3_calls.append(model.name))
    second = api.call(
        "GET", f"/share/{token}", query={"limit": "2", "cursor": first["next_cursor"]}
    )[2]
    assert [f["name"] for f in second["files"]] == ["F2.dng", "F3.dng"]
    assert s3_calls == []  # no manifest, no presigning round trip
    (query,) = [params for name, params in calls if name == "Query"]
    assert query["Limit"] == 3
    assert query["ExclusiveStartKey"]["sk"] == {"S": "FILE#F1.dng"}
    assert "Scan" not in {name for name, _ in calls}


def test_a_gallery_page_without_script_links_to_the_next_page(api: Api) -> None:
    deliver(api, "more", [f"F{n}.dng" for n in range(3)])
    token = api.share("more")["token"]
    status, _, page = api.call("GET", f"/share/{token}", headers=HTML, query={"limit": "2"})
    assert status == 200
    assert page.count("<figure>") == 2
    first = api.call("GET", f"/share/{token}", query={"limit": "2"})[2]
    more = f"https://api.example.test/share/{token}?cursor={first['next_cursor']}&amp;limit=2"
    assert f'<a class="more" href="{more}">More photos</a>' in page
    status, _, rest = api.call(
        "GET", f"/share/{token}", headers=HTML, query={"limit": "2", "cursor": first["next_cursor"]}
    )
    assert rest.count("<figure>") == 1 and "More photos" not in rest


def test_download_all_archives_are_listed_and_redirect_to_their_zip(api: Api) -> None:
    run = deliver(api, "zipped", ["A.dng"])
    token = api.share("zipped")["token"]
    status, _, doc = api.call("GET", f"/share/{token}/archives/web")
    assert status == 404 and doc["message"] == "no download-all archive for this rendition yet"
    key = keys.archive_key("zipped", run, "web")
    api.s3.put_object(Bucket=names.PROCESSED_BUCKET, Key=key, Body=b"PK zip")
    job = api.service.jobs.get("zipped")
    assert job.delivered is not None
    delivered = job.delivered.model_copy(
        update={"archives": {"web": Archive(key=key, bytes=6, files=1)}}
    )
    _set_delivered(api, "zipped", delivered)
    shared = api.call("GET", f"/share/{token}")[2]
    link = f"https://api.example.test/share/{token}/archives/web"
    assert shared["archives"] == {"web": {"url": link, "label": "Web", "bytes": 6, "files": 1}}
    status, headers, _ = follow(api, link)
    assert status == 302 and headers["cache-control"] == "no-store"
    location = headers["location"]
    assert unquote(urlsplit(location).path).endswith(key)
    q = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert q["response-content-disposition"].startswith('attachment; filename="shoot-web.zip"')
    assert api.call("GET", f"/share/{token}/archives/thumb")[0] == 404
    page = api.call("GET", f"/share/{token}", headers=HTML)[2]
    assert f'<a class="button" href="{link}">Download all: Web</a>' in page
    # Revoked: every link is gone with the share.
    api.call("DELETE", f"/jobs/zipped/shares/{token.split('.')[0]}")
    for path in ("archives/web", "files/A.dng/web"):
        status, _, doc = api.call("GET", f"/share/{token}/{path}")
        assert status == 410 and "revoked" in doc["message"], path


def test_stable_links_of_an_unknown_or_expired_share_answer_as_the_share_does(
    api: Api,
) -> None:
    deliver(api, "links", ["A.dng"])
    token = api.share("links", expires_in=60)["token"]
    assert api.call("GET", f"/share/{token}/files/A.dng/web")[0] == 302
    api.now[0] += 60
    for path in (f"/share/{token}", f"/share/{token}/files/A.dng/web"):
        status, _, doc = api.call("GET", path)
        assert status == 410 and "expired" in doc["message"], path
    share_id, secret = token.split(".")
    forged = f"{share_id}.{'A' if secret[0] != 'A' else 'B'}{secret[1:]}"
    for path in (f"/share/{forged}/files/A.dng/web", f"/share/{forged}/archives/web"):
        status, _, doc = api.call("GET", path)
        assert status == 404 and doc["message"] == "unknown share link", path


def _set_delivered(api: Api, job_id: str, delivered: DeliveredRun) -> None:
    api.ddb.update_item(
        TableName=names.JOBS_TABLE,
        Key={"job_id": {"S": job_id}, "sk": {"S": names.JOB_ITEM}},
        UpdateExpression="SET delivered = :d",
        ExpressionAttributeValues={":d": to_attribute(delivered.model_dump(mode="json"))},
    )


# -- the 1 MB bound -------------------------------------------------------------------
def _worst_name(n: int) -> str:
    """255 bytes, each of which costs the most in a page: "é" is 2 bytes that JSON
    writes as 6 (\\u00e9) and a link quotes as 6 (%C3%A9)."""
    return f"{n:05d}" + "é" * 123 + ".dng"


def test_the_largest_page_of_the_largest_files_stays_under_a_megabyte(api: Api) -> None:
    """MAX_FILES files at once, each with the longest name and the most renditions a
    recipe may have, measured as the handler sends them (its own JSON encoder)."""
    count = paging.MAX_FILES
    names_ = sorted(_worst_name(n) for n in range(count))
    assert all(len(n.encode()) == 255 for n in names_)
    renditions = [f"r{i}" + "x" * 30 for i in range(MAX_RENDITIONS)]
    arn = f"arn:aws:states:{REGION}:123456789012:execution:{names.state_machine_name()}:big"
    api.service.jobs.register(
        job_id="big", execution_arn=arn, files=names_, name="n" * 200, recipe=None
    )
    run = "big"
    items = []
    for name in names_:
        outputs = {
            r: Output(
                key=keys.rendition_key("big", run, r, name, "webp"),
                width=99999,
                height=99999,
                bytes=5 * 1024**3,
                content_type="image/webp",
            )
            for r in renditions
        }
        # Delivered by the job's pointer to its run, as MarkDone leaves it.
        record = FileRecord(name=name, run_id=run, status=FileStatus.DONE, outputs=outputs)
        items.append(
            {
                names.JOB_ID: "big",
                names.SORT_KEY: names.FILE_ITEM_PREFIX + name,
                **record.model_dump(mode="json", exclude_none=True),
            }
        )
    for start in range(0, len(items), 25):
        api.ddb.batch_write_item(
            RequestItems={
                names.JOBS_TABLE: [
                    {"PutRequest": {"Item": to_item(i)}} for i in items[start : start + 25]
                ]
            }
        )
    api.ddb.update_item(
        TableName=names.JOBS_TABLE,
        Key={"job_id": {"S": "big"}, "sk": {"S": names.JOB_ITEM}},
        UpdateExpression="SET #s = :done",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":done": {"S": "DONE"}},
    )
    archives = {
        r: Archive(key=keys.archive_key("big", run, r), bytes=10**12, files=count)
        for r in renditions
    }
    _set_delivered(
        api,
        "big",
        DeliveredRun(run_id=run, files_delivered=count, archives=archives),
    )
    token = api.share("big")["token"]

    query = {"limit": str(count)}
    status, _, doc = api.call("GET", f"/share/{token}", query=query)
    assert status == 200
    body = json.dumps(doc, separators=(",", ":"))  # as the handler encoded it
    html = api.call("GET", f"/share/{token}", query=query, headers=HTML)[2]
    sizes = {"json": len(body.encode()), "html": len(html.encode())}
    print(f"largest share page: {sizes} bytes, {len(doc['files'])} of {count} files")
    assert max(sizes.values()) < MB, sizes
    assert all(len(f["renditions"]) == MAX_RENDITIONS for f in doc["files"])
    assert len(doc["archives"]) == MAX_RENDITIONS
    # Cut short by bytes, not by the page size: the next page goes on from there.
    listed = [f["name"] for f in doc["files"]]
    assert listed == names_[: len(listed)] and len(listed) < count
    assert paging.decode_cursor(doc["next_cursor"]) == listed[-1]


def test_a_page_of_ordinary_files_is_not_cut_short(api: Api) -> None:
    deliver(api, "plain", [f"IMG_{n:04d}.dng" for n in range(12)])
    token = api.share("plain")["token"]
    assert len(api.call("GET", f"/share/{token}")[2]["files"]) == 12


# -- a job's files --------------------------------------------------------------------
def test_a_jobs_status_holds_its_first_files_and_the_rest_page_by_cursor(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(paging, "DEFAULT_FILES", 2)
    files = [f"F{n}.dng" for n in range(5)]
    deliver(api, "status", files)
    view = api.call("GET", "/jobs/status")[2]
    assert list(view["files"]) == ["F0.dng", "F1.dng"]
    assert view["files_total"] == 5 and view["files_next_cursor"]
    rest = pages(api, "/jobs/status/files", limit="2", cursor=view["files_next_cursor"])
    assert [list(p["files"]) for p in rest] == [["F2.dng", "F3.dng"], ["F4.dng"]]
    assert rest[0]["files"]["F2.dng"]["status"] == "DONE"
    assert [list(p["files"]) for p in pages(api, "/jobs/status/files")] == [files]
    # The listing shows counts only.
    listed = api.call("GET", "/jobs")[2]["jobs"]
    assert all("files" not in j and "files_next_cursor" not in j for j in listed)
    assert api.call("GET", "/jobs/ghost/files")[0] == 404


def test_a_declared_jobs_files_page_the_same_way(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paging, "DEFAULT_FILES", 2)
    status, _, created = api.call(
        "POST", "/jobs", {"files": [{"name": f"D{n}.dng", "size": 1} for n in (3, 1, 2)]}
    )
    assert status == 201, created
    job_id = created["job_id"]
    api.put_raw(job_id, "D2.dng", 1)
    view = api.call("GET", f"/jobs/{job_id}")[2]
    assert view["files"] == {
        "D1.dng": {"status": "AWAITING_UPLOAD", "size": 1},
        "D2.dng": {"status": "UPLOADED", "size": 1},
    }
    rest = api.call("GET", f"/jobs/{job_id}/files", query={"cursor": view["files_next_cursor"]})
    assert rest[2] == {
        "job_id": job_id,
        "files": {"D3.dng": {"status": "AWAITING_UPLOAD", "size": 1}},
        "next_cursor": None,
    }
