"""Proofing through a share: favourites and notes, their limits (note length, delivered
files only, a rate per link kept in DynamoDB), the answers for links that do not allow
it (JSON and pages), the gallery's forms, the photographer's list, and which files a
reprocess of some files develops. Over moto's in-process AWS through the API's handler."""

# The `api` fixture comes from test_api; each test names it as a parameter.
# ruff: noqa: F811
from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from darkroom import names, pipeline
from darkroom.api.models import MAX_FAVOURITE_NOTE
from darkroom.api.proofing import anchor
from darkroom.cli.jobs_cmd import chosen_files
from darkroom.errors import InvalidJob
from tests.unit.test_api import Api, api  # noqa: F401

HTML = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
FORM = {**HTML, "content-type": "application/x-www-form-urlencoded"}


def _proofing(api: Api, files: dict[str, int] | None = None) -> str:
    api.finish("shoot", files or {"A.dng": 1, "B.dng": 1, "C, 2.dng": 1})
    return str(api.share("shoot", proofing=True)["token"])


def _mark(api: Api, token: str, name: str, note: str | None = None) -> tuple[int, Any]:
    body = {"note": note} if note is not None else {}
    status, _, doc = api.call("PUT", f"/share/{token}/favourites/{quote(name, safe='')}", body)
    return status, doc


def test_a_client_marks_and_unmarks_favourites_with_notes(api: Api) -> None:
    token = _proofing(api)
    assert _mark(api, token, "A.dng", "warmer, please")[0] == 200
    assert _mark(api, token, "C, 2.dng")[0] == 200
    # Marking again replaces the note; unmarking is idempotent.
    assert _mark(api, token, "A.dng", "crop tighter")[1]["note"] == "crop tighter"
    path = f"/share/{token}/favourites/{quote('C, 2.dng', safe='')}"
    assert api.call("DELETE", path)[0] == 204
    assert api.call("DELETE", path)[0] == 204
    shared = api.call("GET", f"/share/{token}")[2]
    assert shared["proofing"] is True
    marks = {f["name"]: f.get("favourite") for f in shared["files"]}
    assert marks["A.dng"]["note"] == "crop tighter" and marks["C, 2.dng"] is None

    listed = api.call("GET", "/jobs/shoot/favourites")[2]
    assert [m["file_name"] for m in listed["merged"]] == ["A.dng"]
    (share_id,) = listed["by_share"]
    assert listed["by_share"][share_id][0]["note"] == "crop tighter"


def test_favourites_never_touch_the_jobs_files_or_manifest(api: Api) -> None:
    token = _proofing(api)
    before = [r.model_dump() for r in api.service.jobs.files("shoot")]
    job_before = api.service.jobs.get("shoot")
    _mark(api, token, "A.dng", "yes")
    assert [r.model_dump() for r in api.service.jobs.files("shoot")] == before
    assert api.service.jobs.get("shoot") == job_before


def test_the_merged_list_puts_each_file_once_with_every_shares_note(api: Api) -> None:
    first = _proofing(api)
    second = api.share("shoot", proofing=True)["token"]
    _mark(api, first, "B.dng", "bride's pick")
    api.now[0] += 5
    _mark(api, second, "B.dng", "groom's pick")
    _mark(api, second, "A.dng")
    listed = api.call("GET", "/jobs/shoot/favourites")[2]
    assert [m["file_name"] for m in listed["merged"]] == ["A.dng", "B.dng"]
    notes = [n["note"] for n in listed["merged"][1]["notes"]]
    assert sorted(notes) == ["bride's pick", "groom's pick"]
    assert len(listed["by_share"]) == 2


@pytest.mark.parametrize(
    ("note", "why"),
    [
        ("x" * (MAX_FAVOURITE_NOTE + 1), "at most 500 characters"),
        ("bell\x07", "no control characters"),
    ],
)
def test_a_note_too_long_or_not_text_is_refused(api: Api, note: str, why: str) -> None:
    token = _proofing(api)
    status, doc = _mark(api, token, "A.dng", note)
    assert status == 400 and why in doc["message"], doc
    assert api.call("GET", "/jobs/shoot/favourites")[2]["merged"] == []


def test_a_note_of_the_longest_length_is_kept_whole(api: Api) -> None:
    token = _proofing(api)
    note = "é" * MAX_FAVOURITE_NOTE
    status, doc = _mark(api, token, "A.dng", note)
    assert (status, doc["note"]) == (200, note)
    listed = api.call("GET", "/jobs/shoot/favourites")[2]
    assert listed["merged"][0]["notes"][0]["note"] == note


