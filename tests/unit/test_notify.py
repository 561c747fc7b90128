"""Delivery's pure parts: the webhook's signature and retries, and the emails' text."""

from __future__ import annotations

import io
from typing import Any
from urllib.error import HTTPError, URLError

import pytest

from darkroom import names, notify, webhook
from darkroom.jobs import Job, JobStatus

SECRET = "s3cret"


def test_a_signature_verifies_only_for_its_body_secret_and_a_recent_timestamp() -> None:
    body = b'{"detail":{"status":"DONE"}}'
    header = webhook.signature(SECRET, "1000", body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert webhook.verify(SECRET, "1000", body, header, now=1100)
    assert not webhook.verify(SECRET, "1000", body + b" ", header, now=1100)
    assert not webhook.verify("other", "1000", body, header, now=1100)
    assert not webhook.verify(SECRET, "1001", body, header, now=1100)
    assert not webhook.verify(SECRET, "1000", body, header, now=1000 + 301)
    assert not webhook.verify(SECRET, "not a time", body, header)


class _Answer:
    status = 204

    def __enter__(self) -> _Answer:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _replaying(monkeypatch: pytest.MonkeyPatch, outcomes: list[Any]) -> list[Any]:
    requests: list[Any] = []

    def fake(request: Any, timeout: float) -> Any:
        requests.append(request)
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(webhook, "urlopen", fake)
    return requests


def _http_error(code: int) -> HTTPError:
    return HTTPError("https://hook", code, "no", {}, io.BytesIO())  # type: ignore[arg-type]


def test_a_webhook_down_then_up_is_tried_again_with_backoff_and_signed_each_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent = _replaying(monkeypatch, [URLError("refused"), _http_error(503), _Answer()])
    waits: list[float] = []
    stamps = iter([100.0, 101.0, 103.0])
    done = webhook.post(
        "https://hook", b"{}", SECRET, attempts=3, sleep=waits.append, clock=lambda: next(stamps)
    )
    assert done == webhook.Delivered(3, 204, None)
    assert waits == [0.5, 1.0]
    for request, stamp in zip(sent, ("100", "101", "103"), strict=True):
        assert request.get_header(names.WEBHOOK_TIMESTAMP_HEADER.capitalize()) == stamp
        header = request.get_header(names.WEBHOOK_SIGNATURE_HEADER.capitalize())
        assert webhook.verify(SECRET, stamp, b"{}", header, now=float(stamp))


def test_a_webhook_refusal_is_not_retried_and_its_failure_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent = _replaying(monkeypatch, [_http_error(410)])
    done = webhook.post("https://hook", b"{}", SECRET, attempts=3, sleep=lambda _: None)
    assert len(sent) == 1
    assert done.status == 410 and done.error == "HTTP 410 from the webhook"


def test_a_webhook_that_never_answers_fails_after_its_tries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _replaying(monkeypatch, [URLError("timed out")] * 3)
    done = webhook.post("https://hook", b"{}", SECRET, attempts=3, sleep=lambda _: None)
    assert done.attempts == 3 and done.error is not None
    assert "after 3 tries" in done.error


def test_the_client_email_shows_every_name_as_text_and_holds_no_tracking() -> None:
    job = Job(job_id="j1", status=JobStatus.DONE, name='<img src="x">', files_done=3, files_total=3)
    link = "https://api.example/share/abc.def"
    message = notify.client_link_message('Studio "<b>"', job, "<script>x</script>", link, 0)
    assert "<script>" not in message.html and "&lt;script&gt;x&lt;/script&gt;" in message.html
    assert "<img" not in message.html and "&lt;img" in message.html
    assert f'href="{link}"' in message.html
    # The plain part is the same words, unescaped, with the link on a line of its own.
    assert "Hello <script>x</script>," in message.text
    assert f"\n{link}\n" in message.text


def test_the_photographer_hears_the_counts_and_a_failure_s_cause() -> None:
    job = Job(
        job_id="j2",
        status=JobStatus.FAILED,
        files_total=4,
        files_failed=4,
        error="AllFilesFailed",
        cause="none of the 4 files developed",
    )
    detail = {"files_total": 4, "files_done": 0, "files_failed": 4}
    message = notify.photographer_message("Studio", job, JobStatus.FAILED, detail, "")
    assert "Job j2 (j2) ended FAILED." in message.text
    assert "0 developed, 4 failed, of 4" in message.text
    assert "Cause: AllFilesFailed: none of the 4 files developed" in message.text
