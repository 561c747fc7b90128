"""Sending mail through Amazon SES (v2): one MIME message, plain text and HTML."""

from __future__ import annotations

from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from typing import Any

from darkroom.aws.clients import client


class Mailer:
    def __init__(self, sender: str, configuration_set: str = "", ses: Any | None = None) -> None:
        self.sender = sender
        self._configuration_set = configuration_set
        self._ses = ses

    def send(
        self,
        *,
        to: str,
        to_name: str | None,
        subject: str,
        text: str,
        html: str,
        from_name: str = "",
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Send it; SES's message id. Raises what SES raised (the caller records it).
        `tags` come back on SES's later events of the message (bounce, complaint): their
        values must already be SES-safe (darkroom.notify.tag_value)."""
        message = EmailMessage()
        message["From"] = formataddr((from_name, self.sender)) if from_name else self.sender
        message["To"] = formataddr((to_name, to)) if to_name else to
        message["Subject"] = subject
        message["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        request: dict[str, Any] = {
            "FromEmailAddress": self.sender,
            "Destination": {"ToAddresses": [to]},
            "Content": {"Raw": {"Data": message.as_bytes()}},
        }
        if self._configuration_set:
            request["ConfigurationSetName"] = self._configuration_set
        if tags:
            request["EmailTags"] = [{"Name": k, "Value": v} for k, v in tags.items()]
        answer = (self._ses or client("sesv2")).send_email(**request)
        return str(answer.get("MessageId", ""))
