"""The client's gallery on the local cloud, through the real API function: only what is
delivered (labelled as the recipe says), friendly pages for links that cannot be opened,
the counts each share keeps, and a count that fails in DynamoDB costing the client
nothing."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from darkroom import names
from darkroom.imaging.fixtures import make_demo_shoot, write_corrupt_raw
from darkroom.local.cloud import LocalCloud
from tests.integration.test_api import create, declared, put_with_curl, wait_done

pytestmark = pytest.mark.integration

HTML = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
RECIPE = {
    "renditions": [
        {"name": "web", "long_edge": 400, "label": "Screen & phone"},
        {"name": "thumb", "long_edge": 120},
    ]
}


@pytest.fixture(scope="module")
def job(cloud: LocalCloud, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A finished job of two photos and one that could not develop."""
    api = cloud.api_url
    folder = tmp_path_factory.mktemp("gallery") / "shoot"
    files = make_demo_shoot(folder, count=2, width=300, height=200)
    files.append(write_corrupt_raw(folder / "IMG_BROKEN.dng", "garbage"))
    created = create(api, declared(files), name="Ana & Tom", recipe=RECIPE).json()
    by_name = {p.name: p for p in files}
    for upload in created["uploads"]:
        assert put_with_curl(upload["url"], by_name[upload["name"]]) == 200
    job_id = str(created["job_id"])
    assert requests.post(f"{api}/jobs/{job_id}/submit", timeout=30).status_code == 202
    assert wait_done(api, job_id)["status"] == "DONE_WITH_ERRORS"
    return job_id


def _share(cloud: LocalCloud, job_id: str, **body: Any) -> dict[str, Any]:
    response = requests.post(f"{cloud.api_url}/jobs/{job_id}/shares", json=body, timeout=30)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _counts(cloud: LocalCloud, job_id: str) -> dict[str, tuple[int, int]]:
    listed = requests.get(f"{cloud.api_url}/jobs/{job_id}/shares", timeout=30)
    assert listed.status_code == 200, listed.text
    return {s["share_id"]: (s["views"], s["downloads"]) for s in listed.json()["shares"]}


def test_the_client_sees_only_what_is_delivered_labelled_as_the_recipe_says(
    cloud: LocalCloud, job: str
) -> None:
    share = _share(cloud, job, message="Thank you <3")
    doc = requests.get(share["url"], timeout=30).json()
    listed = [f["name"] for f in doc["files"]]
    assert len(listed) == 2 and "IMG_BROKEN.dng" not in listed
    assert doc["job"]["files_done"] == 2 and "files_failed" not in doc["job"]
    assert doc["message"] == "Thank you <3"
    labels = {r["rendition"]: r["label"] for r in doc["files"][0]["renditions"]}
    assert labels == {"web": "Screen & phone", "thumb": "Thumbnail"}
    assert {a["label"] for a in doc["archives"].values()} == {"Screen & phone", "Thumbnail"}
    page = requests.get(share["url"], headers=HTML, timeout=30)
    assert page.status_code == 200
    html = page.text
    assert "2 photos." in html and "BROKEN" not in html and "could not" not in html
    assert "Screen &amp; phone" in html and "Thank you &lt;3" in html
    # The photographer still sees the failure.
    view = requests.get(f"{cloud.api_url}/jobs/{job}", timeout=30).json()
    assert view["files_failed"] == 1


def test_a_link_that_cannot_be_opened_is_a_friendly_page_for_a_browser_only(
    cloud: LocalCloud, job: str
) -> None:
    share = _share(cloud, job)
    revoke = f"{cloud.api_url}/jobs/{job}/shares/{share['share_id']}"
    assert requests.delete(revoke, timeout=30).status_code == 204
    first = requests.get(share["url"], timeout=30).json()["error"]
    for url, status, words in (
        (share["url"], 410, "ask your photographer for a new link"),
        (f"{share['url']}/files/DRM_0001.dng/web?download=1", 410, "no longer active"),
        (f"{cloud.api_url}/share/{'x' * 43}", 404, "This link does not work"),
    ):
        page = requests.get(url, headers=HTML, timeout=30, allow_redirects=False)
        assert page.status_code == status, url
        assert page.headers["content-type"].startswith("text/html")
        assert words in page.text
        assert page.headers["referrer-policy"] == "no-referrer"
        assert "default-src 'none'" in page.headers["content-security-policy"]
        api_client = requests.get(url, timeout=30, allow_redirects=False)
        assert api_client.status_code == status
        assert api_client.headers["content-type"] == "application/json"
    assert first == "gone"


def test_each_share_counts_its_views_and_downloads(cloud: LocalCloud, job: str) -> None:
    counted = _share(cloud, job)
    other = _share(cloud, job)
    requests.get(counted["url"], headers=HTML, timeout=30)
    doc = requests.get(counted["url"], timeout=30).json()
    rendition = doc["files"][0]["renditions"][0]
    assert requests.get(rendition["url"], timeout=30).status_code == 200  # a view, inline
    downloaded = requests.get(rendition["download_url"], timeout=30)
    assert downloaded.status_code == 200 and downloaded.content
    archive = next(iter(doc["archives"].values()))
    assert requests.get(archive["url"], timeout=30).content.startswith(b"PK")
    counts = _counts(cloud, job)
    assert counts[counted["share_id"]] == (2, 2)
    assert counts[other["share_id"]] == (0, 0)


def test_a_count_that_fails_in_dynamodb_never_breaks_the_page_or_the_download(
    cloud: LocalCloud, job: str
) -> None:
    share = _share(cloud, job)
    # A counter that is not a number: DynamoDB refuses every ADD to it
    # (ValidationException), inside the API function, midway through each request.
    cloud.client("dynamodb").update_item(
        TableName=names.SHARES_TABLE,
        Key={names.SHARE_ID: {"S": share["share_id"]}},
        UpdateExpression="SET #v = :text, #d = :text",
        ExpressionAttributeNames={"#v": names.SHARE_VIEWS, "#d": names.SHARE_DOWNLOADS},
        ExpressionAttributeValues={":text": {"S": "not a number"}},
    )
    page = requests.get(share["url"], headers=HTML, timeout=30)
    assert page.status_code == 200 and page.text.count("<figure>") == 2
    doc = requests.get(share["url"], timeout=30).json()
    downloaded = requests.get(doc["files"][0]["renditions"][0]["download_url"], timeout=30)
    assert downloaded.status_code == 200 and downloaded.content[:2] == b"\xff\xd8"
    archive = requests.get(next(iter(doc["archives"].values()))["url"], timeout=30)
    assert archive.status_code == 200 and archive.content.startswith(b"PK")
    item = cloud.client("dynamodb").get_item(
        TableName=names.SHARES_TABLE, Key={names.SHARE_ID: {"S": share["share_id"]}}
    )["Item"]
    assert item[names.SHARE_VIEWS] == {"S": "not a number"}, "the ADD did fail"
    # The photographer's listing reads an unreadable count as none.
    assert _counts(cloud, job)[share["share_id"]] == (0, 0)
