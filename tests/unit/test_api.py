"""The API core over moto's in-process AWS: every route, its errors and its links."""

from __future__ import annotations

import base64
import json
import threading
import time
import unicodedata
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, parse_qsl, unquote, urlsplit

import boto3
import pytest
from moto import mock_aws

from darkroom import keys, names, pipeline
from darkroom.api import tokens
from darkroom.api.app import handle
from darkroom.api.models import JobView, ReprocessIn, iso
from darkroom.api.service import ApiService
from darkroom.aws.executions import Executions
from darkroom.aws.favourites import FavouriteStore
from darkroom.aws.job_store import JobStore
from darkroom.aws.objects import Objects
from darkroom.aws.presign import Presigner, presigning_client
from darkroom.aws.shares import ShareStore
from darkroom.aws.table import create_request
from darkroom.aws.uploads import UploadStore
from darkroom.errors import JobBusy
from darkroom.jobs import FileProgress, FileStatus, JobStatus, Output
from darkroom.settings import ApiSettings, env_key
from tests.moto_config import IDLE_STATE_MACHINES, offline_aws

REGION = "us-east-1"
SM_ARN = f"arn:aws:states:{REGION}:123456789012:stateMachine:{names.state_machine_name()}"
COOKIE_SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:share-cookie-abcdef"
COOKIE_KEY = b"unit-test-share-cookie-key"


@dataclass
class Api:
    service: ApiService
    s3: Any
    ddb: Any
    now: list[float] = field(default_factory=lambda: [1_800_000_000.0])

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        caller: str | None = None,
        base64_body: bytes | None = None,
        cookies: list[str] | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "headers": {
                "host": "api.example.test",
                "x-forwarded-proto": "https",
                **(headers or {}),
            },
            "queryStringParameters": query or {},
            "requestContext": {
                "domainName": "api.example.test",
                "http": {"method": method, "path": path},
                "requestId": "req-1",
                "stage": "$default",
                **({"authorizer": {"iam": {"userArn": caller}}} if caller else {}),
            },
            "isBase64Encoded": False,
        }
        if body is not None:
            event["body"] = body if isinstance(body, str) else json.dumps(body)
        if base64_body is not None:
            event["body"] = base64.b64encode(base64_body).decode()
            event["isBase64Encoded"] = True
        if cookies:
            event["cookies"] = cookies
        result = handle(event, None, self.service)
        content_type = result["headers"].get("content-type", "")
        parsed: Any = result.get("body", "")
        if content_type.startswith("application/json"):
            parsed = json.loads(parsed)
        return result["statusCode"], result["headers"], parsed

    def put_raw(self, job_id: str, name: str, size: int) -> None:
        self.s3.put_object(
            Bucket=names.RAW_BUCKET, Key=keys.raw_key(job_id, name), Body=b"x" * size
        )

    def finish(self, job_id: str, files: dict[str, int], status: JobStatus = JobStatus.DONE) -> str:
        """A job as the pipeline leaves it: a record, renditions, the run's manifest and,
        unless it is still PROCESSING, its delivery (MarkDone's own). The run's id."""
        jobs = self.service.jobs
        arn = (
            f"arn:aws:states:{REGION}:123456789012:execution:{names.state_machine_name()}:{job_id}"
        )
        jobs.register(
            job_id=job_id, execution_arn=arn, files=list(files), name="a shoot", recipe=None
        )
        return self.develop(job_id, arn, list(files), status)

    def develop(
        self, job_id: str, arn: str, files: list[str], status: JobStatus = JobStatus.DONE
    ) -> str:
        """What a worker and MarkDone do for a registered run."""
        jobs = self.service.jobs
        run = keys.run_id(arn)
        jobs.transition(job_id, arn, JobStatus.STARTING)
        jobs.transition(job_id, arn, JobStatus.PROCESSING)
        entries = []
        for name in files:
            outputs = {}
            for rendition, (w, h) in {"web": (2048, 1365), "thumb": (400, 267)}.items():
                key = keys.rendition_key(job_id, run, rendition, name, "jpg")
                body = f"{run}:{rendition}:{name}".encode()
                self.s3.put_object(Bucket=names.PROCESSED_BUCKET, Key=key, Body=body)
                outputs[rendition] = Output(
                    key=key, width=w, height=h, bytes=len(body), content_type="image/jpeg"
                )
            jobs.record_file(
                job_id, arn, name, FileProgress(status=FileStatus.DONE, outputs=outputs)
            )
            entries.append({"name": name, "status": "DONE"})
        manifest_key = keys.run_manifest_key(job_id, run)
        self.s3.put_object(
            Bucket=names.PROCESSED_BUCKET,
            Key=manifest_key,
            Body=json.dumps({"job_id": job_id, "files": entries}).encode(),
        )
        if status is not JobStatus.PROCESSING:
            pipeline.mark_done(
                job_id,
                arn,
                {"manifest_key": manifest_key},
                jobs=jobs,
                objects=Objects(self.s3),
                processed_bucket=names.PROCESSED_BUCKET,
            )
        return run

    def share(self, job_id: str, **body: Any) -> dict[str, Any]:
        status, _, doc = self.call("POST", f"/jobs/{job_id}/shares", body)
        assert status == 201, doc
        return doc


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    offline_aws(monkeypatch, REGION)
    with mock_aws(config=IDLE_STATE_MACHINES):
        session = boto3.session.Session(region_name=REGION)
        s3 = session.client("s3")
        ddb = session.client("dynamodb")
        for bucket in (names.RAW_BUCKET, names.PROCESSED_BUCKET):
            s3.create_bucket(Bucket=bucket)
        for schema in (names.JOBS_SCHEMA, names.UPLOADS_SCHEMA, names.SHARES_SCHEMA):
            ddb.create_table(**create_request(schema))
        sfn = session.client("stepfunctions")
        sfn.create_state_machine(
            name=names.state_machine_name(),
            definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
            roleArn="arn:aws:iam::123456789012:role/x",
        )
        settings = ApiSettings(
            raw_bucket=names.RAW_BUCKET,
            processed_bucket=names.PROCESSED_BUCKET,
            jobs_table=names.JOBS_TABLE,
            uploads_table=names.UPLOADS_TABLE,
            shares_table=names.SHARES_TABLE,
            state_machine_arn=SM_ARN,
            share_cookie_secret_arn=COOKIE_SECRET_ARN,
            max_file_bytes=1000,
            max_job_bytes=2500,
            max_files_per_job=5,
        )
        holder = Api(None, s3, ddb)  # type: ignore[arg-type]
        holder.service = ApiService(
            settings,
            jobs=JobStore(names.JOBS_TABLE, ddb),
            uploads=UploadStore(names.UPLOADS_TABLE, ddb),
            shares=ShareStore(names.SHARES_TABLE, ddb),
            favourites=FavouriteStore(names.JOBS_TABLE, ddb),
            objects=Objects(s3),
            presigner=Presigner(presigning_client("virtual", session)),
            executions=Executions(SM_ARN, sfn),
            clock=lambda: holder.now[0],
            share_cookie_key=COOKIE_KEY,
        )
        yield holder


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _create(api: Api, files: dict[str, int], **extra: Any) -> dict[str, Any]:
    status, _, doc = api.call(
        "POST", "/jobs", {"files": [{"name": n, "size": s} for n, s in files.items()], **extra}
    )
    assert status == 201, doc
    return doc


