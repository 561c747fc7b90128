"""Starting and stopping the EC2 worker pool's instances."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from darkroom.aws.clients import client, error_code


class InstanceNotReady(Exception):
    """The instance cannot be started yet (still stopping from its previous job)."""


class WorkerPool:
    def __init__(self, ec2: Any | None = None) -> None:
        self._ec2 = ec2 or client("ec2")

    def state(self, instance_id: str) -> str:
        reservations = self._ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        return str(reservations[0]["Instances"][0]["State"]["Name"])

    def start(self, instance_id: str) -> None:
        try:
            self._ec2.start_instances(InstanceIds=[instance_id])
        except ClientError as exc:
            if error_code(exc) == "IncorrectInstanceState":
                raise InstanceNotReady(f"{instance_id}: {exc}") from exc
            raise

    def stop(self, instance_id: str) -> None:
        try:
            self._ec2.stop_instances(InstanceIds=[instance_id])
        except ClientError as exc:
            # Already stopping or stopped is what we want.
            if error_code(exc) != "IncorrectInstanceState":
                raise
