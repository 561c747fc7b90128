"""The client's gallery page in a real browser: headless Chromium opens a share link,
its previews load and every download link resolves."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from darkroom.imaging.fixtures import make_demo_shoot
from darkroom.local.cloud import LocalCloud

pytestmark = pytest.mark.integration

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


def _shared_job(api: str, tmp_path: Path) -> str:
    files = make_demo_shoot(tmp_path / "shoot", count=2, width=600, height=400)
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


def test_the_gallery_shows_every_photo_and_each_link_downloads(
    browser: object, cloud: LocalCloud, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    link = _shared_job(cloud.api_url, tmp_path)
    browser.get(link)
    assert browser.title == "Gallery shoot"
    images = browser.find_elements(By.CSS_SELECTOR, "ul.gallery img")
    assert len(images) == 2
    # Previews are loaded by the browser itself, under the page's CSP.
    deadline = time.monotonic() + 30
    while not all(browser.execute_script("return arguments[0].complete", i) for i in images):
        assert time.monotonic() < deadline, "previews did not load"
        time.sleep(0.2)
    assert all(browser.execute_script("return arguments[0].naturalWidth", i) > 0 for i in images)
    links = browser.find_elements(By.CSS_SELECTOR, "a[href]")
    offered = requests.get(link, timeout=30).json()
    renditions = [r for f in offered["files"] for r in f["renditions"]]
    assert sorted(a.get_attribute("download") or "" for a in links) == sorted(
        r["filename"] for r in renditions
    )
    for a in links:
        href = a.get_attribute("href")
        assert href
        response = requests.get(href, timeout=30)
        assert response.status_code == 200, href
        assert response.headers["content-disposition"].startswith("attachment;")
        assert response.headers["content-type"] == "image/jpeg"
    for href in {i.get_attribute("src") for i in images}:
        assert href and requests.get(href, timeout=30).status_code == 200
