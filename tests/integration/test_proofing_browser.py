"""Proofing in a real browser: headless Chromium opens a proofing share, clicks two
photos' "Add to favourites" (proofing.js sends them, under the page's CSP), leaves a
note on one, and the studio's `darkroom favourites` lists exactly those two. Without
script the same form posts and comes back to the photo."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from darkroom.local.cloud import LocalCloud
from tests.integration.test_cli import run
from tests.integration.test_gallery_browser import _shared_job, browser  # noqa: F401

pytestmark = pytest.mark.integration


def _proofing_link(api: str, tmp_path: Path) -> tuple[str, str]:
    """A finished job of three photos and a proofing link to it."""
    viewing = _shared_job(api, tmp_path, 3)
    job_id = requests.get(viewing, timeout=30).json()["job"]["job_id"]
    share = requests.post(f"{api}/jobs/{job_id}/shares", json={"proofing": True}, timeout=30)
    assert share.status_code == 201, share.text
    return job_id, str(share.json()["url"])


def _wait(condition: object, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_two_favourites_clicked_in_the_gallery_are_what_the_studio_lists(
    browser: object,  # noqa: F811
    cloud: LocalCloud,
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    job_id, link = _proofing_link(cloud.api_url, tmp_path)
    browser.set_window_size(1280, 800)
    browser.get(link)
    forms = browser.find_elements(By.CSS_SELECTOR, "form.proof")
    names = [f.text for f in browser.find_elements(By.CSS_SELECTOR, "figcaption")]
    assert len(forms) == len(names) == 3
    url_before = browser.current_url
    picked = [names[0], names[2]]
    forms[2].find_element(By.CSS_SELECTOR, "textarea").send_keys("a warmer crop, please")
    for i in (0, 2):
        form = forms[i]
        form.find_element(By.CSS_SELECTOR, "button[value='1']").click()
        _wait(
            lambda form=form: form.get_attribute("data-favourite") == "1",
            f"favourite {i} not marked",
        )
        assert "Favourite" in form.find_element(By.CSS_SELECTOR, "p.mark").text
    # The script kept the client on the page (no form navigation): its PUTs went
    # through under the page's CSP, or the marks would not show.
    assert browser.current_url == url_before

    listed = run("favourites", job_id, "--endpoint-url", cloud.endpoint_url)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == picked
    notes = requests.get(f"{cloud.api_url}/jobs/{job_id}/favourites", timeout=30).json()
    assert notes["merged"][1]["notes"][0]["note"] == "a warmer crop, please"

    # Unmarked again from the page, it leaves the list.
    forms = browser.find_elements(By.CSS_SELECTOR, "form.proof")
    forms[0].find_element(By.CSS_SELECTOR, "button[value='0']").click()
    _wait(lambda: forms[0].get_attribute("data-favourite") == "0", "not unmarked")
    listed = run("favourites", job_id, "--endpoint-url", cloud.endpoint_url)
    assert listed.stdout.splitlines() == [names[2]]


def test_without_script_the_form_marks_and_returns_to_the_photo(
    cloud: LocalCloud, tmp_path: Path
) -> None:
    job_id, link = _proofing_link(cloud.api_url, tmp_path)
    page = requests.get(link, headers={"accept": "text/html"}, timeout=30).text
    first = requests.get(link, timeout=30).json()["files"][0]["name"]
    action = page.split('<form class="proof"', 1)[1].split('action="', 1)[1].split('"', 1)[0]
    answer = requests.post(
        action.replace("&amp;", "&"),
        data={"favourite": "1", "note": "this one"},
        headers={"accept": "text/html"},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"].startswith(f"{link}#p-")
    back = requests.get(answer.headers["location"], headers={"accept": "text/html"}, timeout=30)
    assert "\u2605 Favourite" in back.text and "this one" in back.text
    listed = run("favourites", job_id, "--endpoint-url", cloud.endpoint_url)
    assert listed.stdout.splitlines() == [first]


def test_photos_loaded_by_scrolling_get_the_same_favourite_form(
    browser: object,  # noqa: F811
    cloud: LocalCloud,
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    job_id, link = _proofing_link(cloud.api_url, tmp_path)
    last = requests.get(link, timeout=30).json()["files"][-1]["name"]
    marked = requests.put(f"{link}/favourites/{last}", json={"note": "keep"}, timeout=30)
    assert marked.status_code == 200, marked.text
    browser.set_window_size(1000, 700)
    browser.get(f"{link}?limit=1")  # one photo a page: the others come by scrolling

    def all_forms() -> bool:
        browser.execute_script("window.scrollTo(0, document.body.scrollHeight)")  # type: ignore[attr-defined]
        return len(browser.find_elements(By.CSS_SELECTOR, "form.proof")) == 3  # type: ignore[attr-defined]

    _wait(all_forms, "the scrolled photos got no form", timeout=60)
    forms = browser.find_elements(By.CSS_SELECTOR, "form.proof")
    # The appended one that was marked shows so, with its note.
    assert forms[2].get_attribute("data-favourite") == "1"
    assert forms[2].find_element(By.CSS_SELECTOR, "textarea").get_attribute("value") == "keep"
    forms[1].find_element(By.CSS_SELECTOR, "button[value='1']").click()
    _wait(lambda: forms[1].get_attribute("data-favourite") == "1", "not marked")
    listed = run("favourites", job_id, "--endpoint-url", cloud.endpoint_url)
    names = [f.text for f in browser.find_elements(By.CSS_SELECTOR, "figcaption")]
    assert listed.stdout.splitlines() == names[1:]
