"""Notify: a job's status changed (its EventBridge event): the webhook, and on a
terminal status the client's link and the photographer's email (darkroom.notify).
Also SES's later word on a message it sent (aws.ses: bounced, complaint, rejected),
recorded on the message's job."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from darkroom import names
from darkroom.aws.job_store import JobStore
from darkroom.aws.mail import Mailer
from darkroom.aws.secrets import secret_text
from darkroom.aws.shares import ShareStore
from darkroom.notify import Notifier
from darkroom.observability import configure, logger
from darkroom.settings import NotifySettings, load
from darkroom.tracing import tracer

settings = load(NotifySettings)
configure(settings)
notifier = Notifier(
    settings=settings,
    jobs=JobStore(settings.jobs_table),
    shares=ShareStore(settings.shares_table),
    mailer=Mailer(settings.sender_email, settings.ses_configuration_set)
    if settings.sender_email
    else None,
    secret=lambda: secret_text(settings.webhook_secret_id),
)


@logger.inject_lambda_context(correlation_id_path="detail.job_id")
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("source") == names.SES_EVENT_SOURCE:
        feedback = notifier.on_mail_feedback(event)
        return feedback.to_dict() if feedback else {"ignored": event.get("detail-type")}
    return notifier.on_event(event).to_dict()
