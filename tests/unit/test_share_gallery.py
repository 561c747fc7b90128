"""What a share's client sees and what its photographer learns of it: friendly pages for
links that cannot be opened, rendition labels, the studio's name, logo and colour, the
share's message, the counts of views and downloads (a failing count never costs the
client anything), and extending a link. Over moto's in-process AWS through the API's
handler."""

# The `api` fixture comes from test_api; each test names it as a parameter.
# ruff: noqa: F811
from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import pytest
from botocore.exceptions import ClientError
from pydantic import ValidationError

from darkroom import branding, durations, names
from darkroom.api.models import iso
from darkroom.aws.table import ConditionFailed
from darkroom.recipes import parse_recipe
from darkroom.settings import ApiSettings
from tests.unit.test_api import REGION, Api, api, follow  # noqa: F401

HTML = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
DAY = 86400


def _labelled_job(api: Api, job_id: str) -> None:
    """A delivered job whose recipe labels its renditions."""
    recipe = parse_recipe(
        {"renditions": [{"name": "web", "label": "Screen & web"}, {"name": "thumb"}]}
    )
    arn = f"arn:aws:states:{REGION}:123456789012:execution:{names.state_machine_name()}:{job_id}"
    api.service.jobs.register(
        job_id=job_id,
        execution_arn=arn,
        files=["A.dng", "B.dng"],
        name="Wedding <b>",
        recipe=recipe.model_dump(mode="json"),
    )
    api.develop(job_id, arn, ["A.dng", "B.dng"])


def _style_hash(html: str) -> str:
    css = re.search(r"<style>(.*?)</style>", html, re.S)
    assert css, html
    return base64.b64encode(hashlib.sha256(css.group(1).encode()).digest()).decode()


