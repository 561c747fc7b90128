"""What happens when a job's status changes (issue 18): the one place that reacts.

Fed by the job events JobStore publishes (darkroom.aws.job_events) through an
EventBridge rule, so it sees every status however it was written: by MarkDone, by
MarkFailed, or by the ending reconciler for an execution that was stopped or timed out.

- every status: the studio's webhook, if one is configured, receives the event's JSON,
  signed (darkroom.webhook);
- a terminal status: with `deliver: auto`, the first run that finishes with renditions
  creates a share and emails the client its link (a later run emails the client only if
  the job asks, `notify_client_on_reprocess`: the same link already shows the new work);
  the photographer is emailed every terminal status, with the counts and the cause.

Later, SES may say what became of a message it accepted (a bounce, a complaint, a
reject): each message carries SES tags naming its job, run and kind, the configuration
set sends those events to the default bus, and a rule sends them here
(`Notifier.on_mail_feedback`). They are recorded in the job's `notice_errors` like a
refused send; the job's status never changes.

Each message of a run is sent once: a NOTICE#<run>#<kind> item is claimed with a
conditional write before sending, so a redelivered event, or two at once, send nothing
twice. A failed send is recorded on the job (`notice_errors`, shown by `darkroom
status`) and may be tried again by a later delivery of the event; it never fails the job.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from darkroom import names, webhook
from darkroom.api.shares import issue_share
from darkroom.aws.job_store import JobStore
from darkroom.aws.shares import ShareStore
from darkroom.jobs import SHAREABLE, TERMINAL, Job, JobStatus, utc_now
from darkroom.observability import logger
from darkroom.settings import NotifySettings


class Sender(Protocol):
    sender: str

    def send(
        self,
        *,
        to: str,
        to_name: str | None,
        subject: str,
        text: str,
        html: str,
        from_name: str,
        tags: Mapping[str, str] | None = None,
    ) -> str: ...


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    html: str


@dataclass
class Notified:
    job_id: str
    run_id: str | None
    status: str
    sent: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    # The failures another try may mend (not a setting that is missing).
    retryable: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "run_id": self.run_id,
            "status": self.status,
            "sent": self.sent,
            "skipped": self.skipped,
            "failed": self.failed,
        }


@dataclass(frozen=True)
class Notifier:
    settings: NotifySettings
    jobs: JobStore
    shares: ShareStore
    mailer: Sender | None
    secret: Callable[[], str]
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep

    def on_event(self, event: Mapping[str, Any]) -> Notified:
        detail = event.get("detail") or {}
        if isinstance(detail, str):
            detail = json.loads(detail)
        job_id = str(detail.get("job_id") or "")
        run = detail.get("run_id")
        status = str(detail.get("status") or "")
        outcome = Notified(job_id, run, status)
        job = self.jobs.find(job_id) if job_id else None
        if job is None or not run:
            logger.warning("job event for no job", extra={"detail": detail})
            return outcome
        if self.settings.webhook_url:
            self._once(outcome, job, run, f"webhook-{status.lower()}", lambda: self._post(detail))
        if status in TERMINAL:
            self._notify_terminal(outcome, job, run, JobStatus(status), detail)
        logger.info("job event handled", extra=outcome.to_dict())
        if outcome.retryable:
            # Recorded on the job already; raising has Lambda try the event again (its
            # asynchronous retries), and a message that went out is not sent twice.
            raise NoticesFailed("; ".join(f"{k}: {why}" for k, why in outcome.retryable.items()))
        return outcome

    # -- the terminal messages ------------------------------------------------------
    def _notify_terminal(
        self, outcome: Notified, job: Job, run: str, status: JobStatus, detail: Mapping[str, Any]
    ) -> None:
        policy = job.delivery_policy
        client_note = ""
        if policy is not None and policy.auto and status in SHAREABLE:
            first = job.auto_share_id is None
            if first or policy.notify_client_on_reprocess:
                self._once(outcome, job, run, "client", lambda: self._email_client(job, run, first))
                if "client" in outcome.sent:
                    client_note = (
                        f"{policy.client_email} was emailed the link."
                        if first
                        else f"{policy.client_email} was told the link shows the new work."
                    )
                elif "client" in outcome.failed:
                    client_note = f"Emailing {policy.client_email} failed: see darkroom status."
        if self.settings.photographer_email:
            self._once(
                outcome,
                job,
                run,
                "photographer",
                lambda: self._email_photographer(job, run, status, detail, client_note),
            )

    def _email_client(self, job: Job, run: str, first: bool) -> str:
        policy = job.delivery_policy
        assert policy is not None and policy.client_email
        if not self.settings.share_base_url:
            raise NotConfigured("no share_base_url is configured, so there is no link to send")
        if not first:
            message = client_update_message(self.studio, job, policy.client_name)
            return self._send(policy.client_email, policy.client_name, message, job, run, "client")
        life = policy.share_expires_in or self.settings.share_default_expiry_seconds
        expires_at = int(self.clock()) + life
        issued = issue_share(self.shares, job.job_id, expires_at, created_by="darkroom delivery")
        link = f"{self.settings.share_base_url.rstrip('/')}/share/{issued.token}"
        message = client_link_message(self.studio, job, policy.client_name, link, expires_at)
        try:
            message_id = self._send(
                policy.client_email, policy.client_name, message, job, run, "client"
            )
        except Exception:
            # Only the email had the token: an unsent link is revoked, and a retry
            # issues and sends a new one.
            self.shares.revoke(job.job_id, issued.share_id, utc_now())
            raise
        self.jobs.record_auto_share(job.job_id, issued.share_id)
        return message_id

    def _email_photographer(
        self, job: Job, run: str, status: JobStatus, detail: Mapping[str, Any], client_note: str
    ) -> str:
        message = photographer_message(self.studio, job, status, detail, client_note)
        return self._send(self.settings.photographer_email, None, message, job, run, "photographer")

    def _send(
        self, to: str, name: str | None, message: Message, job: Job, run: str, kind: str
    ) -> str:
        if self.mailer is None or not self.mailer.sender:
            raise NotConfigured("no sender_email is configured")
        return self.mailer.send(
            to=to,
            to_name=name,
            subject=message.subject,
            text=message.text,
            html=message.html,
            from_name=self.studio,
            tags=mail_tags(job.job_id, run, kind),
        )

    # -- what SES later says of a message -------------------------------------------
    def on_mail_feedback(self, event: Mapping[str, Any]) -> MailFeedback | None:
        """Record a bounce, complaint or reject on the message's job. An event that
        names no job of ours (no darkroom tags, a job since deleted) is logged and
        ignored: raising would only have EventBridge retry what can never succeed."""
        feedback = parse_mail_feedback(event)
        if feedback is None:
            logger.warning(
                "mail event with no darkroom tags ignored",
                extra={"detail-type": event.get("detail-type"), "id": event.get("id")},
            )
            return None
        if self.jobs.find(feedback.job_id) is None:
            logger.warning("mail event for no job ignored", extra=feedback.to_dict())
            return None
        self.jobs.record_notice_error(feedback.job_id, feedback.kind, feedback.why)
        logger.info("mail feedback recorded", extra=feedback.to_dict())
        return feedback

    def _post(self, detail: Mapping[str, Any]) -> str:
        body = json.dumps(
            {
                "source": names.JOB_EVENT_SOURCE,
                "detail-type": names.JOB_EVENT_DETAIL_TYPE,
                "detail": dict(detail),
            },
            sort_keys=True,
        ).encode()
        done = webhook.post(
            self.settings.webhook_url,
            body,
            self.secret(),
            attempts=self.settings.webhook_attempts,
            sleep=self.sleep,
            clock=self.clock,
        )
        if done.error:
            raise NotifyError(done.error)
        return f"HTTP {done.status} after {done.attempts} tries"

    @property
    def studio(self) -> str:
        return self.settings.studio_name or "darkroom"

    # -- once per run ---------------------------------------------------------------
    def _once(
        self, outcome: Notified, job: Job, run: str, kind: str, send: Callable[[], str]
    ) -> None:
        if not self.jobs.claim_notice(job.job_id, run, kind, now=self.clock()):
            outcome.skipped.append(kind)
            return
        try:
            detail = send()
        except Exception as exc:
            why = f"{type(exc).__name__}: {exc}" if not isinstance(exc, NotifyError) else str(exc)
            logger.warning(
                "notice not sent", extra={"job_id": job.job_id, "kind": kind, "why": why}
            )
            self.jobs.finish_notice(job.job_id, run, kind, error=why)
            outcome.failed[kind] = why
            if not isinstance(exc, NotConfigured):
                outcome.retryable[kind] = why
            return
        self.jobs.finish_notice(job.job_id, run, kind, error=None, detail=detail)
        outcome.sent.append(kind)


class NotifyError(Exception):
    """A notice that was not sent (recorded on the job, as SES's errors are)."""


class NotConfigured(NotifyError):
    """A setting the notice needs is empty: trying again cannot help."""


class NoticesFailed(Exception):
    """Some notices failed and may succeed on another try of the event."""


# -- SES tags and the events that carry them back ----------------------------------
# An SES tag value may hold only ASCII letters, digits, "_" and "-" (256 at most): any
# other byte of the UTF-8 text, "_" included, is written "_xx" (its hex), so every
# value decodes back exactly.
_TAG_SAFE = re.compile(r"[A-Za-z0-9-]")
_TAG_ESCAPE = re.compile(r"_([0-9a-f]{2})")
MAX_TAG_CHARS = 256


def tag_value(text: str) -> str:
    encoded = "".join(
        ch if _TAG_SAFE.fullmatch(ch) else "".join(f"_{b:02x}" for b in ch.encode()) for ch in text
    )
    if len(encoded) > MAX_TAG_CHARS:
        raise ValueError(f"{text!r} is too long for an SES tag ({len(encoded)} > 256 encoded)")
    return encoded


def from_tag_value(value: str) -> str:
    if not re.fullmatch(r"(?:[A-Za-z0-9-]|_[0-9a-f]{2})*", value):
        raise ValueError(f"{value!r} is not a tag value darkroom wrote")
    raw = bytearray()
    for piece in re.split(r"(_[0-9a-f]{2})", value):
        raw += bytes([int(piece[1:], 16)]) if _TAG_ESCAPE.fullmatch(piece) else piece.encode()
    return raw.decode()


def mail_tags(job_id: str, run: str, kind: str) -> dict[str, str]:
    return {
        names.MAIL_TAG_JOB: tag_value(job_id),
        names.MAIL_TAG_RUN: tag_value(run),
        names.MAIL_TAG_KIND: tag_value(kind),
    }


@dataclass(frozen=True)
class MailFeedback:
    job_id: str
    run: str
    kind: str
    why: str  # "<run>: bounced (Permanent/General) for ann@client.test"

    def to_dict(self) -> dict[str, str]:
        return {"job_id": self.job_id, "run_id": self.run, "kind": self.kind, "why": self.why}


def parse_mail_feedback(event: Mapping[str, Any]) -> MailFeedback | None:
    """SES's EventBridge event of a bounce, complaint or reject, as the job's notice
    error; None when it does not carry darkroom's tags (or carries them garbled)."""
    detail = event.get("detail") or {}
    if isinstance(detail, str):
        try:
            detail = json.loads(detail)
        except ValueError:
            return None
    if not isinstance(detail, Mapping):
        return None
    mail = detail.get("mail") or {}
    tags = mail.get("tags") if isinstance(mail, Mapping) else None
    if not isinstance(tags, Mapping):
        return None
    try:
        job_id, run, kind = (
            from_tag_value(str((tags.get(name) or [""])[0]))
            for name in (names.MAIL_TAG_JOB, names.MAIL_TAG_RUN, names.MAIL_TAG_KIND)
        )
    except (ValueError, TypeError, IndexError, UnicodeDecodeError):
        return None
    if not (job_id and run and kind):
        return None
    event_type = str(detail.get("eventType") or event.get("detail-type") or "")
    destination = ", ".join(str(a) for a in mail.get("destination") or []) or "?"
    if event_type in ("Bounce", "Email Bounced"):
        bounce = detail.get("bounce") or {}
        who = _addresses(bounce.get("bouncedRecipients")) or destination
        how = "/".join(str(bounce.get(k)) for k in ("bounceType", "bounceSubType") if bounce.get(k))
        why = f"bounced ({how or 'no type given'}) for {who}"
    elif event_type in ("Complaint", "Email Complaint Received"):
        complaint = detail.get("complaint") or {}
        who = _addresses(complaint.get("complainedRecipients")) or destination
        how = complaint.get("complaintFeedbackType") or "no feedback type given"
        why = f"marked as spam ({how}) by {who}"
    elif event_type in ("Reject", "Email Rejected"):
        reason = (detail.get("reject") or {}).get("reason") or "no reason given"
        why = f"rejected by SES ({reason}) for {destination}"
    else:
        why = f"SES event {event_type or 'of no type'} for {destination}"
    return MailFeedback(job_id, run, kind, f"{run}: {why}")


def _addresses(recipients: Any) -> str:
    if not isinstance(recipients, list):
        return ""
    return ", ".join(
        str(r.get("emailAddress"))
        for r in recipients
        if isinstance(r, Mapping) and r.get("emailAddress")
    )


# -- the messages -------------------------------------------------------------------
def _when(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%A %d %B %Y, %H:%M UTC")


def _page(studio: str, paragraphs: list[str], link: str | None = None) -> str:
    """A plain HTML body: every piece of text escaped, no images, no tracking, the link
    as it is (no redirect through anything)."""
    e = html.escape
    parts = [f"<p>{e(p)}</p>" for p in paragraphs]
    if link:
        # After the greeting and the sentence saying what the link is.
        parts.insert(
            2,
            f'<p><a href="{e(link, quote=True)}" style="font-weight:bold">'
            "Open your photos</a></p>"
            f'<p style="font-size:12px;color:#555">Or copy this address: {e(link)}</p>',
        )
    return (
        '<!doctype html><html><head><meta charset="utf-8"></head>'
        '<body style="font-family:sans-serif;max-width:560px;margin:24px auto;color:#222">'
        f'<h2 style="font-weight:normal">{e(studio)}</h2>' + "".join(parts) + "</body></html>"
    )


def client_link_message(
    studio: str, job: Job, client_name: str | None, link: str, expires_at: int
) -> Message:
    shoot = job.name or job.job_id
    greeting = f"Hello {client_name}," if client_name else "Hello,"
    lines = [
        greeting,
        f"Your photos from {shoot} are ready: {job.files_done} to view and download.",
        f"The link works until {_when(expires_at)}. Anyone with it can see the photos, "
        "so please keep it to yourself.",
        f"— {studio}",
    ]
    text = "\n\n".join([lines[0], lines[1], link, *lines[2:]]) + "\n"
    return Message(
        f"{studio}: your photos from {shoot} are ready", text, _page(studio, lines, link)
    )


def client_update_message(studio: str, job: Job, client_name: str | None) -> Message:
    shoot = job.name or job.job_id
    greeting = f"Hello {client_name}," if client_name else "Hello,"
    lines = [
        greeting,
        f"Your photos from {shoot} have been updated. The link we sent you before now "
        "shows the new versions.",
        f"— {studio}",
    ]
    return Message(
        f"{studio}: your photos from {shoot} were updated",
        "\n\n".join(lines) + "\n",
        _page(studio, lines),
    )


def photographer_message(
    studio: str, job: Job, status: JobStatus, detail: Mapping[str, Any], client_note: str
) -> Message:
    shoot = job.name or job.job_id
    total = detail.get("files_total", job.files_total)
    done = detail.get("files_done", job.files_done)
    failed = detail.get("files_failed", job.files_failed)
    lines = [
        f"Job {job.job_id} ({shoot}) ended {status}.",
        f"Files: {done} developed, {failed} failed, of {total}.",
    ]
    if status == JobStatus.FAILED:
        lines.append(
            f"Cause: {detail.get('error') or job.error}: {detail.get('cause') or job.cause}"
        )
    if client_note:
        lines.append(client_note)
    lines.append(f"darkroom status {job.job_id} shows the details.")
    return Message(
        f"{studio}: job {shoot} {status}", "\n\n".join(lines) + "\n", _page(studio, lines)
    )
