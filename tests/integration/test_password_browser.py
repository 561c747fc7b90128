"""A password-protected share in a real browser (headless Chromium, as the gallery's own
browser test drives it): the unlock page at desktop and phone sizes, a wrong password
refused on the page, the right one opening the gallery, whose previews then load
through the stable links with the cookie; axe-core finds nothing serious or critical on
the unlock page, plain or after a wrong password. Screenshots go to SCREENSHOTS."""

# ruff: noqa: F811

from __future__ import annotations

import time
from pathlib import Path

import pytest

from darkroom.local.cloud import LocalCloud
from tests.harness import finished_job
from tests.integration.test_gallery_browser import (  # noqa: F401
    SIZES,
    _at_size,
    _axe_clean,
    _fits,
    _screenshot,
    browser,
)
from tests.integration.test_share_passwords import PASSWORD, protected_share

pytestmark = pytest.mark.integration


def _submit(browser: object, password: str) -> None:
    from selenium.webdriver.common.by import By

    field = browser.find_element(By.ID, "password")  # type: ignore[attr-defined]
    field.clear()
    field.send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()  # type: ignore[attr-defined]


def test_a_protected_gallery_refuses_a_wrong_password_and_opens_with_the_right_one(
    browser: object, cloud: LocalCloud, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.wait import WebDriverWait

    assert isinstance(browser, WebDriver)
    job_id = finished_job(cloud.api_url, tmp_path, count=3)
    link = protected_share(cloud.api_url, job_id)["url"]
    for size in SIZES:
        _at_size(browser, size)
        browser.delete_all_cookies()
        browser.get(link)
        assert browser.title == "Enter the password"
        assert browser.find_element(By.TAG_NAME, "h1").text == "These photos are protected"
        field = browser.find_element(By.ID, "password")
        assert field.get_attribute("type") == "password"
        # The label names the field for a screen reader.
        assert browser.find_element(By.CSS_SELECTOR, "label[for=password]").text == "Password"
        # The page's stylesheet applied under its CSP (hash-allowed): a styled button.
        button = browser.find_element(By.CSS_SELECTOR, "form button")
        assert button.value_of_css_property("border-radius") != "0px"
        assert _fits(browser), size
        _screenshot(browser, f"password-{size}")
        _axe_clean(browser, f"unlock page at {size}")

        _submit(browser, "not-the-password")
        # The answer is a new page, after an scrypt check: wait for it, not for the click.
        problem = WebDriverWait(browser, 30).until(
            lambda b: b.find_element(By.CSS_SELECTOR, "p.problem")
        )
        assert problem.get_attribute("role") == "alert"
        assert "That password is not right" in problem.text
        assert browser.title == "Enter the password"
        assert not browser.find_elements(By.CSS_SELECTOR, "ul.gallery")
        _screenshot(browser, f"password-wrong-{size}")
        _axe_clean(browser, f"unlock page after a wrong password at {size}")

        _submit(browser, PASSWORD)
        WebDriverWait(browser, 30).until(lambda b: b.title == "Private shoot")
        assert browser.current_url.rstrip("/") == link
        assert len(browser.find_elements(By.CSS_SELECTOR, "ul.gallery figure")) == 3
        # The previews come through the stable links, which ask for the cookie too.
        images = browser.find_elements(By.CSS_SELECTOR, "ul.gallery img")
        deadline = time.monotonic() + 30
        while not all(
            browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", i)
            for i in images
        ):
            assert time.monotonic() < deadline, "previews did not load with the cookie"
            time.sleep(0.2)
        # The cookie is the server's alone: scripts never see it.
        assert browser.execute_script("return document.cookie") == ""
        assert _fits(browser), size
