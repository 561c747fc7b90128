"""SQS: reading and clearing an on-failure queue (events a function gave up on)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from darkroom.aws.clients import client


@dataclass(frozen=True)
class Message:
    receipt_handle: str
    body: Any  # the JSON document; None when the body is not JSON


class FailureQueue:
    def __init__(self, queue_url: str, sqs: Any | None = None) -> None:
        self.queue_url = queue_url
        self._sqs = sqs or client("sqs")

    def receive(self, *, hide_seconds: int, max_batches: int = 10) -> Iterator[Message]:
        """What is waiting, ten at a time, each hidden from other readers for
        `hide_seconds`: a message not deleted by then is seen again."""
        for _ in range(max_batches):
            answer = self._sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=hide_seconds,
                WaitTimeSeconds=0,
            )
            messages = answer.get("Messages", [])
            for raw in messages:
                try:
                    body = json.loads(raw.get("Body") or "")
                except ValueError:
                    body = None
                yield Message(raw["ReceiptHandle"], body)
            if not messages:
                return

    def delete(self, message: Message) -> None:
        self._sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message.receipt_handle)

    def send(self, body: Any) -> None:
        self._sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(body))
