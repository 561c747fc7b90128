"""The client's gallery page in a real browser: headless Chromium opens a share link,
further pages load as it scrolls, its previews load through the stable links (under the
page's CSP) and every link resolves; a preview opens the full-window viewer, which steps
by arrow keys and swipes, closes on Escape and hands focus back; without script each
photo has its own page; downloads are the bytes S3 holds; a revoked link shows the
friendly page; axe-core finds no serious or critical violation; at desktop and phone
sizes. Screenshots go to SCREENSHOTS (ignored by git) for a reviewer."""

from __future__ import annotations

import os
import re
import shutil
import time
import zipfile
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import requests

from darkroom.local.cloud import LocalCloud
from tests.harness import finished_job, share_link

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
    return share_link(api, finished_job(api, tmp_path, count, name="Gallery shoot"))


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
    views = browser.find_elements(By.CSS_SELECTOR, "figure ul a:not([download])")
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
    # Each preview is a link to the photo's own page; its next links walk every photo
    # across the gallery's pages, each showing its image through a stable link.
    first_view = re.search(r'<a class="view" href="([^"]+)"', first)
    assert first_view, first
    names = re.findall(r"<figcaption>([^<]+)</figcaption>", first + rest.text)
    url: str | None = unescape(first_view.group(1))
    seen = []
    while url:
        page = requests.get(url, headers=html, timeout=30)
        assert page.status_code == 200, url
        assert "<script" not in page.text
        seen.append(unescape(re.search(r"<h1>([^<]+)</h1>", page.text).group(1)))  # type: ignore[union-attr]
        image = re.search(r'<figure class="photo-frame"><img src="([^"]+)"', page.text)
        assert image and image.group(1).startswith(f"{link}/files/"), page.text
        assert image.group(1).endswith("/web")
        shown = requests.get(unescape(image.group(1)), timeout=30)
        assert shown.status_code == 200 and shown.headers["content-type"] == "image/jpeg"
        back = re.search(r'<a href="([^"]+)">Back to the gallery</a>', page.text)
        assert back and unescape(back.group(1)) == link
        following = re.search(r'<a rel="next" href="([^"]+)"', page.text)
        url = unescape(following.group(1)) if following else None
    assert seen == [unescape(n) for n in names]


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
        _previews_loaded(browser)
        _screenshot(browser, f"gallery-{size}")
        _axe_clean(browser, f"gallery at {size}")

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
        _axe_clean(browser, f"revoked page at {size}")


def _previews_loaded(browser: Any) -> None:
    """Every preview in view has loaded (they load lazily, through redirects)."""
    deadline = time.monotonic() + 30
    while not browser.execute_script(
        "return Array.from(document.querySelectorAll('ul.gallery img')).every(function (i) {"
        " var r = i.getBoundingClientRect();"
        " return r.top > window.innerHeight || (i.complete && i.naturalWidth > 0); });"
    ):
        assert time.monotonic() < deadline, "previews did not load"
        time.sleep(0.1)


def _axe_clean(browser: Any, where: str) -> None:
    """axe-core (bundled by axe-selenium-python, injected by the driver, which the
    page's CSP does not govern) finds nothing serious or critical on the page as it is."""
    from axe_selenium_python import Axe

    axe = Axe(browser)
    axe.inject()
    results = axe.run()
    assert results["passes"], f"{where}: axe checked nothing"
    bad = [v for v in results["violations"] if v.get("impact") in ("serious", "critical")]
    assert not bad, f"{where}: " + axe.report(bad)


def _natural_width(browser: Any, image: Any) -> int:
    """The shown image's width once loaded (it loads through a redirect)."""
    deadline = time.monotonic() + 30
    while True:
        width = browser.execute_script(
            "return arguments[0].complete ? arguments[0].naturalWidth : 0", image
        )
        if width:
            return int(width)
        assert time.monotonic() < deadline, "the viewer's image did not load"
        time.sleep(0.1)


