"""Proofing in a real browser: headless Chromium opens a proofing share, clicks two
photos' "Add to favourites" (proofing.js sends them, under the page's CSP), leaves a
note on one, and the studio's `darkroom favourites` lists exactly those two; the same
from the full-window viewer's favourite toggle, which keeps the gallery's forms in step.
Without script the same form posts and comes back to the photo (from the gallery or the
photo's own page). axe-core checks each page a proofing client meets, at both sizes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests

from darkroom.local.cloud import LocalCloud
from tests.harness import finished_job, share_link
from tests.integration.test_cli import run
from tests.integration.test_gallery_browser import (  # noqa: F401
    SIZES,
    _at_size,
    _axe_clean,
    _fits,
    _previews_loaded,
    _screenshot,
    browser,
)

pytestmark = pytest.mark.integration


def _proofing_link(api: str, tmp_path: Path) -> tuple[str, str]:
    """A finished job of three photos and a proofing link to it."""
    job_id = finished_job(api, tmp_path, 3, name="Gallery shoot")
    return job_id, share_link(api, job_id, proofing=True)


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


def _toggle(browser: Any) -> Any:  # noqa: F811
    from selenium.webdriver.common.by import By

    return browser.find_element(By.CSS_SELECTOR, ".viewer .viewer-actions button.viewer-favourite")


def _form_of(browser: Any, name: str) -> Any:  # noqa: F811
    from selenium.webdriver.common.by import By

    for item in browser.find_elements(By.CSS_SELECTOR, "ul.gallery li[data-name]"):
        if item.get_attribute("data-name") == name:
            return item.find_element(By.CSS_SELECTOR, "form.proof")
    raise AssertionError(f"no form for {name}")


def _press(browser: Any, name: str, pressed: str) -> None:  # noqa: F811
    """Clicks the viewer's toggle and waits for the server's answer to show, on the
    toggle and on the gallery's form for the same photo."""
    toggle = _toggle(browser)
    toggle.click()
    _wait(
        lambda: (
            toggle.get_attribute("aria-pressed") == pressed
            and toggle.get_attribute("aria-busy") is None
        ),
        f"the toggle of {name} did not become {pressed}",
    )
    # A keyboard client keeps its place: focus stays on the toggle.
    assert browser.execute_script("return document.activeElement") == toggle
    flag = "1" if pressed == "true" else "0"
    assert _form_of(browser, name).get_attribute("data-favourite") == flag


