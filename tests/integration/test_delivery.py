"""Automatic delivery on the local cloud (issue 18): a job's status changes are EventBridge
events; the notify function (its real handler, fed by the rule) emails the client a share
link when an `auto` job's first run finishes, emails the photographer every ending, and
POSTs each event, signed, to the studio's webhook. moto's SES records what is sent; the
tests read it back."""

from __future__ import annotations

import email
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import requests

from darkroom import names, webhook
from darkroom.aws.job_store import JobStore
from darkroom.imaging.fixtures import make_demo_shoot
from darkroom.imaging.fixtures.dng import write_corrupt_raw
from darkroom.local.cloud import ACCOUNT_ID, LocalCloud
from darkroom.names import Function
from tests.integration.test_api import (
    create,
    declared,
    put_with_curl,
    wait_developing,
    wait_done,
)

pytestmark = pytest.mark.integration

SENDER = "studio@darkroom.test"
PHOTOGRAPHER = "photographer@darkroom.test"


class Hooks:
    """A tiny webhook receiver: every request's headers and body, in order."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        hooks = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hooks.received.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events_of(self, job_id: str) -> list[tuple[dict[str, str], bytes]]:
        return [
            (headers, body)
            for headers, body in list(self.received)
            if json.loads(body)["detail"]["job_id"] == job_id
        ]


def sent_mail() -> list[Message]:
    """Every message moto's SES has accepted, parsed."""
    from moto.ses.models import ses_backends

    backend = ses_backends[ACCOUNT_ID]["us-east-1"]
    return [
        email.message_from_string(m.raw_data)
        for m in list(backend.sent_messages)
        if hasattr(m, "raw_data")
    ]


def mail_to(address: str, job_id: str | None = None) -> list[Message]:
    """Mail to `address` (each test's client has an address of its own); to the
    photographer, only that naming the job."""
    return [
        m
        for m in sent_mail()
        if address in m["To"] and (job_id is None or f"Job {job_id} " in _text(m))
    ]


def _part(message: Message, subtype: str) -> str:
    for part in message.walk():
        if part.get_content_type() == f"text/{subtype}":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError(f"no text/{subtype} part")


def _text(message: Message) -> str:
    return _part(message, "plain")


@pytest.fixture(scope="module")
def hooks() -> Iterator[Hooks]:
    receiver = Hooks()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture(scope="module")
def delivering(cloud: LocalCloud, hooks: Hooks) -> Iterator[LocalCloud]:
    """The cloud as a studio deploys it with a sender, a photographer's address and a
    webhook: the sender a verified SES identity, the notify function's settings set."""
    lam = cloud.client("lambda")
    before = lam.get_function_configuration(FunctionName=Function.NOTIFY)["Environment"]
    cloud.client("sesv2").create_email_identity(EmailIdentity=SENDER)
    env = dict(before["Variables"])
    env.update(
        {
            "DARKROOM_SENDER_EMAIL": SENDER,
            "DARKROOM_PHOTOGRAPHER_EMAIL": PHOTOGRAPHER,
            "DARKROOM_WEBHOOK_URL": hooks.url,
            "DARKROOM_STUDIO_NAME": "Studio <b>North</b>",
        }
    )
    lam.update_function_configuration(FunctionName=Function.NOTIFY, Environment={"Variables": env})
    yield cloud
    lam.update_function_configuration(FunctionName=Function.NOTIFY, Environment=before)


def _run_job(api: str, tmp_path: Path, *, broken: bool = False, **extra: Any) -> str:
    shoot = tmp_path / "shoot"
    if broken:
        shoot.mkdir(parents=True)
        files = [write_corrupt_raw(shoot / "IMG_BROKEN.dng", "garbage")]
    else:
        files = make_demo_shoot(shoot, count=2, width=300, height=200)
    created = create(api, declared(files), **extra)
    assert created.status_code == 201, created.text
    body = created.json()
    by_name = {p.name: p for p in files}
    for upload in body["uploads"]:
        assert put_with_curl(upload["url"], by_name[upload["name"]]) == 200
    job_id = str(body["job_id"])
    assert requests.post(f"{api}/jobs/{job_id}/submit", timeout=30).status_code == 202
    return job_id