# -- creating jobs --------------------------------------------------------------------
def test_creating_a_job_returns_one_sigv4_put_url_per_file_signed_for_its_size(api: Api) -> None:
    doc = _create(api, {"A.dng": 10, "B.NEF": 20}, name="wedding")
    assert doc["status"] == "CREATED"
    assert doc["expires_in"] == 3600
    assert [u["name"] for u in doc["uploads"]] == ["A.dng", "B.NEF"]
    for upload in doc["uploads"]:
        url = upload["url"]
        q = _query(url)
        assert upload["method"] == "PUT"
        assert q["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
        assert q["X-Amz-Expires"] == "3600"
        # Both signed: S3 refuses a PUT of another size, or one that would replace a file.
        assert {"content-length", "if-none-match"} <= set(q["X-Amz-SignedHeaders"].split(";"))
        assert upload["headers"] == {"Content-Length": str(upload["size"]), "If-None-Match": "*"}
        assert urlsplit(url).path.endswith(keys.raw_key(doc["job_id"], upload["name"]))
    status, _, job = api.call("GET", f"/jobs/{doc['job_id']}")
    assert status == 200
    assert job["status"] == "CREATED"
    assert job["name"] == "wedding"
    assert {n: f["status"] for n, f in job["files"].items()} == {
        "A.dng": "AWAITING_UPLOAD",
        "B.NEF": "AWAITING_UPLOAD",
    }


def test_what_the_api_answers_for_a_job_reads_back_as_the_one_job_view(api: Api) -> None:
    api.finish("done", {"A.dng": 1, "B.dng": 1})
    _, _, doc = api.call("GET", "/jobs/done")
    view = JobView.model_validate(doc)
    assert (view.status, view.files_done, view.is_registered) == ("DONE", 2, True)
    assert view.files is not None and set(view.files["A.dng"].outputs or {}) == {"web", "thumb"}
    assert view.model_dump(mode="json") == doc
    created = _create(api, {"c.dng": 1})
    listed = api.call("GET", "/jobs")[2]["jobs"]
    upload = JobView.model_validate(next(j for j in listed if j["job_id"] == created["job_id"]))
    assert (upload.status, upload.is_registered, upload.files) == ("CREATED", False, None)


def test_upload_urls_live_as_long_as_the_configured_expiry(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As the deployed function gets it: the env key, read by ApiSettings at start-up.
    monkeypatch.setenv(env_key("upload_url_expiry_seconds"), "900")
    current = api.service.settings.model_dump(exclude={"upload_url_expiry_seconds"})
    api.service.settings = ApiSettings(**current)
    doc = _create(api, {"A.dng": 10, "B.dng": 20})
    assert doc["expires_in"] == 900
    assert doc["expires_at"] == iso(api.now[0] + 900)
    assert {_query(u["url"])["X-Amz-Expires"] for u in doc["uploads"]} == {"900"}


@pytest.mark.parametrize(
    "name",
    [
        "../escape.dng",
        "..",
        "a/b.dng",
        "a\\b.dng",
        ".hidden.dng",
        "photo.jpg",
        "manifest.json",
        "no-extension",
        "tab\there.dng",
        "bell\x07.dng",
        " padded.dng",
        "",
    ],
)
def test_file_names_that_are_not_plain_raw_files_are_refused(api: Api, name: str) -> None:
    status, _, doc = api.call("POST", "/jobs", {"files": [{"name": name, "size": 10}]})
    assert status == 400, doc
    assert doc["error"] == "bad_request"
    assert doc["files"][0]["name"] == name


def test_two_files_that_would_share_rendition_names_are_refused(api: Api) -> None:
    status, _, doc = api.call(
        "POST", "/jobs", {"files": [{"name": "A.dng", "size": 1}, {"name": "A.nef", "size": 1}]}
    )
    assert status == 400
    assert "A.nef" in doc["message"] and "A.dng" in doc["message"]


@pytest.mark.parametrize(
    ("files", "what"),
    [
        ({"big.dng": 1001}, "big.dng"),
        ({"a.dng": 1000, "b.dng": 1000, "c.dng": 1000}, "at most 2500"),
        ({f"{i}.dng": 1 for i in range(6)}, "at most 5"),
    ],
)
def test_more_than_a_file_or_job_may_hold_is_413(
    api: Api, files: dict[str, int], what: str
) -> None:
    status, _, doc = api.call(
        "POST", "/jobs", {"files": [{"name": n, "size": s} for n, s in files.items()]}
    )
    assert status == 413, doc
    assert doc["error"] == "too_large"
    assert what in doc["message"]


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[1, 2]",
        {"files": []},
        {"files": [{"name": "a.dng", "size": "10"}]},
        {"files": [{"name": "a.dng", "size": True}]},
        {"files": [{"name": "a.dng", "size": 0}]},
        {"files": [{"name": "a.dng", "size": 1}], "colour": "red"},
        {"files": [{"name": "a.dng", "size": 1}], "recipe": {"renditions": "lots"}},
        {"files": [{"name": "a.dng", "size": 1}], "job_id": "../x"},
        {"files": [{"name": "a.dng", "size": 1}], "job_id": "shoot-1\n"},
        # Another job's reprocess execution name.
        {"files": [{"name": "a.dng", "size": 1}], "job_id": "shoot-1.rp-20260102T030405678"},
    ],
)
def test_malformed_bodies_are_400_with_a_message(api: Api, body: Any) -> None:
    status, _, doc = api.call("POST", "/jobs", body)
    assert status == 400, doc
    assert doc["message"]