def test_only_delivered_files_can_be_marked(api: Api) -> None:
    token = _proofing(api)
    for name in ("Z.dng", "../A.dng", "A.dng/web"):
        status, doc = _mark(api, token, name)
        assert (status, doc["error"]) == (404, "not_found"), name
    assert api.call("GET", "/jobs/shoot/favourites")[2]["merged"] == []


def test_a_share_without_proofing_refuses_writes_403_and_a_browser_gets_a_page(
    api: Api,
) -> None:
    api.finish("shoot", {"A.dng": 1})
    token = api.share("shoot")["token"]
    status, doc = _mark(api, token, "A.dng")
    assert (status, doc["error"]) == (403, "forbidden")
    assert "proofing" in doc["message"]
    status, headers, html = api.call(
        "POST", f"/share/{token}/favourites/A.dng", "favourite=1", headers=FORM
    )
    assert status == 403 and "Favourites are not open for this link" in html
    assert headers["content-type"].startswith("text/html")
    # The page of a viewing share has no forms, and its CSP allows none.
    status, headers, html = api.call("GET", f"/share/{token}", headers=HTML)
    assert "<form" not in html and "form-action 'none'" in headers["content-security-policy"]


def test_revoked_and_expired_links_refuse_writes_410(api: Api) -> None:
    token = _proofing(api)
    share_id = api.call("GET", "/jobs/shoot/shares")[2]["shares"][0]["share_id"]
    api.call("DELETE", f"/jobs/shoot/shares/{share_id}")
    status, doc = _mark(api, token, "A.dng")
    assert (status, doc["error"]) == (410, "gone")
    status, _, html = api.call(
        "POST", f"/share/{token}/favourites/A.dng", "favourite=1", headers=FORM
    )
    assert status == 410 and "no longer active" in html


def test_writes_past_the_rate_are_429_with_retry_after_until_the_minute_ends(api: Api) -> None:
    token = _proofing(api)
    limit = api.service.settings.proofing_writes_per_minute
    api.now[0] = 1_800_000_000.0 - 1_800_000_000.0 % 60 + 10  # 10 s into a window
    for _ in range(limit):
        assert _mark(api, token, "A.dng")[0] == 200
    status, headers, doc = api.call("PUT", f"/share/{token}/favourites/A.dng", {})
    assert (status, doc["error"]) == (429, "too_many_requests")
    assert headers["retry-after"] == "50" and doc["retry_after"] == 50
    status, _, html = api.call(
        "POST", f"/share/{token}/favourites/A.dng", "favourite=0", headers=FORM
    )
    assert status == 429 and "what you marked before is kept" in html
    # Another link of the same job has its own count; the next minute starts afresh.
    other = api.share("shoot", proofing=True)["token"]
    assert _mark(api, other, "B.dng")[0] == 200
    api.now[0] += 50
    assert _mark(api, token, "B.dng")[0] == 200
    # The counters are items of their own that DynamoDB's TTL removes.
    counters = api.ddb.scan(TableName=names.SHARES_TABLE)["Items"]
    rates = [i for i in counters if i["share_id"]["S"].startswith("rate#")]
    assert rates and all(int(i["expires_ttl"]["N"]) <= api.now[0] + 120 for i in rates)
    assert all("job_id" not in i for i in rates), "a counter is no share of the job"
    assert len(api.call("GET", "/jobs/shoot/shares")[2]["shares"]) == 2