def _assert_client_page(headers: dict[str, str], html: str) -> None:
    """The gallery's strict CSP, no referrer, no index, and a page that fits a phone."""
    policy = headers["content-security-policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert f"style-src 'sha256-{_style_hash(html)}'" in policy
    assert "'unsafe-inline'" not in policy and "<script>" not in html
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-robots-tag"] == "noindex, nofollow"
    assert headers["content-type"].startswith("text/html")
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html


# -- friendly pages -------------------------------------------------------------------
def test_a_browser_gets_a_friendly_page_for_an_unknown_revoked_or_expired_link(
    api: Api,
) -> None:
    api.finish("shoot", {"A.dng": 1})
    unknown = "x" * 43
    status, headers, html = api.call("GET", f"/share/{unknown}", headers=HTML)
    assert status == 404
    _assert_client_page(headers, html)
    assert "This link does not work" in html and "ask your photographer for a new link" in html

    revoked = api.share("shoot")
    assert api.call("DELETE", f"/jobs/shoot/shares/{revoked['share_id']}")[0] == 204
    expired = api.share("shoot", expires_in=60)
    api.now[0] += 61
    for token in (revoked["token"], expired["token"]):
        for path in (f"/share/{token}", f"/share/{token}/files/A.dng/web"):
            status, headers, html = api.call("GET", path, headers=HTML)
            assert status == 410, path
            _assert_client_page(headers, html)
            assert "no longer active" in html
            assert "Please ask your photographer for a new link." in html
            assert token not in html


def test_a_mistyped_share_path_is_a_friendly_page_too_and_other_paths_stay_json(
    api: Api,
) -> None:
    status, headers, html = api.call("GET", f"/share/{'x' * 43}/photos", headers=HTML)
    assert status == 404 and "This link does not work" in html
    _assert_client_page(headers, html)
    status, _, doc = api.call("GET", "/no/such/route", headers=HTML)
    assert (status, doc["error"]) == (404, "not_found")


def test_api_clients_keep_the_json_errors(api: Api) -> None:
    api.finish("shoot", {"A.dng": 1})
    share = api.share("shoot")
    api.call("DELETE", f"/jobs/shoot/shares/{share['share_id']}")
    for accept in (None, "application/json", "*/*"):
        headers = {"accept": accept} if accept else {}
        status, got, doc = api.call("GET", f"/share/{share['token']}", headers=headers)
        assert (status, doc["error"]) == (410, "gone")
        assert got["content-type"] == "application/json"
        status, _, doc = api.call("GET", f"/share/{'y' * 43}", headers=headers)
        assert (status, doc["error"]) == (404, "not_found")


def test_a_busy_job_and_a_missing_photo_are_friendly_pages_too(api: Api) -> None:
    api.finish("shoot", {"A.dng": 1})
    token = api.share("shoot")["token"]
    status, headers, html = api.call("GET", f"/share/{token}/files/Z.dng/web", headers=HTML)
    assert status == 404 and "This link does not work" in html
    _assert_client_page(headers, html)
    # The job's record gone from under its share: what a job being erased looks like.
    job = api.service.jobs.get("shoot")
    api.ddb.update_item(
        TableName=names.JOBS_TABLE,
        Key={"job_id": {"S": job.job_id}, "sk": {"S": names.JOB_ITEM}},
        UpdateExpression="REMOVE delivered",
    )
    status, headers, html = api.call("GET", f"/share/{token}", headers=HTML)
    assert status == 409 and "Your photos are almost ready" in html
    _assert_client_page(headers, html)


# -- what the client sees -------------------------------------------------------------
def test_renditions_and_download_all_carry_the_recipes_labels_escaped(api: Api) -> None:
    _labelled_job(api, "labelled")
    token = api.share("labelled")["token"]
    doc = api.call("GET", f"/share/{token}")[2]
    labels = {r["rendition"]: r["label"] for r in doc["files"][0]["renditions"]}
    assert labels == {"web": "Screen & web", "thumb": "Thumbnail"}
    _, _, html = api.call("GET", f"/share/{token}", headers=HTML)
    assert ">Screen &amp; web</a>" in html and ">Thumbnail</a>" in html
    assert ">web</a>" not in html and ">thumb</a>" not in html
    assert "<h1>Wedding &lt;b&gt;</h1>" in html


def test_the_studio_and_the_shares_message_are_shown_escaped(api: Api) -> None:
    api.service.settings = api.service.settings.model_copy(
        update={
            names.STUDIO_NAME: 'Light & "Shade" <Studio>',
            names.STUDIO_LOGO_URL: "https://cdn.example.test/logo.png?v=1&x=2",
            names.STUDIO_ACCENT_COLOUR: "#f5d76e",
        }
    )
    api.finish("shoot", {"A.dng": 1})
    note = "Dear Ana & Tom,\n<script>alert(1)</script> enjoy!"
    token = api.share("shoot", message=note)["token"]
    doc = api.call("GET", f"/share/{token}")[2]
    assert doc["message"] == note
    assert doc["studio"] == {
        "name": 'Light & "Shade" <Studio>',
        "logo_url": "https://cdn.example.test/logo.png?v=1&x=2",
        "accent_colour": "#f5d76e",
    }
    status, headers, html = api.call("GET", f"/share/{token}", headers=HTML)
    assert status == 200
    _assert_client_page(headers, html)
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<span>Light &amp; &quot;Shade&quot; &lt;Studio&gt;</span>" in html
    assert 'src="https://cdn.example.test/logo.png?v=1&amp;x=2"' in html
    assert "https://cdn.example.test" in headers["content-security-policy"].split("img-src")[1]
    # A pale accent gets dark text on its buttons.
    assert "--button:#f5d76e;--on-accent:#111111" in html
    # The friendly pages say who the studio is too.
    api.now[0] += 8 * DAY
    status, headers, html = api.call("GET", f"/share/{token}", headers=HTML)
    assert status == 410 and "Light &amp; &quot;Shade&quot;" in html
    _assert_client_page(headers, html)


@pytest.mark.parametrize(
    ("message", "why"),
    [("x" * 1001, "at most 1000 characters"), ("bell\x07", "no control characters")],
)
def test_a_share_message_too_long_or_not_text_is_refused(api: Api, message: str, why: str) -> None:
    api.finish("shoot", {"A.dng": 1})
    status, _, doc = api.call("POST", "/jobs/shoot/shares", {"message": message})
    assert status == 400 and why in doc["message"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (names.STUDIO_ACCENT_COLOUR, "red; background:url(x)"),
        (names.STUDIO_ACCENT_COLOUR, "#12345"),
        (names.STUDIO_LOGO_URL, "http://cdn.example.test/logo.png"),
        (names.STUDIO_LOGO_URL, "https://cdn.example.test/a.png; script-src *"),
        (names.STUDIO_LOGO_URL, "javascript:alert(1)"),
        (names.STUDIO_NAME, "x" * 81),
        (names.STUDIO_NAME, "Studio\u202e"),
    ],
)
def test_studio_settings_that_could_break_a_page_or_its_csp_are_refused_at_start_up(
    field: str, value: str
) -> None:
    with pytest.raises(ValidationError):
        ApiSettings.model_validate(
            {
                "raw_bucket": "r",
                "processed_bucket": "p",
                "jobs_table": "j",
                "uploads_table": "u",
                "shares_table": "s",
                "state_machine_arn": "arn",
                field: value,
            }
        )