def test_a_field_of_the_wrong_type_is_400_naming_it_and_so_is_a_body_that_is_not_json(
    api: Api,
) -> None:
    status, _, doc = api.call("POST", "/jobs", {"files": [{"name": "a.dng", "size": "10"}]})
    assert (status, doc["error"]) == (400, "bad_request")
    assert "files[0].size" in doc["message"]
    for content_type in ("text/plain", "multipart/form-data", "application/x-www-form-urlencoded"):
        status, _, doc = api.call(
            "POST", "/jobs/j/reprocess", "{}", headers={"content-type": content_type}
        )
        assert (status, doc["error"]) == (400, "bad_request"), (content_type, doc)
    status, _, doc = api.call("POST", "/jobs/j/shares", base64_body=b"V\xff")
    assert (status, doc["error"]) == (400, "bad_request"), doc


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("IMG_1.dng", "img_1.dng"),
        ("IMG_1.dng", "img_1.NEF"),
        (unicodedata.normalize("NFC", "café.dng"), unicodedata.normalize("NFD", "café.dng")),
        ("STRASSE.dng", "straße.dng"),
    ],
)
def test_names_one_file_system_would_hold_as_one_file_are_refused_naming_both(
    api: Api, first: str, second: str
) -> None:
    files = [{"name": first, "size": 1}, {"name": second, "size": 1}]
    status, _, doc = api.call("POST", "/jobs", {"files": files})
    assert (status, doc["error"]) == (400, "bad_request"), doc
    assert repr(first) in doc["message"] and repr(second) in doc["message"]
    assert {f["name"] for f in doc["files"]} == {first, second}


def test_names_are_kept_as_the_client_sent_them(api: Api) -> None:
    # Not normalised: the client finds each upload URL by the name it declared.
    nfd = unicodedata.normalize("NFD", "café.dng")
    (upload,) = _create(api, {nfd: 1})["uploads"]
    assert upload["name"] == nfd
    assert urlsplit(upload["url"]).path.endswith("/cafe%CC%81.dng")


def test_a_body_nested_too_deep_is_400_before_it_is_parsed(api: Api) -> None:
    for depth in (33, 100_000):
        body = "[" * depth + "]" * depth
        status, _, doc = api.call("POST", "/jobs", body)
        assert (status, doc["error"]) == (400, "bad_request"), doc
        assert "nests more than 32 levels" in doc["message"]
    # Brackets inside strings nest nothing; a recipe at the depth it needs is fine.
    name = "[" * 100 + '"{.dng'
    status, _, doc = api.call("POST", "/jobs", {"files": [{"name": name, "size": 1}]})
    assert status == 201, doc
    nested: Any = {"files": [{"name": "a.dng", "size": 1}], "name": "x"}
    nested["recipe"] = {"white_balance": {"mode": "fixed", "multipliers": [1, 1, 1]}}
    assert api.call("POST", "/jobs", nested)[0] == 201
    deep: Any = {}
    for _ in range(40):
        deep = {"a": deep}
    status, _, doc = api.call("POST", "/jobs/j/reprocess", {"recipe": deep})
    assert status == 400 and "nests" in doc["message"]


def test_a_body_over_two_megabytes_is_413_before_it_is_parsed(api: Api) -> None:
    body = json.dumps({"files": [{"name": "a.dng", "size": 1}], "name": "x" * (2 << 20)})
    status, _, doc = api.call("POST", "/jobs", body)
    assert (status, doc["error"], doc["max_body_bytes"]) == (413, "too_large", 2 << 20)
    status, _, doc = api.call("POST", "/jobs", base64_body=body.encode())
    assert status == 413