def _eventually(check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def _jobs(cloud: LocalCloud) -> JobStore:
    return JobStore(names.JOBS_TABLE, cloud.client("dynamodb"))


def _redeliver(cloud: LocalCloud, job_id: str) -> None:
    """The job's terminal event again, as EventBridge may deliver an event twice."""
    job = _jobs(cloud).get(job_id)
    from darkroom.aws.job_events import job_event_detail

    cloud.client("events").put_events(
        Entries=[
            {
                "Source": names.JOB_EVENT_SOURCE,
                "DetailType": names.JOB_EVENT_DETAIL_TYPE,
                "Detail": json.dumps(job_event_detail(job)),
            }
        ]
    )


def test_an_auto_job_emails_its_client_one_link_that_opens_the_share_and_downloads(
    delivering: LocalCloud, hooks: Hooks, tmp_path: Path
) -> None:
    api = delivering.api_url
    job_id = _run_job(
        api,
        tmp_path,
        name="Wedding <script>alert(1)</script>",
        client={"name": "<script>Ann</script>", "email": "ann@client.test"},
        deliver="auto",
    )
    assert wait_done(api, job_id)["status"] == "DONE"
    mails = _eventually(lambda: mail_to("ann@client.test") or None) or []
    # The photographer's mail names the job too; only one message went to the client.
    assert len(mails) == 1, [m["Subject"] for m in mails]
    mail = mails[0]
    assert mail["From"].endswith(f"<{SENDER}>")
    text, page = _text(mail), _part(mail, "html")
    # Escaped: the client's name and the job's are shown as text, never as markup.
    assert "<script>" not in page and "&lt;script&gt;Ann&lt;/script&gt;" in page
    assert "Studio &lt;b&gt;North&lt;/b&gt;" in page
    # No tracking: no image, and the link is the share itself, not a redirect.
    assert "<img" not in page.lower()
    link = next(line for line in text.splitlines() if line.startswith(f"{api}/share/"))
    assert f'href="{link}"' in page
    shared = requests.get(link, timeout=30)
    assert shared.status_code == 200, shared.text
    document = shared.json()
    assert document["job"]["files_done"] == 2
    download = document["files"][0]["renditions"][0]["download_url"]
    got = requests.get(download, timeout=30)
    assert got.status_code == 200 and len(got.content) > 1000
    # The photographer hears of the ending, with the counts and that the client got it.
    told = _eventually(lambda: mail_to(PHOTOGRAPHER, job_id) or None) or []
    assert len(told) == 1
    assert "2 developed, 0 failed, of 2" in _text(told[0])
    assert "ann@client.test was emailed the link" in _text(told[0])


def test_a_failed_job_tells_the_photographer_the_cause_and_emails_no_client(
    delivering: LocalCloud, tmp_path: Path
) -> None:
    api = delivering.api_url
    job_id = _run_job(
        api,
        tmp_path,
        broken=True,
        client={"name": "Bob", "email": "bob@client.test"},
        deliver="auto",
    )
    finished = wait_done(api, job_id)
    assert finished["status"] == "FAILED"
    told = _eventually(lambda: mail_to(PHOTOGRAPHER, job_id) or None) or []
    assert len(told) == 1
    body = _text(told[0])
    assert f"Job {job_id}" in body and "ended FAILED" in body
    assert "Cause: AllFilesFailed" in body
    time.sleep(2)  # nothing further is on its way
    assert [m for m in sent_mail() if "bob@client.test" in m["To"]] == []


def test_an_execution_stopped_in_the_console_tells_the_photographer_and_no_client(
    delivering: LocalCloud, tmp_path: Path
) -> None:
    """An ending no Catch sees (the ending reconciler writes it) is notified the same."""
    api = delivering.api_url
    job_id = _run_job(api, tmp_path, client={"email": "eve@client.test"}, deliver="auto")
    running = wait_developing(api, job_id)
    delivering.client("stepfunctions").stop_execution(
        executionArn=running["execution_arn"], error="Operator", cause="stopped by hand"
    )
    assert wait_done(api, job_id)["status"] == "FAILED"
    told = _eventually(lambda: mail_to(PHOTOGRAPHER, job_id) or None) or []
    assert len(told) == 1
    assert "Cause: ExecutionEnded" in _text(told[0]) and "ABORTED" in _text(told[0])
    time.sleep(2)
    assert mail_to("eve@client.test") == []


def test_a_redelivered_status_event_sends_nothing_twice(
    delivering: LocalCloud, hooks: Hooks, tmp_path: Path
) -> None:
    api = delivering.api_url
    job_id = _run_job(api, tmp_path, client={"email": "cara@client.test"}, deliver="auto")
    assert wait_done(api, job_id)["status"] == "DONE"
    assert _eventually(lambda: len(mail_to(PHOTOGRAPHER, job_id)) == 1)
    assert _eventually(lambda: len(mail_to("cara@client.test")) == 1)
    hooked = _eventually(lambda: [b for _, b in hooks.events_of(job_id) if b'"DONE"' in b] or None)
    assert hooked and len(hooked) == 1
    mails_before = len(sent_mail())
    for _ in range(3):
        _redeliver(delivering, job_id)
    time.sleep(4)  # three invocations of the notify function, each a no-op
    assert len(sent_mail()) == mails_before
    assert len([b for _, b in hooks.events_of(job_id) if b'"DONE"' in b]) == 1
    assert _jobs(delivering).get(job_id).notice_errors == {}


def test_the_webhook_receives_each_status_signed_and_a_bad_signature_is_detectable(
    delivering: LocalCloud, hooks: Hooks, tmp_path: Path
) -> None:
    api = delivering.api_url
    job_id = _run_job(api, tmp_path)
    assert wait_done(api, job_id)["status"] == "DONE"
    received = _eventually(
        lambda: (
            (got := hooks.events_of(job_id))
            and any(json.loads(b)["detail"]["status"] == "DONE" for _, b in got)
            and got
        )
    )
    statuses = [json.loads(body)["detail"]["status"] for _, body in received]
    assert {"REGISTERED", "STARTING", "PROCESSING", "DONE"} <= set(statuses)
    secret = delivering.client("secretsmanager").get_secret_value(SecretId=names.WEBHOOK_SECRET)[
        "SecretString"
    ]
    # Kept under the state directory, owner-only: the same after a restart, so the
    # studio's receiver keeps checking with the secret it was given.
    kept = delivering.state_dir / "webhook.key"
    assert kept.read_text().strip() == secret and kept.stat().st_mode & 0o077 == 0
    headers, body = next((h, b) for h, b in received if json.loads(b)["detail"]["status"] == "DONE")
    stamp = headers[names.WEBHOOK_TIMESTAMP_HEADER]
    signed = headers[names.WEBHOOK_SIGNATURE_HEADER]
    assert signed.startswith("sha256=")
    assert webhook.verify(secret, stamp, body, signed)
    detail = json.loads(body)["detail"]
    assert detail["files_done"] == 2 and detail["files_total"] == 2
    assert detail["run_id"] == _jobs(delivering).get(job_id).run_id
    # A body changed in transit, another secret, or an old request replayed: refused.
    assert not webhook.verify(secret, stamp, body.replace(b"DONE", b"FAIL"), signed)
    assert not webhook.verify("another secret", stamp, body, signed)
    assert not webhook.verify(secret, stamp, body, signed, now=int(stamp) + 3600)


def test_an_ses_failure_leaves_the_job_done_shows_on_status_and_a_retry_sends_once(
    delivering: LocalCloud, tmp_path: Path
) -> None:
    api = delivering.api_url
    sesv2 = delivering.client("sesv2")
    # The fault: the sender's identity is gone, so SES refuses every message
    # (MessageRejected), as it would for an identity whose verification lapsed.
    sesv2.delete_email_identity(EmailIdentity=SENDER)
    try:
        job_id = _run_job(api, tmp_path, client={"email": "dan@client.test"}, deliver="auto")
        assert wait_done(api, job_id)["status"] == "DONE"
        errors = _eventually(
            lambda: (
                (e := _jobs(delivering).get(job_id).notice_errors)
                and {"client", "photographer"} <= set(e)
                and e
            )
        )
        assert errors and "MessageRejected" in errors["client"], errors
        # Lambda's own retries of the event (1 s, then 2 s later here) fail the same way.
        time.sleep(5)
        assert _jobs(delivering).get(job_id).status == "DONE"
        assert mail_to("dan@client.test") == []
        assert mail_to(PHOTOGRAPHER, job_id) == []
        # Each link an unsent email carried is revoked, not left live with no one knowing it.
        shares = requests.get(f"{api}/jobs/{job_id}/shares", timeout=30).json()["shares"]
        assert shares and all(share["revoked_at"] for share in shares)
        shown = subprocess.run(
            [sys.executable, "-m", "darkroom.cli", "status", job_id],
            capture_output=True,
            text=True,
            timeout=120,
            env={
                **os.environ,
                "COLUMNS": "300",
                "DARKROOM_API_URL": api,
                **delivering.client_env(),
            },
        )
        assert shown.returncode == 0, shown.stderr
        assert "client email failed" in shown.stdout and "MessageRejected" in shown.stdout
        assert "DONE" in shown.stdout
    finally:
        sesv2.create_email_identity(EmailIdentity=SENDER)

    # Later the event comes again (a retry): the client gets one link, the photographer
    # one message, and a further retry sends nothing.
    _redeliver(delivering, job_id)
    assert _eventually(lambda: len(mail_to("dan@client.test")) == 1)
    assert _eventually(lambda: len(mail_to(PHOTOGRAPHER, job_id)) == 1)
    assert _eventually(lambda: _jobs(delivering).get(job_id).notice_errors == {})
    _redeliver(delivering, job_id)
    time.sleep(3)
    assert len(mail_to("dan@client.test")) == 1
    assert len(mail_to(PHOTOGRAPHER, job_id)) == 1
    link = next(
        line for line in _text(mail_to("dan@client.test")[0]).splitlines() if "/share/" in line
    )
    assert requests.get(link, timeout=30).status_code == 200


def test_a_bad_client_address_is_refused_with_the_reason(delivering: LocalCloud) -> None:
    api = delivering.api_url
    files = [{"name": "IMG_0001.dng", "size": 1000}]
    bad = create(api, files, client={"email": "ann@@example"}, deliver="auto")
    assert bad.status_code == 400
    assert "not an email address" in bad.text
    nobody = create(api, files, deliver="auto")
    assert nobody.status_code == 400 and "needs client.email" in nobody.text


@pytest.fixture
def sent_requests(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Each SendEmail request as it reached moto's SES, tags and all: moto keeps the
    message but drops its EmailTags, which are what a later SES event carries back."""
    from moto.sesv2.responses import SESV2Response

    seen: list[dict[str, Any]] = []
    original = SESV2Response.send_email

    def send_email(self: SESV2Response) -> str:
        seen.append(json.loads(self.body))
        return original(self)

    monkeypatch.setattr(SESV2Response, "send_email", send_email)
    return seen


def _ses_bounce_event(request: dict[str, Any], recipient: str) -> dict[str, Any]:
    """SES's "Email Bounced" event as its EventBridge event destination puts it on the
    default bus, for the message `request` sent: its tags as SES gives them, each a list
    of values beside SES's own."""
    tags = {t["Name"]: [t["Value"]] for t in request.get("EmailTags", [])}
    tags["ses:configuration-set"] = [request["ConfigurationSetName"]]
    return {
        "eventType": "Bounce",
        "bounce": {
            "feedbackId": "0100018c-local-bounce",
            "bounceType": "Permanent",
            "bounceSubType": "NoEmail",
            "bouncedRecipients": [
                {
                    "emailAddress": recipient,
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 no such mailbox",
                }
            ],
            "timestamp": "2026-12-04T08:30:04.000Z",
            "reportingMTA": "dsn; a1-2.smtp-out.amazonses.com",
        },
        "mail": {
            "timestamp": "2026-12-04T08:30:00.000Z",
            "source": request["FromEmailAddress"],
            "sendingAccountId": ACCOUNT_ID,
            "messageId": "0100018c-local-message",
            "destination": request["Destination"]["ToAddresses"],
            "headersTruncated": False,
            "tags": tags,
        },
    }


def test_a_bounce_of_the_client_email_shows_on_status_and_the_job_stays_done(
    delivering: LocalCloud, tmp_path: Path, sent_requests: list[dict[str, Any]]
) -> None:
    api = delivering.api_url
    client = "eve@client.test"
    job_id = _run_job(api, tmp_path, client={"email": client}, deliver="auto")
    assert wait_done(api, job_id)["status"] == "DONE"
    assert _eventually(lambda: len(mail_to(client)) == 1)
    [request] = [r for r in sent_requests if r["Destination"]["ToAddresses"] == [client]]
    run = _jobs(delivering).get(job_id).run_id
    assert run

    # The client's mail server refuses the message minutes later: SES says so on the
    # default bus, and the rule hands it to the notify function, as in AWS.
    bounce = json.dumps(_ses_bounce_event(request, client))
    put = delivering.client("events").put_events(
        Entries=[
            {
                "Source": names.SES_EVENT_SOURCE,
                "DetailType": "Email Bounced",
                "Detail": bounce,
                "Resources": [f"arn:aws:ses:us-east-1:{ACCOUNT_ID}:configuration-set/x"],
            }
        ]
    )
    assert put["FailedEntryCount"] == 0, put
    expected = f"{run}: bounced (Permanent/NoEmail) for {client}"
    errors = _eventually(lambda: _jobs(delivering).get(job_id).notice_errors or None)
    assert errors == {"client": expected}
    # SES may deliver the event again: nothing changes.
    delivering.client("events").put_events(
        Entries=[
            {"Source": names.SES_EVENT_SOURCE, "DetailType": "Email Bounced", "Detail": bounce}
        ]
    )
    # Another sender's mail through the same account (no darkroom tags) is ignored.
    untagged = json.loads(bounce)
    del untagged["mail"]["tags"]
    delivering.client("events").put_events(
        Entries=[
            {
                "Source": names.SES_EVENT_SOURCE,
                "DetailType": "Email Bounced",
                "Detail": json.dumps(untagged),
            }
        ]
    )
    time.sleep(3)
    job = _jobs(delivering).get(job_id)
    assert job.notice_errors == {"client": expected}
    assert job.status == "DONE"
    # Nothing is sent again for a bounce: the address is suppressed in AWS.
    assert len(mail_to(client)) == 1

    shown = subprocess.run(
        [sys.executable, "-m", "darkroom.cli", "status", job_id],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "300", "DARKROOM_API_URL": api, **delivering.client_env()},
    )
    assert shown.returncode == 0, shown.stderr
    assert f"client email failed: {expected}" in shown.stdout
    assert "DONE" in shown.stdout
