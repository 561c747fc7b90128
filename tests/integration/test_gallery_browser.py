"""The client's gallery page in a real browser: headless Chromium opens a share link,
further pages load as it scrolls, its previews load through the stable links (under the
page's CSP) and every link resolves; a revoked link shows the friendly page, at desktop
and phone sizes. Screenshots go to SCREENSHOTS (ignored by git) for a reviewer."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import pytest
import requests

from darkroom.imaging.fixtures import make_demo_shoot
from darkroom.local.cloud import LocalCloud

pytestmark = pytest.mark.integration

# Where a run leaves its screenshots: under .darkroom/, which git ignores.
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".darkroom" / "screenshots"
# Desktop, and a phone (CSS pixels of an iPhone 12 to 15).
SIZES = {"desktop": (1280, 800, False), "mobile": (390, 844, True)}

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# The machine's network is closed: Chromium must not reach for Google's services.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip(
            "Chromium is not installed: `make browser` (apt-get install chromium "
            "chromium-driver) enables this test"
        )
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not download drivers
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _shared_job(api: str, tmp_path: Path, count: int) -> str:
    files = make_demo_shoot(tmp_path / "shoot", count=count, width=600, height=400)
    created = requests.post(
        f"{api}/jobs",
        json={
            "name": "Gallery shoot",
            "files": [{"name": p.name, "size": p.stat().st_size} for p in files],
        },
        timeout=30,
    ).json()
    for upload, path in zip(created["uploads"], files, strict=True):
        with path.open("rb") as body:
            assert requests.put(upload["url"], data=body, timeout=60).status_code == 200
    job_id = created["job_id"]
    assert requests.post(f"{api}/jobs/{job_id}/submit", timeout=30).status_code == 202
    deadline = time.monotonic() + 240
    while requests.get(f"{api}/jobs/{job_id}", timeout=30).json()["status"] != "DONE":
        assert time.monotonic() < deadline, "job did not finish"
        time.sleep(0.5)
    share = requests.post(f"{api}/jobs/{job_id}/shares", json={}, timeout=30).json()
    return str(share["url"])


def test_the_gallery_loads_every_page_as_it_scrolls_and_each_link_resolves(
    browser: object, cloud: LocalCloud, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    count = 5
    link = _shared_job(cloud.api_url, tmp_path, count)
    browser.set_window_size(1000, 700)
    # Two photos a page: the rest come as the page is scrolled.
    browser.get(f"{link}?limit=2")
    assert browser.title == "Gallery shoot"
    deadline = time.monotonic() + 60
    while len(browser.find_elements(By.CSS_SELECTOR, "ul.gallery figure")) < count:
        assert time.monotonic() < deadline, "further pages did not load"
        browser.execute_script("window.scrollTo(0, document.body.scrollHeight)")
        time.sleep(0.3)
    assert not browser.find_elements(By.CSS_SELECTOR, "a.more"), "the last page was loaded"
    images = browser.find_elements(By.CSS_SELECTOR, "ul.gallery img")
    assert len(images) == count
    # Previews are loaded by the browser itself, through the stable links' redirects,
    # under the page's CSP.
    deadline = time.monotonic() + 30
    while not all(
        browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", i)
        for i in images
    ):
        assert time.monotonic() < deadline, "previews did not load"
        browser.execute_script("window.scrollTo(0, 0)")
        time.sleep(0.2)
    browser.execute_script("window.scrollTo(0, 0)")
    screenshot = tmp_path / "gallery.png"
    browser.save_screenshot(str(screenshot))
    if os.environ.get("DARKROOM_GALLERY_SCREENSHOT"):
        shutil.copy(screenshot, os.environ["DARKROOM_GALLERY_SCREENSHOT"])
    offered = []
    cursor = None
    while True:
        page = requests.get(link, params={"cursor": cursor} if cursor else {}, timeout=30).json()
        offered += page["files"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [f.text for f in browser.find_elements(By.CSS_SELECTOR, "figcaption")] == [
        f["name"] for f in offered
    ]
    html = browser.page_source
    assert "X-Amz" not in html, "no presigned URL in the page"
    downloads = browser.find_elements(By.CSS_SELECTOR, "figure a[download]")
    renditions = [r for f in offered for r in f["renditions"]]
    assert sorted(a.get_attribute("download") or "" for a in downloads) == sorted(
        r["filename"] for r in renditions
    )
    for a in downloads:
        href = a.get_attribute("href")
        assert href and href.startswith(f"{link}/files/") and href.endswith("?download=1")
        response = requests.get(href, timeout=30)
        assert response.status_code == 200, href
        assert response.headers["content-disposition"].startswith("attachment;")
        assert response.headers["content-type"] == "image/jpeg"
    views = browser.find_elements(By.CSS_SELECTOR, "figure a:not([download])")
    assert len(views) == len(renditions)
    for a in views:
        response = requests.get(a.get_attribute("href") or "", timeout=30)
        assert response.status_code == 200
        assert response.headers["content-disposition"].startswith("inline;")


def test_without_script_the_gallery_links_to_its_next_page(
    cloud: LocalCloud, tmp_path: Path
) -> None:
    link = _shared_job(cloud.api_url, tmp_path, 3)
    html = {"accept": "text/html"}
    first = requests.get(link, params={"limit": 2}, headers=html, timeout=30).text
    assert first.count("<figure>") == 2
    more = re.search(r'<a class="more" href="([^"]+)">More photos</a>', first)
    assert more, first
    rest = requests.get(unescape(more.group(1)), headers=html, timeout=30)
    assert rest.status_code == 200 and rest.text.count("<figure>") == 1
    assert "More photos" not in rest.text


def _at_size(browser: object, size: str) -> None:
    """The viewport of a desktop window or of a phone (touch, device pixel ratio 3)."""
    width, height, mobile = SIZES[size]
    browser.execute_cdp_cmd(  # type: ignore[attr-defined]
        "Emulation.setDeviceMetricsOverride",
        {
            "width": width,
            "height": height,
            "deviceScaleFactor": 3 if mobile else 1,
            "mobile": mobile,
        },
    )


def _screenshot(browser: object, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    browser.save_screenshot(str(path))  # type: ignore[attr-defined]
    return path


def _fits(browser: object) -> bool:
    """Nothing wider than the viewport: no sideways scrolling on a phone."""
    return bool(
        browser.execute_script(  # type: ignore[attr-defined]
            "return document.documentElement.scrollWidth <= window.innerWidth"
        )
    )


def test_a_revoked_link_shows_the_friendly_page_at_desktop_and_mobile_sizes(
    browser: object, cloud: LocalCloud, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    link = _shared_job(cloud.api_url, tmp_path, 3)
    for size in SIZES:
        _at_size(browser, size)
        browser.get(link)
        assert browser.title == "Gallery shoot"
        assert len(browser.find_elements(By.CSS_SELECTOR, "ul.gallery figure")) == 3
        assert _fits(browser), size
        # The page's own stylesheet applied: the CSP allowed it by its hash.
        button = browser.find_element(By.CSS_SELECTOR, "ul.archives a.button")
        assert button.value_of_css_property("border-radius") != "0px"
        assert button.text.startswith("Download all: ")
        _screenshot(browser, f"gallery-{size}")

    share_id = link.rsplit("/", 1)[1].split(".")[0]
    job_id = requests.get(link, timeout=30).json()["job"]["job_id"]
    revoked = requests.delete(f"{cloud.api_url}/jobs/{job_id}/shares/{share_id}", timeout=30)
    assert revoked.status_code == 204
    for size in SIZES:
        _at_size(browser, size)
        browser.get(link)
        heading = browser.find_element(By.TAG_NAME, "h1")
        assert heading.text == "This link is no longer active"
        assert (
            "ask your photographer for a new link"
            in browser.find_element(By.CSS_SELECTOR, "section.notice p").text
        )
        assert heading.find_element(By.XPATH, "..").value_of_css_property("text-align") == (
            "center"
        ), "the friendly page's stylesheet applied under its CSP"
        assert _fits(browser), size
        _screenshot(browser, f"revoked-{size}")