def test_a_recipe_with_thousands_of_unknown_fields_gets_a_short_400(api: Api) -> None:
    api.finish("finished", {"A.dng": 1})
    recipe = {f"unknown-{i}": 1 for i in range(50_000)}
    for method, path, body in (
        ("POST", "/jobs", {"files": [{"name": "a.dng", "size": 1}], "recipe": recipe}),
        ("POST", "/jobs/finished/reprocess", {"recipe": recipe}),
    ):
        status, _, doc = api.call(method, path, body)
        assert (status, doc["error"]) == (400, "bad_request"), path
        assert len(doc["message"]) < 1000, path
        assert "recipe.unknown-0: unknown field" in doc["message"]
        assert doc["message"].endswith("; and 49995 more")
    # Unknown fields of the body itself (and a key a megabyte long) are cut short too.
    body = {"files": [{"name": "a.dng", "size": 1}], **{f"k{i}": 1 for i in range(20_000)}}
    body["x" * 500_000] = 1
    status, _, doc = api.call("POST", "/jobs", body)
    assert status == 400 and len(doc["message"]) < 1000, doc["message"][:2000]
    assert doc["message"].endswith("and 19996 more")


def test_the_signing_caller_is_recorded_with_the_job(api: Api) -> None:
    ann = "arn:aws:iam::123456789012:user/ann"
    status, _, doc = api.call(
        "POST", "/jobs", {"files": [{"name": "a.dng", "size": 1}]}, caller=ann
    )
    assert status == 201, doc
    upload = api.service.uploads.get(doc["job_id"])
    assert upload is not None and upload.created_by == ann


def test_a_chosen_job_id_cannot_be_taken_twice(api: Api) -> None:
    _create(api, {"a.dng": 1}, job_id="shoot-1")
    status, _, doc = api.call(
        "POST", "/jobs", {"files": [{"name": "a.dng", "size": 1}], "job_id": "shoot-1"}
    )
    assert status == 409 and "shoot-1" in doc["message"]


# -- submitting -----------------------------------------------------------------------
def test_submitting_lists_every_missing_or_wrong_sized_file(api: Api) -> None:
    job_id = _create(api, {"A.dng": 10, "B.dng": 20, "C.dng": 30})["job_id"]
    api.put_raw(job_id, "A.dng", 10)
    api.put_raw(job_id, "B.dng", 19)
    status, _, doc = api.call("POST", f"/jobs/{job_id}/submit")
    assert status == 409
    assert doc["files"] == [
        {"name": "B.dng", "expected_size": 20, "actual_size": 19},
        {"name": "C.dng", "expected_size": 30, "actual_size": None},
    ]
    assert "C.dng" in doc["message"] and "B.dng" in doc["message"]
    with pytest.raises(api.s3.exceptions.NoSuchKey):
        api.s3.get_object(Bucket=names.RAW_BUCKET, Key=keys.raw_manifest_key(job_id))


def test_submitting_a_complete_job_writes_its_manifest_once(api: Api) -> None:
    job_id = _create(api, {"A.dng": 10}, name="n", recipe={"renditions": [{"name": "web"}]})[
        "job_id"
    ]
    api.put_raw(job_id, "A.dng", 10)
    _, _, created = api.call("GET", f"/jobs/{job_id}")
    assert created["files"]["A.dng"]["status"] == "UPLOADED"
    status, _, doc = api.call("POST", f"/jobs/{job_id}/submit")
    assert status == 202 and doc["status"] == "SUBMITTED"
    key = keys.raw_manifest_key(job_id)
    manifest = json.loads(api.s3.get_object(Bucket=names.RAW_BUCKET, Key=key)["Body"].read())
    assert manifest["files"] == [{"name": "A.dng", "size": 10}]
    assert manifest["recipe"]["renditions"][0]["name"] == "web"
    etag = api.s3.head_object(Bucket=names.RAW_BUCKET, Key=key)["ETag"]
    again = api.call("POST", f"/jobs/{job_id}/submit")
    assert again[0] == 202 and again[2]["submitted_at"] == doc["submitted_at"]
    assert api.s3.head_object(Bucket=names.RAW_BUCKET, Key=key)["ETag"] == etag
    assert api.call("GET", f"/jobs/{job_id}")[2]["status"] == "SUBMITTED"


def test_submitting_again_starts_a_submitted_job_that_has_no_execution_once(api: Api) -> None:
    job_id = _create(api, {"A.dng": 10})["job_id"]
    api.put_raw(job_id, "A.dng", 10)
    assert api.call("POST", f"/jobs/{job_id}/submit")[0] == 202
    executions = api.service.executions
    # No orchestrator here: as after an outage that outlasted its retries.
    assert executions.list() == []
    for _ in range(2):
        status, _, doc = api.call("POST", f"/jobs/{job_id}/submit")
        assert (status, doc["status"]) == (202, "SUBMITTED")
    (started,) = executions.list()
    assert started["name"] == pipeline.execution_name(job_id)
    described = executions.describe(started["executionArn"])
    assert json.loads(described["input"]) == {"job_id": job_id}


def test_unknown_and_impossible_job_ids_are_404(api: Api) -> None:
    for path in ("/jobs/nope", "/jobs/..%2F..%2Fetc", "/jobs/nope/submit"):
        method = "POST" if path.endswith("submit") else "GET"
        status, _, doc = api.call(method, path)
        assert status == 404, (path, doc)
        assert doc["error"] == "not_found"


# -- reprocessing ---------------------------------------------------------------------
def _running_execution(job_id: str) -> str:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    return str(sfn.start_execution(stateMachineArn=SM_ARN, name=job_id)["executionArn"])


