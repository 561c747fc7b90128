"""Automatic delivery (issue 18): job events on the default bus, a rule sending them to
the notify function, the SES identity and configuration set it sends from, and the
webhook's signing secret.

Why a rule on darkroom's own job events rather than a state after MarkDone/MarkFailed:
a job also ends where no state runs (stopped, timed out: the ending reconciler writes
those), and the studio's own systems want the same events. JobStore publishes each
status it writes (darkroom.aws.job_events), so one rule sees every ending, however it
was written, and the local cloud delivers the same events to the same function.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_ses as ses
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cdk.config import DeployConfig
from cdk.functions import DarkroomFunction, table_statement
from cdk.storage import Storage
from darkroom import names
from darkroom.names import Function

# A notice outlives a short outage of the function; what is left is parked.
DELIVERY_RETRIES = 20
DELIVERY_MAX_AGE = cdk.Duration.hours(6)


def put_job_events(stack: cdk.Stack) -> iam.PolicyStatement:
    """What a runtime that writes job statuses needs to publish them (JobEvents)."""
    return iam.PolicyStatement(
        sid="PublishJobEvents",
        actions=["events:PutEvents"],
        resources=[
            stack.format_arn(service="events", resource="event-bus", resource_name="default")
        ],
        conditions={"StringEquals": {"events:source": names.JOB_EVENT_SOURCE}},
    )


class Delivery(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: DeployConfig,
        storage: Storage,
        code: lambda_.Code,
        api_url: str,
        failures: sqs.IQueue,
        settings_values: Mapping[str, Any],
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, id)
        stack = cdk.Stack.of(self)
        self.configuration_set = ses.ConfigurationSet(
            self,
            "ConfigurationSet",
            configuration_set_name=names.in_stack(names.SES_CONFIGURATION_SET, stack.stack_name),
            # Delivery mail carries no tracking: no open or click tracking is configured.
            reputation_metrics=True,
            sending_enabled=True,
            suppression_reasons=ses.SuppressionReasons.BOUNCES_AND_COMPLAINTS,
        )
        # The sender's domain, verified with Easy DKIM (README: DNS records to add);
        # none when no sender is configured, and then no mail is sent.
        self.sender_identity = config.sender_domain
        statements = [
            # Notifier: the job, its NOTICE# items (conditional claims), auto_share_id.
            table_statement(storage.jobs, "GetItem", "UpdateItem"),
            # issue_share's conditional PutItem, and the revoke of an unsent link.
            table_statement(storage.shares, "PutItem", "UpdateItem"),
        ]
        if self.sender_identity:
            self.identity = ses.EmailIdentity(
                self,
                "SenderIdentity",
                identity=ses.Identity.domain(self.sender_identity),
                configuration_set=self.configuration_set,
            )
            statements.append(
                iam.PolicyStatement(
                    sid="SendFromTheSenderIdentityOnly",
                    actions=["ses:SendEmail", "ses:SendRawEmail"],
                    resources=[
                        self.identity.email_identity_arn,
                        stack.format_arn(
                            service="ses",
                            resource="configuration-set",
                            resource_name=self.configuration_set.configuration_set_name,
                        ),
                    ],
                    conditions={"StringEquals": {"ses:FromAddress": config.sender_email}},
                )
            )
        self.webhook_secret = secretsmanager.Secret(
            self,
            "WebhookSecret",
            secret_name=names.in_stack(names.WEBHOOK_SECRET, stack.stack_name),
            description="HMAC-SHA256 key the studio's webhook checks darkroom's signature with",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                exclude_punctuation=True, password_length=48
            ),
        )
        statements.append(
            iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue"],
                resources=[self.webhook_secret.secret_arn],
            )
        )
        self.notify = DarkroomFunction(
            self,
            "Notify",
            function=Function.NOTIFY,
            code=code,
            settings_values={
                **settings_values,
                "sender_email": config.sender_email,
                "photographer_email": config.photographer_email,
                "webhook_url": config.webhook_url,
                "ses_configuration_set": self.configuration_set.configuration_set_name,
                "webhook_secret_id": self.webhook_secret.secret_arn,
                "share_base_url": api_url,
            },
            statements=statements,
            log_retention=log_retention,
            description="emails an auto job's client its link and the photographer each "
            "ending; calls the studio's webhook",
        )
        # Both rules deliver the same way: retried for hours, then parked on `failures`.
        to_notify = targets.LambdaFunction(
            self.notify.function,
            retry_attempts=DELIVERY_RETRIES,
            max_event_age=DELIVERY_MAX_AGE,
            dead_letter_queue=failures,
        )
        self.rule = events.Rule(
            self,
            "JobEvents",
            description="every status change of a darkroom job, to the notify function",
            event_pattern=events.EventPattern(
                source=[names.JOB_EVENT_SOURCE], detail_type=[names.JOB_EVENT_DETAIL_TYPE]
            ),
            targets=[to_notify],
        )
        # What SES later says of a message it accepted: bounces, complaints and rejects
        # go to the default bus (the only bus SES sends to) and on to the same function,
        # which records them on the message's job (its SES tags name it). Its table
        # grant above already covers the write.
        self.configuration_set.add_event_destination(
            "MailFeedback",
            configuration_set_event_destination_name=names.SES_FEEDBACK_DESTINATION,
            destination=ses.EventDestination.event_bus(
                events.EventBus.from_event_bus_name(self, "DefaultBus", "default")
            ),
            events=[
                ses.EmailSendingEvent.BOUNCE,
                ses.EmailSendingEvent.COMPLAINT,
                ses.EmailSendingEvent.REJECT,
            ],
        )
        self.feedback_rule = events.Rule(
            self,
            "MailFeedbackEvents",
            description="SES bounces, complaints and rejects of darkroom's mail, to notify",
            event_pattern=events.EventPattern(
                source=[names.SES_EVENT_SOURCE],
                detail_type=list(names.SES_FEEDBACK_DETAIL_TYPES),
            ),
            targets=[to_notify],
        )