def test_studio_settings_are_normalised() -> None:
    assert branding.accent_colour("#ABC") == "#aabbcc"
    assert branding.accent_colour("") == branding.DEFAULT_ACCENT_COLOUR
    assert branding.studio_name("  Light   Studio ") == "Light Studio"
    assert branding.logo_url("http://127.0.0.1:4600/logo.png") == "http://127.0.0.1:4600/logo.png"


# -- counts ---------------------------------------------------------------------------
def _listed(api: Api, job_id: str) -> list[dict[str, Any]]:
    status, _, doc = api.call("GET", f"/jobs/{job_id}/shares")
    assert status == 200, doc
    return list(doc["shares"])


def test_views_and_downloads_are_counted_per_share(api: Api) -> None:
    api.finish("shoot", {"A.dng": 1, "B.dng": 1})
    first = api.share("shoot", message="for the couple")
    api.now[0] += 1
    second = api.share("shoot")
    token = first["token"]
    api.call("GET", f"/share/{token}", headers=HTML)
    page = api.call("GET", f"/share/{token}", query={"limit": "1"})[2]
    # A further page is the same visit.
    api.call("GET", f"/share/{token}", query={"cursor": page["next_cursor"]})
    rendition = page["files"][0]["renditions"][0]
    assert follow(api, rendition["url"])[0] == 302  # viewed inline: not a download
    assert follow(api, rendition["download_url"])[0] == 302
    listed = _listed(api, "shoot")
    assert [s["share_id"] for s in listed] == [second["share_id"], first["share_id"]]
    assert {s["share_id"]: (s["views"], s["downloads"]) for s in listed} == {
        first["share_id"]: (2, 1),
        second["share_id"]: (0, 0),
    }
    assert listed[1]["message"] == "for the couple" and listed[1]["state"] == "active"
    assert "token" not in listed[1] and "token_sha256" not in listed[1]


def test_a_count_that_fails_never_breaks_the_page_or_the_download(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.finish("shoot", {"A.dng": 1})
    token = api.share("shoot")["token"]
    calls: list[str] = []

    def throttled(share_id: str, counter: str) -> None:
        calls.append(counter)
        raise ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}},
            "UpdateItem",
        )

    monkeypatch.setattr(api.service.shares, "count", throttled)
    status, _, html = api.call("GET", f"/share/{token}", headers=HTML)
    assert status == 200 and "<figure>" in html
    doc = api.call("GET", f"/share/{token}")[2]
    status, headers, _ = follow(api, doc["files"][0]["renditions"][0]["download_url"])
    assert status == 302 and headers["location"].startswith("https://")
    assert calls == [names.SHARE_VIEWS, names.SHARE_VIEWS, names.SHARE_DOWNLOADS]