def test_two_favourites_marked_from_the_viewer_are_what_the_studio_lists(
    browser: Any,  # noqa: F811
    cloud: LocalCloud,
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    job_id, link = _proofing_link(cloud.api_url, tmp_path)
    names = [f["name"] for f in requests.get(link, timeout=30).json()["files"]]
    for size in SIZES:
        _at_size(browser, size)
        browser.get(link)
        _previews_loaded(browser)
        assert _fits(browser), size
        _axe_clean(browser, f"proofing gallery at {size}")
        if size == "mobile":
            # The desktop round marked the first two: start this one from none.
            for name in names[:2]:
                requests.delete(f"{link}/favourites/{name}", timeout=30).raise_for_status()
            browser.refresh()
        dialog = browser.find_element(By.CSS_SELECTOR, "[role=dialog]")
        browser.find_elements(By.CSS_SELECTOR, "ul.gallery a.view")[0].click()
        assert dialog.is_displayed()
        toggle = _toggle(browser)
        assert toggle.is_displayed()
        assert toggle.get_attribute("aria-pressed") == "false"
        assert toggle.text == "\u2606 Add to favourites"
        _screenshot(browser, f"viewer-favourite-off-{size}")
        # The toolbar (title, toggle, download, close) fits the window, on a phone too.
        assert browser.execute_script(
            "var a = document.querySelector('.viewer-actions').getBoundingClientRect();"
            "return a.left >= 0 && a.right <= window.innerWidth - 4;"
        ), f"the viewer's toolbar is wider than the window at {size}"
        _press(browser, names[0], "true")
        assert toggle.text == "\u2605 Favourite"
        _wait(
            lambda: browser.execute_script(
                "var i = document.querySelector('.viewer-stage img');"
                "return i.complete && i.naturalWidth > 0;"
            ),
            "the viewer's photo did not load",
        )
        assert browser.execute_script(
            "var t = arguments[0].getBoundingClientRect();"
            "return t.left >= 0 && t.right <= window.innerWidth;",
            toggle,
        ), f"the toggle is off the screen at {size}"
        _screenshot(browser, f"viewer-favourite-{size}")
        _axe_clean(browser, f"viewer with the favourite toggle at {size}")

        ActionChains(browser).send_keys(Keys.ARROW_RIGHT).perform()
        title = browser.find_element(By.ID, "viewer-title")
        _wait(
            lambda t=title: t.get_attribute("textContent") == names[1],
            f"the right arrow did not step at {size}",
        )
        # The next photo's own state, not the last one's.
        assert toggle.get_attribute("aria-pressed") == "false"
        _press(browser, names[1], "true")
        ActionChains(browser).send_keys(Keys.ESCAPE).perform()
        assert not dialog.is_displayed()

        listed = run("favourites", job_id, "--endpoint-url", cloud.endpoint_url)
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.splitlines() == names[:2], size
        # The gallery's forms show what the viewer marked, and the viewer what the forms
        # marked: unmarked in the gallery, the second opens unpressed.
        assert [_form_of(browser, n).get_attribute("data-favourite") for n in names] == [
            "1",
            "1",
            "0",
        ]
        form = _form_of(browser, names[1])
        form.find_element(By.CSS_SELECTOR, "button[value='0']").click()
        _wait(lambda f=form: f.get_attribute("data-favourite") == "0", "not unmarked")
        browser.find_elements(By.CSS_SELECTOR, "ul.gallery a.view")[1].click()
        assert _toggle(browser).get_attribute("aria-pressed") == "false"
        _press(browser, names[1], "true")
        ActionChains(browser).send_keys(Keys.ESCAPE).perform()


def test_a_favourite_the_server_refuses_from_the_viewer_stays_unmarked_and_says_so(
    browser: Any,  # noqa: F811
    cloud: LocalCloud,
    tmp_path: Path,
) -> None:
    """Fault: the link is revoked while the viewer is open; the toggle's write is
    refused (410), nothing is marked, and the toolbar says why."""
    from selenium.webdriver.common.by import By

    job_id, link = _proofing_link(cloud.api_url, tmp_path)
    _at_size(browser, "mobile")  # where the toolbar has least room for the message
    browser.get(link)
    browser.find_elements(By.CSS_SELECTOR, "ul.gallery a.view")[0].click()
    share_id = link.rsplit("/", 1)[1].split(".")[0]
    revoked = requests.delete(f"{cloud.api_url}/jobs/{job_id}/shares/{share_id}", timeout=30)
    assert revoked.status_code == 204
    toggle = _toggle(browser)
    toggle.click()
    status = browser.find_element(By.CSS_SELECTOR, ".viewer .viewer-saved")
    _wait(lambda: status.text != "", "the refusal was not said")
    assert status.get_attribute("role") == "status"
    assert "no longer" in status.text or "revoked" in status.text, status.text
    assert browser.execute_script(
        "return document.querySelector('.viewer-actions').getBoundingClientRect().right"
        " <= window.innerWidth"
    )
    _screenshot(browser, "viewer-favourite-refused-mobile")
    assert toggle.get_attribute("aria-pressed") == "false"
    assert toggle.get_attribute("aria-busy") is None
    listed = run("favourites", job_id, "--endpoint-url", cloud.endpoint_url)
    assert listed.returncode == 0 and listed.stdout.strip() == ""


def test_a_photo_page_of_a_proofing_share_marks_without_script_and_passes_axe(
    browser: Any,  # noqa: F811
    cloud: LocalCloud,
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By

    job_id, link = _proofing_link(cloud.api_url, tmp_path)
    first = requests.get(link, timeout=30).json()["files"][0]
    page = first["page_url"]
    for size in SIZES:
        _at_size(browser, size)
        browser.get(page)
        assert not browser.find_elements(By.TAG_NAME, "script")
        assert _fits(browser), size
        _axe_clean(browser, f"photo page of a proofing share at {size}")
    # The form posts and comes back to this page (no script on it), marked.
    form = browser.find_element(By.CSS_SELECTOR, "form.proof")
    form.find_element(By.CSS_SELECTOR, "textarea").send_keys("the print")
    form.find_element(By.CSS_SELECTOR, "button[value='1']").click()
    # Read by script: the page is replaced under Selenium while the form posts.
    _wait(
        lambda: browser.execute_script(
            "var m = document.querySelector('form.proof p.mark');"
            "return !!m && m.textContent === '\u2605 Favourite';"
        ),
        "the photo page did not come back marked",
    )
    assert browser.current_url.split("#", 1)[0] == page
    _screenshot(browser, "photo-page-proofing-mobile")
    _axe_clean(browser, "photo page of a proofing share, marked")
    listed = run("favourites", job_id, "--endpoint-url", cloud.endpoint_url)
    assert listed.stdout.splitlines() == [first["name"]]