def test_the_gallery_form_marks_and_returns_to_the_photo_without_script(api: Api) -> None:
    token = _proofing(api)
    status, headers, html = api.call("GET", f"/share/{token}", headers=HTML)
    policy = headers["content-security-policy"]
    assert "form-action https://api.example.test" in policy
    assert "https://api.example.test/assets/proofing.js" in policy
    assert '<script src="https://api.example.test/assets/proofing.js" defer></script>' in html
    spot = anchor("C, 2.dng")
    action = f"https://api.example.test/share/{token}/favourites/C%2C%202.dng"
    assert f'<form class="proof" id="{spot}" method="post" action="{action}"' in html
    assert f'maxlength="{MAX_FAVOURITE_NOTE}"' in html

    form = urlencode({"favourite": "1", "note": "<b>this one</b>", "page": "QS5kbmc"})
    status, headers, _ = api.call(
        "POST", f"/share/{token}/favourites/{quote('C, 2.dng', safe='')}", form, headers=FORM
    )
    assert status == 303
    assert headers["location"] == f"https://api.example.test/share/{token}?cursor=QS5kbmc#{spot}"
    html = api.call("GET", f"/share/{token}", headers=HTML)[2]
    item = re.search(f'<form class="proof" id="{spot}".*?</form>', html, re.S)
    assert item is not None
    assert "\u2605 Favourite" in item.group() and "&lt;b&gt;this one&lt;/b&gt;" in item.group()
    assert "Remove from favourites" in item.group()

    form = urlencode({"favourite": "0"})
    status, _, _ = api.call(
        "POST", f"/share/{token}/favourites/{quote('C, 2.dng', safe='')}", form, headers=FORM
    )
    assert status == 303
    assert api.call("GET", "/jobs/shoot/favourites")[2]["merged"] == []


def test_a_form_elsewhere_is_still_refused_as_not_json(api: Api) -> None:
    api.finish("shoot", {"A.dng": 1})
    status, _, doc = api.call("POST", "/jobs/shoot/shares", "proofing=1", headers=FORM)
    assert (status, doc["error"]) == (400, "bad_request")


def test_the_proofing_script_is_served_as_a_static_file(api: Api) -> None:
    status, headers, script = api.call("GET", "/assets/proofing.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    assert "favourites" not in headers.get("content-security-policy", "")
    assert 'method: want === "1" ? "PUT" : "DELETE"' in script


def test_a_failed_favourite_write_loses_no_earlier_mark(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = _proofing(api)
    _mark(api, token, "A.dng", "keep me")
    table = api.service.favourites._table

    def throttled(*args: Any, **kwargs: Any) -> Any:
        raise ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}},
            "UpdateItem",
        )

    monkeypatch.setattr(table, "update", throttled)
    status, doc = _mark(api, token, "B.dng", "lost?")
    assert status == 500 and doc["error"] == "internal"
    monkeypatch.undo()
    listed = api.call("GET", "/jobs/shoot/favourites")[2]
    assert [(m["file_name"], m["notes"][0].get("note")) for m in listed["merged"]] == [
        ("A.dng", "keep me")
    ]
    # The client tries again and it holds.
    assert _mark(api, token, "B.dng", "lost?")[0] == 200


# -- reprocessing some files ------------------------------------------------------------
def test_reprocess_of_unknown_names_or_no_favourites_is_400_and_starts_nothing(
    api: Api,
) -> None:
    _proofing(api)
    before = api.service.jobs.get("shoot")
    for body, said in (
        ({"files": ["A.dng", "Nope.dng"]}, "'Nope.dng'"),
        ({"files": []}, "at least one file"),
        ({"files": "favourites"}, "has no favourites"),
    ):
        status, _, doc = api.call("POST", "/jobs/shoot/reprocess", body)
        assert status == 400 and said in doc["message"], doc
    assert api.service.jobs.get("shoot") == before
    status, _, doc = api.call("POST", "/jobs/shoot/reprocess", {"files": "everything"})
    assert status == 400