def test_reprocess_is_refused_while_the_job_runs_and_accepted_once_it_is_done(api: Api) -> None:
    _running_execution("running")
    api.finish("running", {"A.dng": 1}, status=JobStatus.PROCESSING)
    status, _, doc = api.call("POST", "/jobs/running/reprocess")
    assert status == 409 and "PROCESSING" in doc["message"]
    api.finish("finished", {"A.dng": 1})
    status, _, doc = api.call("POST", "/jobs/finished/reprocess", {})
    assert status == 202
    assert ":finished.rp-" in doc["execution_arn"]
    assert api.call("POST", "/jobs/missing/reprocess")[0] == 404
    job_id = _create(api, {"a.dng": 1})["job_id"]
    assert api.call("POST", f"/jobs/{job_id}/reprocess")[0] == 409
    bad = api.call(
        "POST", "/jobs/finished/reprocess", {"recipe": {"renditions": [{"name": "BAD NAME"}]}}
    )
    assert bad[0] == 400


def test_reprocess_with_a_recipe_starts_an_execution_that_carries_it(api: Api) -> None:
    api.finish("finished", {"A.dng": 1})
    recipe = {"renditions": [{"name": "print", "long_edge": 1024, "quality": 95}]}
    status, _, doc = api.call("POST", "/jobs/finished/reprocess", {"recipe": recipe})
    assert status == 202, doc
    sfn = boto3.client("stepfunctions", region_name=REGION)
    started = json.loads(sfn.describe_execution(executionArn=doc["execution_arn"])["input"])
    assert started["job_id"] == "finished" and started["reprocess"] is True
    # The recipe as RegisterJob will read it: validated, with every default filled in.
    assert started["recipe"]["renditions"] == [
        {
            "name": "print",
            "long_edge": 1024,
            "format": "jpeg",
            "quality": 95,
            "sharpen": "screen",
            "label": None,
        }
    ]
    assert started["recipe"]["exposure"]["mode"] == "auto"


def test_reprocess_with_a_bad_recipe_is_400_naming_the_field_and_starts_nothing(
    api: Api,
) -> None:
    api.finish("finished", {"A.dng": 1})
    bad = {"renditions": [{"name": "web", "quality": 500}]}
    status, _, doc = api.call("POST", "/jobs/finished/reprocess", {"recipe": bad})
    assert status == 400, doc
    assert doc["error"] == "bad_request"
    assert "recipe.renditions[0].quality" in doc["message"]
    assert api.service.executions.list() == []


def test_reprocess_takes_up_a_job_whose_execution_was_stopped_in_the_console(api: Api) -> None:
    arn = _running_execution("stopped")
    api.finish("stopped", {"A.dng": 1}, status=JobStatus.PROCESSING)
    boto3.client("stepfunctions", region_name=REGION).stop_execution(executionArn=arn)
    status, _, doc = api.call("POST", "/jobs/stopped/reprocess")
    assert status == 202, doc
    assert ":stopped.rp-" in doc["execution_arn"]
    job = api.call("GET", "/jobs/stopped")[2]
    # What the stopped execution left, until the new one registers the job.
    assert (job["status"], job["error"]) == ("FAILED", "ExecutionEnded")
    assert "ended ABORTED" in job["cause"]