def _swipe(browser: Any, element: Any, dx: int) -> None:
    """A finger dragged sideways across `element`, as a phone's touch screen sends it."""
    box = browser.execute_script(
        "var r = arguments[0].getBoundingClientRect();"
        "return [r.left + r.width / 2, r.top + r.height / 2];",
        element,
    )
    x, y = box
    browser.execute_cdp_cmd(
        "Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]}
    )
    for i in range(1, 6):
        point = {"x": x + dx * i / 5, "y": y}
        browser.execute_cdp_cmd(
            "Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]}
        )
    browser.execute_cdp_cmd("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def _s3_bytes(cloud: LocalCloud, stable_link: str) -> bytes:
    """What S3 holds behind a stable link: the object its redirect names."""
    answer = requests.get(stable_link, allow_redirects=False, timeout=30)
    assert answer.status_code == 302, stable_link
    # The local cloud presigns path-style URLs: /bucket/key.
    bucket, key = unquote(urlsplit(answer.headers["location"]).path).lstrip("/").split("/", 1)
    body: bytes = cloud.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def _downloaded(folder: Path, name: str) -> bytes:
    deadline = time.monotonic() + 60
    path = folder / name
    while not path.exists() or any(folder.glob("*.crdownload")):
        assert time.monotonic() < deadline, f"{name} was not downloaded: {list(folder.iterdir())}"
        time.sleep(0.2)
    return path.read_bytes()


def test_the_viewer_opens_from_a_preview_steps_by_keys_and_swipes_and_closes_back_to_it(
    browser: Any, cloud: LocalCloud, tmp_path: Path
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    count = 4
    link = _shared_job(cloud.api_url, tmp_path, count)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    names = [f["name"] for f in requests.get(link, timeout=30).json()["files"]]
    assert len(names) == count
    for size in SIZES:
        _at_size(browser, size)
        browser.execute_cdp_cmd(
            "Emulation.setTouchEmulationEnabled",
            {"enabled": SIZES[size][2], "maxTouchPoints": 5},
        )
        browser.get(link)
        previews = browser.find_elements(By.CSS_SELECTOR, "ul.gallery a.view")
        assert len(previews) == count
        dialog = browser.find_element(By.CSS_SELECTOR, "[role=dialog]")
        assert not dialog.is_displayed()
        previews[0].click()
        assert dialog.is_displayed()
        assert dialog.get_attribute("aria-modal") == "true"
        title = browser.find_element(By.ID, dialog.get_attribute("aria-labelledby"))
        assert title.text == names[0]
        # Focus moved into the dialog.
        assert browser.execute_script(
            "return arguments[0].contains(document.activeElement)", dialog
        )
        image = dialog.find_element(By.CSS_SELECTOR, ".viewer-stage img")
        src = image.get_attribute("src") or ""
        assert src.startswith(f"{link}/files/") and src.endswith("/web"), src
        assert _natural_width(browser, image) > 0
        # The image fits the window, whole.
        fits = browser.execute_script(
            "var r = arguments[0].getBoundingClientRect();"
            "return r.width > 0 && r.left >= 0 && r.top >= 0 &&"
            " r.right <= window.innerWidth && r.bottom <= window.innerHeight;",
            image,
        )
        assert fits, size
        _screenshot(browser, f"viewer-{size}")
        _axe_clean(browser, f"viewer at {size}")

        shown = []
        for _ in range(count - 1):
            ActionChains(browser).send_keys(Keys.ARROW_RIGHT).perform()
            deadline = time.monotonic() + 10
            while title.text == (shown[-1] if shown else names[0]):
                assert time.monotonic() < deadline, "the arrow key did not step"
                time.sleep(0.05)
            shown.append(title.text)
            assert _natural_width(browser, image) > 0
            assert (image.get_attribute("src") or "").startswith(f"{link}/files/")
        assert shown == names[1:]
        ActionChains(browser).send_keys(Keys.ARROW_LEFT).perform()
        assert title.text == names[-2]
        # Tab stays within the dialog, however often it is pressed.
        for _ in range(6):
            ActionChains(browser).send_keys(Keys.TAB).perform()
            assert browser.execute_script(
                "return arguments[0].contains(document.activeElement)", dialog
            )
        if SIZES[size][2]:
            stage = dialog.find_element(By.CSS_SELECTOR, ".viewer-stage")
            _swipe(browser, stage, -150)  # leftwards: the next photo
            assert title.text == names[-1], "a swipe left steps forward"
            _swipe(browser, stage, 150)
            assert title.text == names[-2], "a swipe right steps back"
        if size == "desktop":
            # The viewer's download button saves the photo: the bytes S3 holds.
            button = dialog.find_element(By.CSS_SELECTOR, "a.viewer-download")
            expected = _s3_bytes(cloud, button.get_attribute("href") or "")
            saved_as = button.get_attribute("download") or ""
            button.click()
            assert _downloaded(downloads, saved_as) == expected
        # The address is the shown photo's own page: a reload or a shared address opens it.
        assert browser.current_url == previews[count - 2].get_attribute("href")
        ActionChains(browser).send_keys(Keys.ESCAPE).perform()
        assert not dialog.is_displayed()
        # Focus is back on the preview of the photo last shown.
        focused = browser.switch_to.active_element
        assert focused.get_attribute("href") == previews[count - 2].get_attribute("href")
        assert _fits(browser), size
        # Escape also left the viewer's history entry: the gallery's address again.
        _wait_for_url(browser, link)
        # The browser's Back (a phone's back gesture) closes the viewer too, and stays
        # in the gallery rather than leaving it.
        previews[1].click()
        assert dialog.is_displayed()
        browser.back()
        _wait_for_url(browser, link)
        assert not dialog.is_displayed()
        assert browser.switch_to.active_element.get_attribute("href") == previews[1].get_attribute(
            "href"
        )
        # The photo's own page, where the preview leads without script.
        browser.get(previews[1].get_attribute("href"))
        assert browser.find_element(By.TAG_NAME, "h1").text == names[1]
        assert _natural_width(browser, browser.find_element(By.CSS_SELECTOR, ".photo-frame img"))
        assert _fits(browser), size
        _screenshot(browser, f"photo-page-{size}")
        _axe_clean(browser, f"photo page at {size}")

    # Download all: the ZIP the worker wrote, byte for byte, and whole.
    _at_size(browser, "desktop")
    browser.get(link)
    archive = browser.find_element(By.CSS_SELECTOR, "ul.archives a.button")
    expected = _s3_bytes(cloud, archive.get_attribute("href") or "")
    before = set(downloads.iterdir())
    archive.click()
    deadline = time.monotonic() + 60
    while not [p for p in set(downloads.iterdir()) - before if p.suffix == ".zip"]:
        assert time.monotonic() < deadline, "the ZIP was not downloaded"
        time.sleep(0.2)
    (zipped,) = [p for p in set(downloads.iterdir()) - before if p.suffix == ".zip"]
    assert _downloaded(downloads, zipped.name) == expected
    with zipfile.ZipFile(zipped) as opened:
        assert len(opened.namelist()) == count
        assert opened.testzip() is None


def _wait_for_url(browser: Any, url: str) -> None:
    deadline = time.monotonic() + 10
    while browser.current_url != url:
        assert time.monotonic() < deadline, f"at {browser.current_url}, not {url}"
        time.sleep(0.05)


def test_a_photo_the_viewer_cannot_load_is_said_so_and_the_viewer_still_closes_back(
    browser: Any, cloud: LocalCloud, tmp_path: Path
) -> None:
    """The link withdrawn while the client looks: the viewer says what happened instead
    of a broken image, keeps stepping and closing, and focus still returns."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    link = _shared_job(cloud.api_url, tmp_path, 3)
    names = [f["name"] for f in requests.get(link, timeout=30).json()["files"]]
    _at_size(browser, "desktop")
    browser.get(link)
    previews = browser.find_elements(By.CSS_SELECTOR, "ul.gallery a.view")
    previews[0].click()
    dialog = browser.find_element(By.CSS_SELECTOR, "[role=dialog]")
    image = dialog.find_element(By.CSS_SELECTOR, ".viewer-stage img")
    assert _natural_width(browser, image) > 0
    share_id = link.rsplit("/", 1)[1].split(".")[0]
    job_id = requests.get(link, timeout=30).json()["job"]["job_id"]
    revoked = requests.delete(f"{cloud.api_url}/jobs/{job_id}/shares/{share_id}", timeout=30)
    assert revoked.status_code == 204
    # Two steps: the first photo's neighbour may already be in the browser's cache.
    ActionChains(browser).send_keys(Keys.ARROW_RIGHT).perform()
    ActionChains(browser).send_keys(Keys.ARROW_RIGHT).perform()
    title = browser.find_element(By.ID, "viewer-title")
    assert title.text == names[2]
    failed = dialog.find_element(By.CSS_SELECTOR, ".viewer-failed")
    deadline = time.monotonic() + 30
    while not failed.is_displayed():
        assert time.monotonic() < deadline, "the viewer did not say the photo failed"
        time.sleep(0.1)
    assert "ask your photographer for a new link" in failed.text
    assert not image.is_displayed()
    _screenshot(browser, "viewer-failed-desktop")
    ActionChains(browser).send_keys(Keys.ESCAPE).perform()
    assert not dialog.is_displayed()
    assert browser.switch_to.active_element.get_attribute("href") == previews[2].get_attribute(
        "href"
    )