def test_reprocess_of_favourites_starts_a_run_naming_them(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = _proofing(api)
    _mark(api, token, "C, 2.dng")
    _mark(api, token, "A.dng")
    started: list[dict[str, Any]] = []
    original = api.service.executions.start

    def start(name: str, payload: dict[str, Any]) -> Any:
        started.append(payload)
        return original(name, payload)

    monkeypatch.setattr(api.service.executions, "start", start)
    status, _, doc = api.call("POST", "/jobs/shoot/reprocess", {"files": "favourites"})
    assert status == 202, doc
    assert started[0]["files"] == ["A.dng", "C, 2.dng"]
    assert started[0]["selection"] == "favourites"


def test_a_run_of_some_files_registers_only_those_numbered_as_the_job(api: Api) -> None:
    files = ["A.dng", "B.dng", "C.dng"]
    for name in files:
        api.put_raw("shoot", name, 1)
    arn = "arn:aws:states:eu-west-1:123456789012:execution:sm:run-2"
    registered = pipeline.register_job(
        {"job_id": "shoot", "files": ["C.dng"], "selection": "names"},
        arn,
        raw_bucket=names.RAW_BUCKET,
        jobs=api.service.jobs,
        objects=api.service.objects,
        heartbeat_seconds=60,
        timeout_seconds=600,
        shard_size=1,
    )
    assert registered["file_count"] == 1 and len(registered["shards"]) == 1
    job = api.service.jobs.get("shoot")
    assert job.selection is not None and job.selection.model_dump() == {
        "kind": "names",
        "files": 1,
    }
    (record,) = api.service.jobs.files("shoot")
    assert (record.name, record.seq) == ("C.dng", 3)
    with pytest.raises(InvalidJob, match=r"not files of the job: Z\.dng"):
        pipeline.register_job(
            {"job_id": "shoot", "files": ["Z.dng"]},
            arn + "x",
            raw_bucket=names.RAW_BUCKET,
            jobs=api.service.jobs,
            objects=api.service.objects,
            heartbeat_seconds=60,
            timeout_seconds=600,
        )


def test_reprocess_files_option_reads_names_favourites_or_stdin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert chosen_files(None) is None
    assert chosen_files(["favourites"]) == "favourites"
    # A comma is part of a name, never a separator.
    assert chosen_files(["A, 1.dng", "B.dng"]) == ["A, 1.dng", "B.dng"]
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("A.dng\n\nB, 2.dng\n"))
    assert chosen_files(["-"]) == ["A.dng", "B, 2.dng"]


def test_favourites_command_prints_one_name_a_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from darkroom.cli import main, shares_cmd

    found = {
        "job_id": "shoot",
        "by_share": {"s1": []},
        "merged": [
            {"file_name": "A, 1.dng", "notes": [{"note": "warm"}]},
            {"file_name": "B.dng", "notes": [{}]},
        ],
    }

    class Client:
        def favourites(self, job_id: str) -> dict[str, Any]:
            return found

    monkeypatch.setattr(shares_cmd, "studio", lambda ctx: Client())
    result = CliRunner().invoke(main.app, ["favourites", "shoot"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:2] == ["A, 1.dng", "B.dng"]
    result = CliRunner().invoke(main.app, ["favourites", "shoot", "--json"])
    assert json.loads(result.stdout) == found


def test_a_photo_page_on_a_proofing_share_has_the_form_which_returns_to_it(api: Api) -> None:
    token = _proofing(api)
    name = quote("C, 2.dng", safe="")
    page = f"/share/{token}/view/{name}"
    status, headers, html = api.call("GET", page, headers=HTML)
    assert status == 200
    # The page stays script-free; only its form may post, and only to the API.
    policy = headers["content-security-policy"]
    assert "form-action https://api.example.test" in policy and "script-src" not in policy
    spot = anchor("C, 2.dng")
    action = f"https://api.example.test/share/{token}/favourites/{name}"
    assert f'<form class="proof" id="{spot}" method="post" action="{action}"' in html
    assert '<input type="hidden" name="back" value="photo">' in html
    assert "\u2606 Not a favourite" in html

    form = urlencode({"favourite": "1", "note": "print this", "back": "photo"})
    status, headers, _ = api.call("POST", f"/share/{token}/favourites/{name}", form, headers=FORM)
    assert status == 303
    assert headers["location"] == f"https://api.example.test{page}#{spot}"
    html = api.call("GET", page, headers=HTML)[2]
    assert "\u2605 Favourite" in html and "print this" in html and "Remove from favourites" in html
    # The gallery's form for the same photo says the same.
    gallery = api.call("GET", f"/share/{token}", headers=HTML)[2]
    item = re.search(f'<form class="proof" id="{spot}".*?</form>', gallery, re.S)
    assert item is not None and "\u2605 Favourite" in item.group()

    # Anything but the word returns to the gallery: `back` is never a place to go.
    form = urlencode({"favourite": "0", "back": "https://elsewhere.example/"})
    status, headers, _ = api.call("POST", f"/share/{token}/favourites/{name}", form, headers=FORM)
    assert (status, headers["location"]) == (303, f"https://api.example.test/share/{token}#{spot}")


def test_a_photo_page_on_a_viewing_share_has_no_form(api: Api) -> None:
    api.finish("shoot", {"A.dng": 1})
    token = api.share("shoot")["token"]
    status, headers, html = api.call("GET", f"/share/{token}/view/A.dng", headers=HTML)
    assert status == 200 and "<form" not in html
    assert "form-action 'none'" in headers["content-security-policy"]
