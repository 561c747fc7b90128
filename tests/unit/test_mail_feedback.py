"""SES's later word on a message (issue 18): the tags each message carries, and a bounce,
complaint or reject event read back into the job's notice error."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from darkroom import names, notify
from darkroom.aws.mail import Mailer

JOB = "20261204-0825-ab12cd"
RUN = "run_2:reprocess/é"


def ses_event(detail_type: str, tags: dict[str, list[str]] | None, **detail: Any) -> dict[str, Any]:
    """Shaped as SES puts it on the default bus (its EventBridge event destination)."""
    mail: dict[str, Any] = {
        "timestamp": "2026-12-04T08:30:00.000Z",
        "source": "studio@darkroom.test",
        "sendingAccountId": "123456789012",
        "messageId": "0100018c-aaaa-bbbb-cccc-000000000000-000000",
        "destination": ["ann@client.test"],
        "headersTruncated": False,
    }
    if tags is not None:
        mail["tags"] = tags
    return {
        "version": "0",
        "id": "f3c5a6a1-0000-0000-0000-000000000000",
        "detail-type": detail_type,
        "source": "aws.ses",
        "account": "123456789012",
        "time": "2026-12-04T08:30:05Z",
        "region": "us-east-1",
        "resources": ["arn:aws:ses:us-east-1:123456789012:configuration-set/darkroom-delivery"],
        "detail": {**detail, "mail": mail},
    }


def darkroom_tags(kind: str = "client") -> dict[str, list[str]]:
    # SES gives each tag as a list of values, beside its own ses:* tags.
    tags = {k: [v] for k, v in notify.mail_tags(JOB, RUN, kind).items()}
    return {"ses:configuration-set": [names.SES_CONFIGURATION_SET], **tags}


BOUNCE = {
    "eventType": "Bounce",
    "bounce": {
        "feedbackId": "0100018c-feedback",
        "bounceType": "Permanent",
        "bounceSubType": "General",
        "bouncedRecipients": [
            {
                "emailAddress": "ann@client.test",
                "action": "failed",
                "status": "5.1.1",
                "diagnosticCode": "smtp; 550 5.1.1 user unknown",
            }
        ],
        "timestamp": "2026-12-04T08:30:04.000Z",
        "reportingMTA": "dsn; a1-2.smtp-out.amazonses.com",
    },
}
COMPLAINT = {
    "eventType": "Complaint",
    "complaint": {
        "feedbackId": "0100018c-feedback",
        "complainedRecipients": [{"emailAddress": "ann@client.test"}],
        "complaintFeedbackType": "abuse",
        "timestamp": "2026-12-04T08:40:00.000Z",
    },
}


def test_tag_values_hold_only_what_ses_allows_and_decode_back_exactly() -> None:
    for text in (JOB, RUN, "webhook-done", "a_b", "_5f", ""):
        value = notify.tag_value(text)
        assert all(c.isascii() and (c.isalnum() or c in "_-") for c in value), value
        assert notify.from_tag_value(value) == text
    assert notify.tag_value("job-1") == "job-1"
    with pytest.raises(ValueError, match="too long for an SES tag"):
        notify.tag_value("é" * 50)
    with pytest.raises(ValueError, match="not a tag value darkroom wrote"):
        notify.from_tag_value("a_zz")


def test_each_message_is_sent_with_its_job_run_and_kind_as_ses_tags() -> None:
    class Ses:
        def __init__(self) -> None:
            self.request: dict[str, Any] = {}

        def send_email(self, **request: Any) -> dict[str, str]:
            self.request = request
            return {"MessageId": "m-1"}

    ses = Ses()
    mailer = Mailer("studio@darkroom.test", names.SES_CONFIGURATION_SET, ses=ses)
    mailer.send(
        to="ann@client.test",
        to_name=None,
        subject="s",
        text="t",
        html="<p>t</p>",
        tags=notify.mail_tags(JOB, RUN, "client"),
    )
    sent = {t["Name"]: t["Value"] for t in ses.request["EmailTags"]}
    assert {k: notify.from_tag_value(v) for k, v in sent.items()} == {
        names.MAIL_TAG_JOB: JOB,
        names.MAIL_TAG_RUN: RUN,
        names.MAIL_TAG_KIND: "client",
    }
    assert ses.request["ConfigurationSetName"] == names.SES_CONFIGURATION_SET


def test_a_bounce_names_its_job_run_kind_type_and_recipient() -> None:
    found = notify.parse_mail_feedback(ses_event("Email Bounced", darkroom_tags(), **BOUNCE))
    assert found == notify.MailFeedback(
        JOB, RUN, "client", f"{RUN}: bounced (Permanent/General) for ann@client.test"
    )


def test_a_complaint_names_its_feedback_type_and_who_complained() -> None:
    event = ses_event("Email Complaint Received", darkroom_tags("photographer"), **COMPLAINT)
    found = notify.parse_mail_feedback(event)
    assert found is not None and found.kind == "photographer"
    assert found.why == f"{RUN}: marked as spam (abuse) by ann@client.test"


def test_a_reject_says_the_reason_ses_gave() -> None:
    event = ses_event(
        "Email Rejected", darkroom_tags(), eventType="Reject", reject={"reason": "Bad content"}
    )
    found = notify.parse_mail_feedback(event)
    assert found is not None
    assert found.why == f"{RUN}: rejected by SES (Bad content) for ann@client.test"


@pytest.mark.parametrize(
    "tags",
    [
        None,  # another sender's mail through the same account
        {"ses:configuration-set": ["darkroom-delivery"]},
        {names.MAIL_TAG_JOB: ["a_zz"], names.MAIL_TAG_RUN: ["r"], names.MAIL_TAG_KIND: ["c"]},
        {names.MAIL_TAG_JOB: [JOB], names.MAIL_TAG_RUN: [], names.MAIL_TAG_KIND: ["client"]},
        {names.MAIL_TAG_JOB: "not a list", names.MAIL_TAG_RUN: 3, names.MAIL_TAG_KIND: None},
    ],
)
def test_an_event_without_darkroom_s_tags_names_no_job(tags: Any) -> None:
    assert notify.parse_mail_feedback(ses_event("Email Bounced", tags, **BOUNCE)) is None


def test_a_malformed_event_names_no_job_and_raises_nothing() -> None:
    for event in ({}, {"detail": "not json"}, {"detail": ["x"]}, {"detail": {"mail": "x"}}):
        assert notify.parse_mail_feedback(event) is None


class _Jobs:
    def __init__(self, known: set[str]) -> None:
        self.known = known
        self.notice_errors: dict[str, dict[str, str]] = {}

    def find(self, job_id: str) -> object | None:
        return object() if job_id in self.known else None

    def record_notice_error(self, job_id: str, kind: str, why: str) -> None:
        self.notice_errors.setdefault(job_id, {})[kind] = why


def _notifier(jobs: _Jobs) -> notify.Notifier:
    return notify.Notifier(
        settings=None,  # type: ignore[arg-type]
        jobs=jobs,  # type: ignore[arg-type]
        shares=None,  # type: ignore[arg-type]
        mailer=None,
        secret=lambda: "",
    )


def test_a_bounce_is_recorded_on_its_job_once_however_often_it_comes() -> None:
    jobs = _Jobs({JOB})
    event = ses_event("Email Bounced", darkroom_tags(), **BOUNCE)
    for _ in range(3):
        _notifier(jobs).on_mail_feedback(copy.deepcopy(event))
    assert jobs.notice_errors == {
        JOB: {"client": f"{RUN}: bounced (Permanent/General) for ann@client.test"}
    }


def test_feedback_for_no_job_of_ours_is_ignored_not_raised() -> None:
    jobs = _Jobs(set())
    assert (
        _notifier(jobs).on_mail_feedback(ses_event("Email Bounced", darkroom_tags(), **BOUNCE))
        is None
    )
    assert _notifier(jobs).on_mail_feedback(ses_event("Email Bounced", None, **BOUNCE)) is None
    assert jobs.notice_errors == {}


def test_a_failed_write_raises_so_the_event_is_tried_again_and_then_recorded() -> None:
    """The fault: the jobs table refuses the write. The handler must raise (EventBridge's
    retries, then the parked-events queue, keep the event) rather than drop the bounce."""

    class Flaky(_Jobs):
        def __init__(self) -> None:
            super().__init__({JOB})
            self.refusals = 1

        def record_notice_error(self, job_id: str, kind: str, why: str) -> None:
            if self.refusals:
                self.refusals -= 1
                raise ConnectionError("DynamoDB did not answer")
            super().record_notice_error(job_id, kind, why)

    jobs = Flaky()
    event = ses_event("Email Bounced", darkroom_tags(), **BOUNCE)
    with pytest.raises(ConnectionError):
        _notifier(jobs).on_mail_feedback(event)
    assert jobs.notice_errors == {}
    _notifier(jobs).on_mail_feedback(event)
    assert jobs.notice_errors[JOB]["client"].endswith(
        "bounced (Permanent/General) for ann@client.test"
    )
