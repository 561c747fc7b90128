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

Each message of a run is sent once: a NOTICE#<run>#<kind> item is claimed with a
conditional write before sending, so a redelivered event, or two at once, send nothing
twice. A failed send is recorded on the job (`notice_errors`, shown by `darkroom
status`) and may be tried again by a later delivery of the event; it never fails the job.
"""

from __future__ import annotations

import html
import json
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
        self, *, to: str, to_name: str | None, subject: str, text: str, html: str, from_name: str
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
                lambda: self._email_photographer(job, status, detail, client_note),
            )

    def _email_client(self, job: Job, run: str, first: bool) -> str:
        policy = job.delivery_policy
        assert policy is not None and policy.client_email
        if not self.settings.share_base_url:
            raise NotConfigured("no share_base_url is configured, so there is no link to send")
        if not first:
            message = client_update_message(self.studio, job, policy.client_name)
            return self._send(policy.client_email, policy.client_name, message)
        life = policy.share_expires_in or self.settings.share_default_expiry_seconds
        expires_at = int(self.clock()) + life
        issued = issue_share(self.shares, job.job_id, expires_at, created_by="darkroom delivery")
        link = f"{self.settings.share_base_url.rstrip('/')}/share/{issued.token}"
        message = client_link_message(self.studio, job, policy.client_name, link, expires_at)
        try:
            message_id = self._send(policy.client_email, policy.client_name, message)
        except Exception:
            # Only the email had the token: an unsent link is revoked, and a retry
            # issues and sends a new one.
            self.shares.revoke(job.job_id, issued.share_id, utc_now())
            raise
        self.jobs.record_auto_share(job.job_id, issued.share_id)
        return message_id

    def _email_photographer(
        self, job: Job, status: JobStatus, detail: Mapping[str, Any], client_note: str
    ) -> str:
        message = photographer_message(self.studio, job, status, detail, client_note)
        return self._send(self.settings.photographer_email, None, message)

    def _send(self, to: str, name: str | None, message: Message) -> str:
        if self.mailer is None or not self.mailer.sender:
            raise NotConfigured("no sender_email is configured")
        return self.mailer.send(
            to=to,
            to_name=name,
            subject=message.subject,
            text=message.text,
            html=message.html,
            from_name=self.studio,
        )

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
