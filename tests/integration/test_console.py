"""The local console in a real browser: headless Chromium lists the executions, follows a
running one's graph to its end, starts a reprocess from the page and stops it; and the
console's JSON endpoints, read as the page reads them."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

from darkroom import names
from darkroom.imaging.fixtures import images as fx
from darkroom.imaging.fixtures import make_demo_shoot
from darkroom.jobs import JobStatus
from darkroom.local.cloud import LocalCloud
from darkroom.local.console import graph
from tests.harness import Studio, wait_for
from tests.integration.test_gallery_browser import CHROMEDRIVER, CHROMIUM, CHROMIUM_FLAGS

pytestmark = pytest.mark.integration

T = TypeVar("T")
# Big enough that an execution runs for several seconds on a loaded 2-core box.
SLOW_SHOOT = {"count": 6, "width": 2400, "height": 1600}


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip(
            "Chromium is not installed: `make browser` (apt-get install chromium "
            "chromium-driver) enables this test"
        )
    os.environ.setdefault("SE_OFFLINE", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    driver.set_window_size(1500, 1300)
    try:
        yield driver
    finally:
        driver.quit()


def _running_job(studio: Studio, tmp_path: Path) -> tuple[str, str]:
    files = make_demo_shoot(tmp_path / "shoot", **SLOW_SHOOT)
    job_id = studio.upload(files, name="Console shoot")
    job = wait_for(
        lambda: (
            (j := studio.jobs.find(job_id)) is not None and j.status is JobStatus.PROCESSING and j
        ),
        120,
    )
    return job_id, job.execution_arn or ""


def _until(browser: Any, check: Callable[[], T], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except Exception:  # an element replaced between find and read: the page polls
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
            raise AssertionError(f"{what} (console errors: {errors})")
        time.sleep(0.2)


# The page redraws as it polls: read it in one script, never element by element.
def _states(browser: Any) -> dict[str, str]:
    return dict(
        browser.execute_script(
            "return Array.from(document.querySelectorAll('#graph g.state'))"
            ".map((g) => [g.dataset.state, g.dataset.status])"
        )
    )


def _edges(browser: Any) -> dict[tuple[str, str], str]:
    return {
        (source, target): cls
        for source, target, cls in browser.execute_script(
            "return Array.from(document.querySelectorAll('#graph path.edge'))"
            ".map((p) => [p.dataset.source, p.dataset.target, p.getAttribute('class')])"
        )
    }


def _rows(browser: Any, table: str) -> list[str]:
    return list(
        browser.execute_script(
            "return Array.from(document.querySelectorAll(arguments[0] + ' tbody tr'))"
            ".map((tr) => tr.innerText)",
            f"#{table}",
        )
    )


def _text(browser: Any, element_id: str) -> str:
    return str(
        browser.execute_script("return document.getElementById(arguments[0]).innerText", element_id)
    )


def _click(browser: Any, selector: str) -> None:
    from selenium.webdriver.common.by import By

    _until(
        browser,
        lambda: browser.find_element(By.CSS_SELECTOR, selector).click() or True,
        10,
        f"click {selector}",
    )


def _definition(cloud: LocalCloud) -> dict[str, Any]:
    described = cloud.client("stepfunctions").describe_state_machine(
        stateMachineArn=cloud.endpoints()[names.Output.STATE_MACHINE_ARN]
    )
    return graph.definition_of(described["definition"])


def _screenshot(browser: Any, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    browser.save_screenshot(str(path))
    target = os.environ.get("DARKROOM_CONSOLE_SCREENSHOT")
    if target:
        shutil.copy(path, Path(target).with_name(f"{Path(target).stem}-{path.name}"))


def test_the_console_follows_a_running_execution_then_starts_a_reprocess_and_stops_it(
    browser: Any, cloud: LocalCloud, studio: Studio, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    job_id, arn = _running_job(studio, tmp_path)
    browser.get(cloud.console_url)
    assert browser.title == "darkroom local console"
    row = f'#executions tr[data-arn="{arn}"] a'
    _until(browser, lambda: browser.find_elements(By.CSS_SELECTOR, row), 30, "it is listed")
    _click(browser, row)
    # Opened while it runs: what has run is green, what runs is blue, the rest grey.
    _until(
        browser,
        lambda: (
            _states(browser).get("RegisterJob") == "succeeded"
            and "running" in _states(browser).values()
        ),
        60,
        "the graph shows the execution running",
    )
    assert _text(browser, "exec-status") == "RUNNING"
    assert _states(browser)["MarkFailed"] == "not-reached"
    _screenshot(browser, tmp_path, "running.png")

    _until(browser, lambda: _text(browser, "exec-status") == "SUCCEEDED", 240, "it succeeds")
    states = _until(
        browser, lambda: (s := _states(browser))["MarkDone"] == "succeeded" and s, 10, "MarkDone"
    )
    assert states["WaitForWorker"] == "succeeded"
    assert states["ReleaseWorker"] == states["JobFailed"] == "not-reached"
    assert "running" not in states.values()
    # Arrows for every transition of the ASL; the execution's path drawn darker.
    edges = _edges(browser)
    assert set(edges) == {(e.source, e.target) for e in graph.edges(_definition(cloud))}
    assert edges["RegisterJob", "DevelopShards"] == "edge next taken"
    assert edges["RegisterJob", "ReleaseWorker"] == "edge catch"
    assert edges["DevelopShards", "StartWorker"] == "edge iterate taken"
    _until(browser, lambda: _text(browser, "job-summary").startswith("DONE: 6 done"), 30, "job")
    files = _rows(browser, "files")
    assert len(files) == SLOW_SHOOT["count"]
    assert all("DONE" in row for row in files)
    events = _rows(browser, "events")
    assert events[0].split()[1] == "ExecutionStarted"
    assert "ExecutionSucceeded" in events[-1]

    _click(browser, '#graph g.state[data-state="RegisterJob"]')
    assert f'"job_id": "{job_id}"' in _text(browser, "state-input")
    assert '"file_count": 6' in _text(browser, "state-output")
    _screenshot(browser, tmp_path, "succeeded.png")

    # Start a reprocess from the input editor, prefilled for this job.
    editor = browser.find_element(By.ID, "start-input")
    prefilled = json.loads(editor.get_attribute("value") or "")
    assert prefilled == {"job_id": job_id, "reprocess": True}
    browser.find_element(By.ID, "start-button").click()
    second = _until(
        browser,
        lambda: (
            (h := browser.execute_script("return decodeURIComponent(location.hash.slice(1))")) != ""
            and h != arn
            and h
        ),
        30,
        "the new execution opens",
    )
    assert second.rsplit(":", 1)[-1].startswith(f"{job_id}.rp-")
    sfn = cloud.client("stepfunctions")
    assert sfn.describe_execution(executionArn=second)["status"] == "RUNNING"

    # Stop it once it is under way.
    _until(
        browser,
        lambda: (
            _text(browser, "exec-name") == second.rsplit(":", 1)[-1]
            and _states(browser).get("RegisterJob") == "succeeded"
        ),
        60,
        "the reprocess runs",
    )
    cause = browser.find_element(By.ID, "stop-cause")
    cause.clear()
    cause.send_keys("wrong <recipe> & all")
    browser.find_element(By.ID, "stop-button").click()
    _until(browser, lambda: _text(browser, "exec-status") == "ABORTED", 30, "it ends ABORTED")
    described = sfn.describe_execution(executionArn=second)
    assert (described["status"], described["error"]) == ("ABORTED", "Console.Stopped")
    assert described["cause"] == "wrong <recipe> & all"
    assert _text(browser, "exec-error") == "Console.Stopped: wrong <recipe> & all"
    assert not browser.find_element(By.ID, "stop-box").is_displayed()
    assert "failed" in _states(browser).values(), "the state it was in did not finish"

    Select(browser.find_element(By.ID, "status-filter")).select_by_value("ABORTED")
    listed = _until(
        browser,
        lambda: (
            (rows := browser.find_elements(By.CSS_SELECTOR, "#executions tbody tr"))
            and all(r.get_attribute("data-status") == "ABORTED" for r in rows)
            and [r.get_attribute("data-arn") for r in rows]
        ),
        15,
        "the filter lists aborted executions only",
    )
    assert second in listed and arn not in listed
    _screenshot(browser, tmp_path, "aborted.png")


def test_the_console_shows_thumbnail_invocations_and_any_log(
    browser: Any, cloud: LocalCloud, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    s3 = cloud.client("s3")
    s3.put_object(
        Bucket=names.INPUT_BUCKET,
        Key="console/pic.jpg",
        Body=fx.encoded(fx.quadrants(800, 500), "JPEG"),
    )
    browser.get(cloud.console_url)
    row = _until(
        browser,
        lambda: next((r for r in _rows(browser, "invocations") if "console/pic.jpg" in r), None),
        60,
        "the thumbnail function's invocation is listed",
    )
    assert "ok" in row.split() and "INFO" in row
    _until(
        browser,
        lambda: (
            Select(browser.find_element(By.ID, "log-stream")).select_by_value(
                names.Function.THUMBNAIL
            )
            or True
        ),
        30,
        "its log stream is offered",
    )
    _until(browser, lambda: "REPORT RequestId" in _text(browser, "log-text"), 30, "its log")
    browser.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    _screenshot(browser, tmp_path, "logs.png")


def test_the_console_endpoints_refuse_what_its_page_never_sends(cloud: LocalCloud) -> None:
    api = cloud.console_url + "api"
    assert requests.get(cloud.api_url + "/console", allow_redirects=False).status_code == 308
    page = requests.get(cloud.console_url, timeout=30)
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    # A form from another page cannot start or stop an execution.
    form = requests.post(f"{api}/start", data={"input": "{}"}, timeout=30)
    assert form.status_code == 403
    elsewhere = requests.post(
        f"{api}/stop", json={"arn": "x"}, headers={"Origin": "http://evil.test"}, timeout=30
    )
    assert elsewhere.status_code == 403
    assert (
        requests.get(f"{api}/log", params={"stream": "../aws-calls"}, timeout=30).status_code == 400
    )
    assert requests.get(f"{api}/nothing", timeout=30).status_code == 404
    bad = requests.post(f"{api}/start", json={"input": '{"job_id": "a.b"}'}, timeout=30)
    assert bad.status_code == 400 and "invalid job id" in bad.json()["message"]
    # Every other path is still the API's.
    assert requests.get(f"{cloud.api_url}/jobs", timeout=30).status_code == 200