def test_two_reprocess_calls_at_once_start_one_execution_and_the_other_is_409(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.finish("finished", {"A.dng": 1})
    # Both calls have read the finished job before either claims it.
    both_read = threading.Barrier(2, timeout=10)
    arn_for = api.service.executions.arn_for

    def after_both_read(name: str) -> str:
        both_read.wait()
        return arn_for(name)

    monkeypatch.setattr(api.service.executions, "arn_for", after_both_read)
    # DynamoDB applies one conditional write to an item at a time; moto does not lock.
    one_write = threading.Lock()
    update_item = api.ddb.update_item

    def atomic_update(**request: Any) -> Any:
        with one_write:
            return update_item(**request)

    monkeypatch.setattr(api.ddb, "update_item", atomic_update)

    # Each thread is one API function: Lambda gives a process one event at a time, and the
    # resolver keeps the current event in the app, so the threads share only the core.
    def reprocess(ev: float) -> tuple[int, str]:
        body = ReprocessIn(recipe={"exposure": {"compensation_ev": ev}})
        try:
            return 202, api.service.reprocess_job("finished", body).execution_arn
        except JobBusy as exc:
            return 409, str(exc)

    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = sorted(pool.map(reprocess, [1.5, -1.0]))
    assert [status for status, _ in answers] == [202, 409], answers
    (_, accepted), (_, refused) = answers
    assert "reprocessed already" in refused
    # And over HTTP, while the claim stands: 409.
    monkeypatch.undo()
    status, _, doc = api.call("POST", "/jobs/finished/reprocess")
    assert (status, doc["error"]) == (409, "conflict") and "reprocessed already" in doc["message"]
    (started,) = api.service.executions.list()
    assert started["executionArn"] == accepted
    assert api.service.jobs.get("finished").claimed_by == accepted
    # The claimed execution registers the job and releases the claim; no other can.
    hand_started = accepted + "-by-hand"
    with pytest.raises(JobBusy, match="claimed by"):
        api.service.jobs.register(
            job_id="finished", execution_arn=hand_started, files=["A.dng"], name=None, recipe=None
        )
    api.service.jobs.register(
        job_id="finished", execution_arn=accepted, files=["A.dng"], name=None, recipe=None
    )
    job = api.service.jobs.get("finished")
    assert (job.status, job.claimed_by) == (JobStatus.REGISTERED, None)
    assert api.call("POST", "/jobs/finished/reprocess")[0] == 409


def test_a_job_keeps_its_place_in_the_listing_when_the_pipeline_registers_it(api: Api) -> None:
    """Declared first, registered after a newer job was listed: still on the next page."""
    older = _create(api, {"A.dng": 1})["job_id"]
    time.sleep(0.002)
    newer = _create(api, {"B.dng": 1})["job_id"]
    _, _, page = api.call("GET", "/jobs", query={"limit": "1"})
    assert [j["job_id"] for j in page["jobs"]] == [newer]
    created_at = api.call("GET", f"/jobs/{older}")[2]["created_at"]
    api.put_raw(older, "A.dng", 1)
    assert api.call("POST", f"/jobs/{older}/submit")[0] == 202
    time.sleep(0.002)
    pipeline.register_job(
        {"job_id": older},
        api.service.executions.arn_for(older),
        raw_bucket=names.RAW_BUCKET,
        jobs=api.service.jobs,
        objects=api.service.objects,
        heartbeat_seconds=10,
        timeout_seconds=600,
    )
    _, _, rest = api.call("GET", "/jobs", query={"cursor": page["next_cursor"]})
    assert [(j["job_id"], j["status"]) for j in rest["jobs"]] == [(older, "REGISTERED")]
    assert rest["jobs"][0]["created_at"] == created_at


# -- shares ---------------------------------------------------------------------------
def test_a_job_that_is_not_done_cannot_be_shared(api: Api) -> None:
    api.finish("busy", {"A.dng": 1}, status=JobStatus.PROCESSING)
    assert api.call("POST", "/jobs/busy/shares")[0] == 409
    job_id = _create(api, {"a.dng": 1})["job_id"]
    assert api.call("POST", f"/jobs/{job_id}/shares")[0] == 409
    assert api.call("POST", "/jobs/ghost/shares")[0] == 404


def test_a_share_token_is_long_random_and_stored_only_as_a_hash(api: Api) -> None:
    api.finish("done", {"A.dng": 1})
    first, second = api.share("done"), api.share("done", expires_in=60)
    assert first["token"] != second["token"]
    assert first["url"] == f"https://api.example.test/share/{first['token']}"
    secret = first["token"].split(".", 1)[1]
    assert len(secret) * 6 >= 128
    assert second["expires_in"] == 60
    assert first["expires_in"] == 7 * 24 * 3600
    items = api.ddb.scan(TableName=names.SHARES_TABLE)["Items"]
    dumped = json.dumps(items)
    assert first["token"] not in dumped and secret not in dumped
    assert tokens.digest(first["token"]) in dumped


def follow(api: Api, url: str) -> tuple[int, dict[str, str], Any]:
    """A stable link as its client opens it: the API's answer, not yet the redirect."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == "https://api.example.test", url
    return api.call("GET", parts.path, query=dict(parse_qsl(parts.query)))


def test_a_share_lists_every_rendition_with_stable_links_that_redirect_to_fresh_urls(
    api: Api,
) -> None:
    api.finish("done", {"IMG_0001.dng": 1, "Élan.nef": 1})
    share = api.share("done")
    status, headers, doc = api.call("GET", f"/share/{share['token']}")
    assert status == 200, doc
    assert headers["cache-control"] == "no-store"
    assert doc["job"]["job_id"] == "done" and doc["job"]["files_done"] == 2
    assert doc["next_cursor"] is None and doc["archives"] == {}
    assert "X-Amz" not in json.dumps(doc), "no presigned URL in a share page"
    by_name = {f["name"]: f for f in doc["files"]}
    renditions = {r["rendition"]: r for r in by_name["IMG_0001.dng"]["renditions"]}
    assert set(renditions) == {"web", "thumb"}
    web = renditions["web"]
    assert web["filename"] == "IMG_0001-web.jpg"
    link = f"https://api.example.test/share/{share['token']}/files/IMG_0001.dng/web"
    assert (web["url"], web["download_url"]) == (link, f"{link}?download=1")

    status, headers, body = follow(api, web["download_url"])
    assert (status, body) == (302, "")
    assert headers["cache-control"] == "no-store"
    q = _query(headers["location"])
    assert q["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert q["X-Amz-Expires"] == "900"
    assert q["response-content-disposition"].startswith('attachment; filename="IMG_0001-web.jpg"')
    assert urlsplit(headers["location"]).path.endswith("/web/IMG_0001.jpg")
    # Viewing: inline, as what it is.
    status, headers, _ = follow(api, web["url"])
    q = _query(headers["location"])
    assert status == 302 and q["response-content-disposition"].startswith("inline;")
    assert q["response-content-type"] == "image/jpeg"
    accented = by_name["Élan.nef"]["renditions"][0]
    assert "/files/%C3%89lan.nef/" in accented["url"]
    disposition = _query(follow(api, accented["download_url"])[1]["location"])
    assert "filename*=UTF-8''%C3%89lan-" in disposition["response-content-disposition"]
    # Previews are the smallest rendition, inline.
    preview = by_name["IMG_0001.dng"]["preview_url"]
    assert preview == f"https://api.example.test/share/{share['token']}/files/IMG_0001.dng/thumb"


def test_a_browser_gets_a_gallery_page_of_stable_links_and_one_script_file(api: Api) -> None:
    api.finish("done", {'<img src=x onerror="alert(1)">.dng': 1})
    token = api.share("done")["token"]
    accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    status, headers, page = api.call("GET", f"/share/{token}", headers={"accept": accept})
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert headers["referrer-policy"] == "no-referrer"
    policy = dict(p.split(" ", 1) for p in headers["content-security-policy"].split("; "))
    assert policy["default-src"] == "'none'"
    # Script files only (the pages' loader and the viewer): nothing inline runs.
    assert policy["script-src"].split() == [
        "https://api.example.test/assets/gallery.js",
        "https://api.example.test/assets/viewer.js",
    ]
    assert policy["connect-src"] == "https://api.example.test"
    # The stable links, and the bucket they redirect to.
    assert policy["img-src"].split() == [
        "https://api.example.test",
        f"https://{names.PROCESSED_BUCKET}.s3.amazonaws.com",
    ]
    assert page.count("<script") == 2
    assert '<script src="https://api.example.test/assets/gallery.js" defer></script>' in page
    assert '<script src="https://api.example.test/assets/viewer.js" defer></script>' in page
    assert "X-Amz" not in page, "no presigned URL in the page"
    assert "<img src=x" not in page and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    assert page.count("<img ") == 1
    assert page.count(" download=") == 2
    assert "More photos" not in page  # a single page
    status, headers, script = api.call("GET", "/assets/gallery.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    assert "innerHTML" not in script and "next_cursor" in script


def test_a_token_that_is_unknown_tampered_or_malformed_is_404_alike(api: Api) -> None:
    api.finish("done", {"A.dng": 1})
    token = api.share("done")["token"]
    share_id, secret = token.split(".")
    flipped = ("A" if secret[0] != "A" else "B") + secret[1:]
    answers = [
        api.call("GET", f"/share/{t}")
        for t in (f"{share_id}.{flipped}", f"{'0' * 20}.{secret}", "garbage", share_id)
    ]
    assert {a[0] for a in answers} == {404}
    assert len({a[2]["message"] for a in answers}) == 1


def test_an_expired_share_is_410(api: Api) -> None:
    api.finish("done", {"A.dng": 1})
    token = api.share("done", expires_in=60)["token"]
    api.now[0] += 59
    assert api.call("GET", f"/share/{token}")[0] == 200
    api.now[0] += 1
    status, _, doc = api.call("GET", f"/share/{token}")
    assert status == 410 and "expired" in doc["message"]


def test_a_revoked_share_is_410_and_revoking_needs_the_owning_job(api: Api) -> None:
    api.finish("done", {"A.dng": 1})
    api.finish("other", {"B.dng": 1})
    share = api.share("done")
    assert api.call("DELETE", f"/jobs/other/shares/{share['share_id']}")[0] == 404
    assert api.call("GET", f"/share/{share['token']}")[0] == 200
    status, _, body = api.call("DELETE", f"/jobs/done/shares/{share['share_id']}")
    assert status == 204 and body == ""
    assert api.call("DELETE", f"/jobs/done/shares/{share['share_id']}")[0] == 204
    status, _, doc = api.call("GET", f"/share/{share['token']}")
    assert status == 410 and "revoked" in doc["message"]
    assert api.call("DELETE", "/jobs/done/shares/not-a-share")[0] == 404


def _reprocess(api: Api, job_id: str, files: list[str]) -> str:
    status, _, started = api.call("POST", f"/jobs/{job_id}/reprocess")
    assert status == 202, started
    arn = str(started["execution_arn"])
    api.service.jobs.register(job_id=job_id, execution_arn=arn, files=files, name=None, recipe=None)
    return arn


def _shared_bodies(api: Api, token: str) -> dict[str, bytes]:
    """rendition key -> the object it serves, for each stable link a share lists."""
    status, _, doc = api.call("GET", f"/share/{token}")
    assert status == 200, doc
    found = {}
    for f in doc["files"]:
        for r in f["renditions"]:
            status, headers, _ = follow(api, r["url"])
            assert status == 302
            key = unquote(urlsplit(headers["location"]).path).lstrip("/")
            found[key] = api.s3.get_object(Bucket=names.PROCESSED_BUCKET, Key=key)["Body"].read()
    return found


def test_a_share_serves_what_is_delivered_while_the_job_is_reprocessed(api: Api) -> None:
    first = api.finish("done", {"A.dng": 1, "B.dng": 1})
    token = api.share("done")["token"]
    before = _shared_bodies(api, token)
    assert all(body.startswith(first.encode()) for body in before.values())
    arn = _reprocess(api, "done", ["A.dng", "B.dng"])
    assert _shared_bodies(api, token) == before
    # A new share of a job being reprocessed is fine too: it shares what is delivered.
    assert api.call("POST", "/jobs/done/shares")[0] == 201
    doc = api.call("GET", f"/share/{token}")[2]
    assert doc["job"]["files_done"] == 2

    second = api.develop("done", arn, ["A.dng", "B.dng"])
    after = _shared_bodies(api, token)
    assert all(body.startswith(second.encode()) for body in after.values())
    # The superseded renditions are gone; the new run's are all that is left.
    left = {o["Key"] for o in api.s3.list_objects_v2(Bucket=names.PROCESSED_BUCKET)["Contents"]}
    assert not any(key.startswith(keys.run_prefix("done", first)) for key in left), left
    assert set(after) <= left


def test_after_a_failed_reprocess_the_delivery_and_its_share_are_unchanged(api: Api) -> None:
    api.finish("done", {"A.dng": 1})
    token = api.share("done")["token"]
    before = _shared_bodies(api, token)
    arn = _reprocess(api, "done", ["A.dng"])
    api.develop("done", arn, ["A.dng"], status=JobStatus.PROCESSING)
    pipeline.mark_failed(
        "done", arn, {"Error": "States.HeartbeatTimeout", "Cause": "gone"}, jobs=api.service.jobs
    )
    assert _shared_bodies(api, token) == before
    assert api.call("POST", "/jobs/done/shares")[0] == 201
    job = api.call("GET", "/jobs/done")[2]
    assert (job["status"], job["error"]) == ("FAILED", "WorkerLost")
    assert job["delivered"]["files_delivered"] == 1
    file = job["files"]["A.dng"]
    assert file["run_id"] == keys.run_id(arn) and file["delivered_run"] == "done"
    assert file["delivered"] != file["outputs"]


def test_a_file_record_naming_another_jobs_objects_links_nothing_of_it(api: Api) -> None:
    api.finish("done", {"A.dng": 1})
    api.finish("secret", {"S.dng": 1})
    other = keys.rendition_key("secret", "secret", "web", "S.dng", "jpg")
    api.ddb.update_item(
        TableName=names.JOBS_TABLE,
        Key={"job_id": {"S": "done"}, "sk": {"S": "FILE#A.dng"}},
        # Delivered by the job's pointer to its run: the run's own outputs.
        UpdateExpression="SET outputs.web.#k = :k",
        ExpressionAttributeNames={"#k": "key"},
        ExpressionAttributeValues={":k": {"S": other}},
    )
    token = api.share("done")["token"]
    _, _, doc = api.call("GET", f"/share/{token}")
    assert "secret" not in json.dumps(doc)
    assert [r["rendition"] for r in doc["files"][0]["renditions"]] == ["thumb"]
    assert api.call("GET", f"/share/{token}/files/A.dng/web")[0] == 404


# -- listing and routing --------------------------------------------------------------
def test_jobs_are_listed_newest_first_in_stable_pages(api: Api) -> None:
    created = []
    for _ in range(5):
        created.append(_create(api, {"a.dng": 1})["job_id"])
        time.sleep(0.002)  # distinct creation timestamps (millisecond resolution)
    api.finish("zz-finished", {"A.dng": 1})
    seen: list[str] = []
    cursor = None
    while True:
        query = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        status, _, doc = api.call("GET", "/jobs", query=query)
        assert status == 200
        assert all("files" not in j for j in doc["jobs"])
        seen.extend(j["job_id"] for j in doc["jobs"])
        cursor = doc["next_cursor"]
        if cursor is None:
            break
    assert seen[:1] == ["zz-finished"]
    assert seen[1:] == list(reversed(created))
    for bad in ({"limit": "0"}, {"limit": "x"}, {"cursor": "%%%"}, {"cursor": "WzFd"}):
        assert api.call("GET", "/jobs", query=bad)[0] == 400


@pytest.mark.parametrize("limit", ["²", "٣", "\uff11", "৫", "½", "1e1", "0x5", "9" * 5000])
def test_a_limit_that_is_not_ascii_digits_in_range_is_400(api: Api, limit: str) -> None:
    # str.isdigit() holds for "²", which int() refuses: no route may mistake one for the other.
    status, _, doc = api.call("GET", "/jobs", query={"limit": limit})
    assert (status, doc["error"]) == (400, "bad_request"), doc
    assert "limit" in doc["message"] and len(doc["message"]) < 500


def test_a_page_boundary_stays_put_when_jobs_arrive_between_pages(api: Api) -> None:
    """Pages of one through both tables' listing indexes: never a scan, and a job
    created (or registered) between two pages does not shift the next one."""
    calls: list[str] = []
    api.ddb.meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: calls.append(model.name)
    )
    api.finish("job-a", {"A.dng": 1})
    time.sleep(0.002)
    created = _create(api, {"b.dng": 1})["job_id"]
    time.sleep(0.002)
    # Created through the API, then registered: listed once, as the job.
    _create(api, {"D.dng": 1}, job_id="job-d")
    api.finish("job-d", {"D.dng": 1})
    time.sleep(0.002)
    api.finish("job-c", {"C.dng": 1})

    def page(cursor: str | None) -> tuple[list[str], str | None]:
        query = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        status, _, doc = api.call("GET", "/jobs", query=query)
        assert status == 200
        return [j["job_id"] for j in doc["jobs"]], doc["next_cursor"]

    first, cursor = page(None)
    assert first == ["job-c"]
    time.sleep(0.002)
    _create(api, {"e.dng": 1})
    api.finish("job-f", {"F.dng": 1})
    rest: list[str] = []
    while cursor is not None:
        jobs, cursor = page(cursor)
        rest += jobs
    assert rest == ["job-d", created, "job-a"]
    assert "Scan" not in calls and "Query" in calls


def test_unknown_routes_are_404_and_wrong_methods_405_in_json(api: Api) -> None:
    status, _, doc = api.call("GET", "/nowhere")
    assert status == 404 and doc["error"] == "not_found"
    status, headers, doc = api.call("PUT", "/jobs")
    assert status == 405 and headers["allow"] == "GET, POST"


def test_an_unexpected_failure_is_a_json_500_that_does_not_log_the_token(
    api: Api, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(*_: Any) -> None:
        raise RuntimeError("dynamodb fell over")

    monkeypatch.setattr(api.service.shares, "get", boom)
    token = tokens.issue().token
    status, _, doc = api.call("GET", f"/share/{token}")
    assert status == 500 and doc["error"] == "internal" and "req-1" in doc["message"]
    assert token not in capsys.readouterr().out