def test_a_count_on_a_share_erased_meanwhile_does_not_bring_it_back(api: Api) -> None:
    api.finish("shoot", {"A.dng": 1})
    share = api.share("shoot")
    api.service.shares.delete(share["share_id"])
    with pytest.raises(ConditionFailed):
        api.service.shares.count(share["share_id"], names.SHARE_VIEWS)
    assert api.service.shares.get(share["share_id"]) is None


# -- extending --------------------------------------------------------------------------
def test_a_link_is_extended_from_its_expiry_or_from_now_once_expired(api: Api) -> None:
    api.finish("shoot", {"A.dng": 1})
    share = api.share("shoot", expires_in=DAY)
    path = f"/jobs/shoot/shares/{share['share_id']}/extend"
    status, _, doc = api.call("POST", path, {"extend_by": 30 * DAY})
    assert status == 200, doc
    assert doc["expires_at"] == iso(api.now[0] + 31 * DAY) and doc["state"] == "active"
    api.now[0] += 40 * DAY
    assert api.call("GET", f"/share/{share['token']}")[0] == 410
    assert _listed(api, "shoot")[0]["state"] == "expired"
    status, _, doc = api.call("POST", path, {"extend_by": 7 * DAY})
    assert doc["expires_at"] == iso(api.now[0] + 7 * DAY)
    assert api.call("GET", f"/share/{share['token']}")[0] == 200


def test_an_extension_past_the_longest_life_or_of_a_revoked_link_is_refused(api: Api) -> None:
    api.finish("shoot", {"A.dng": 1})
    share = api.share("shoot", expires_in=30 * DAY)
    path = f"/jobs/shoot/shares/{share['share_id']}/extend"
    status, _, doc = api.call("POST", path, {"extend_by": 61 * DAY})
    assert status == 400
    assert doc["message"] == (
        "extend_by would keep the link for 91 days; a link lives at most 90 days from now"
    )
    status, _, doc = api.call("POST", path, {"extend_by": 91 * DAY})
    assert status == 400 and "between 1 second and 90 days" in doc["message"]
    unknown = "/jobs/shoot/shares/0123456789abcdef0123/extend"
    assert api.call("POST", unknown, {"extend_by": 60})[0] == 404
    api.call("DELETE", f"/jobs/shoot/shares/{share['share_id']}")
    status, _, doc = api.call("POST", path, {"extend_by": DAY})
    assert status == 409 and "revoked" in doc["message"]
    assert _listed(api, "shoot")[0]["state"] == "revoked"


def test_a_share_life_out_of_range_is_refused_in_words(api: Api) -> None:
    api.finish("shoot", {"A.dng": 1})
    status, _, doc = api.call("POST", "/jobs/shoot/shares", {"expires_in": 100 * DAY})
    assert status == 400
    assert doc["message"] == (
        "expires_in must be between 1 second and 90 days (7776000 seconds); got 8640000"
    )


@pytest.mark.parametrize(
    ("text", "seconds", "words"),
    [
        ("3600", 3600, "1 hour"),
        ("1h", 3600, "1 hour"),
        ("90m", 5400, "90 minutes"),
        ("36H", 129600, "36 hours"),
        ("30d", 30 * DAY, "30 days"),
        ("2w", 14 * DAY, "14 days"),
        ("61s", 61, "61 seconds"),
    ],
)
def test_durations_read_and_say_as_people_write_them(text: str, seconds: int, words: str) -> None:
    assert durations.parse(text) == seconds
    assert durations.words(seconds) == words


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (30 * DAY - 2, "30 days"),
        (7 * DAY - 3600 - 23 * 60, "6 days 22 hours"),
        (DAY + 5 * 60, "1 day"),
        (2 * 3600 + 5 * 60 + 20, "2 hours 5 minutes"),
        (45, "45 seconds"),
    ],
)
def test_a_time_left_is_said_in_at_most_two_units(seconds: int, said: str) -> None:
    assert durations.approximately(seconds) == said
