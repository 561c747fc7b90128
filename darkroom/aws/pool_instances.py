"""The worker pool's EC2 instances: start, stop, describe, and tag them.

StartWorker and StopWorker start and stop one instance per job (StartWorker changing a
stopped one's type when EC2 has no capacity for it), the worker stops its
own when idle on the local cloud, the cost guard describes the pool and keeps its
bookkeeping tag on it, and the pool scaler launches instances from the pool's launch
template and terminates them: all through this one adapter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from botocore.exceptions import ClientError

from darkroom.aws.clients import client, error_code


class InstanceNotReady(Exception):
    """The instance cannot be started yet (still stopping from its previous job)."""


class NoCapacity(Exception):
    """EC2 cannot start the instance as its current type: none free in its zone
    (InsufficientInstanceCapacity), or the type is not offered there (Unsupported)."""


NO_CAPACITY: Final = frozenset({"InsufficientInstanceCapacity", "Unsupported"})


@dataclass(frozen=True)
class Instance:
    instance_id: str
    state: str  # EC2's state name: pending, running, stopping, stopped...
    launch_time: datetime | None  # the last start (EC2 resets it at every start)
    tags: Mapping[str, str]
    instance_type: str = ""


class PoolInstances:
    def __init__(self, ec2: Any | None = None) -> None:
        self._ec2 = ec2 or client("ec2")

    def start(self, instance_id: str) -> None:
        try:
            self._ec2.start_instances(InstanceIds=[instance_id])
        except ClientError as exc:
            if error_code(exc) == "IncorrectInstanceState":
                raise InstanceNotReady(f"{instance_id}: {exc}") from exc
            if error_code(exc) in NO_CAPACITY:
                raise NoCapacity(f"{instance_id}: {exc}") from exc
            raise

    def instance_type(self, instance_id: str) -> str:
        # The pool's one describe call (DescribeInstances), as the cost guard reads it.
        (instance,) = self.describe([instance_id])
        return instance.instance_type

    def set_type(self, instance_id: str, instance_type: str) -> None:
        """Change a stopped instance's type (EC2 refuses a running one's)."""
        try:
            self._ec2.modify_instance_attribute(
                InstanceId=instance_id, InstanceType={"Value": instance_type}
            )
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

    def describe(self, instance_ids: Sequence[str]) -> list[Instance]:
        """The instances, sorted by id."""
        return self._describe({"InstanceIds": list(instance_ids)})

    def _describe(self, request: Mapping[str, Any]) -> list[Instance]:
        found: list[Instance] = []
        kwargs: dict[str, Any] = dict(request)
        while True:
            page = self._ec2.describe_instances(**kwargs)
            for reservation in page.get("Reservations", []):
                for raw in reservation.get("Instances", []):
                    launch = raw.get("LaunchTime")
                    if isinstance(launch, datetime) and launch.tzinfo is None:
                        launch = launch.replace(tzinfo=UTC)
                    found.append(
                        Instance(
                            instance_id=raw["InstanceId"],
                            state=raw["State"]["Name"],
                            launch_time=launch if isinstance(launch, datetime) else None,
                            tags={t["Key"]: t["Value"] for t in raw.get("Tags", [])},
                            instance_type=raw.get("InstanceType", ""),
                        )
                    )
            if not page.get("NextToken"):
                return sorted(found, key=lambda i: i.instance_id)
            kwargs["NextToken"] = page["NextToken"]

    def describe_tagged(self, key: str, value: str) -> list[Instance]:
        """Every instance carrying this tag (terminated ones too, while EC2 lists them)."""
        return self._describe({"Filters": [{"Name": f"tag:{key}", "Values": [value]}]})

    def launch(
        self, template: str, count: int, *, subnet_id: str = "", version: str = "$Latest"
    ) -> list[str]:
        """RunInstances from the launch template (id lt-..., else its name): its tags,
        user data, role and volumes come with it; the ids launched. $Latest: the
        version the last deploy wrote, whichever version is marked default."""
        spec = {
            "LaunchTemplateId" if template.startswith("lt-") else "LaunchTemplateName": template
        }
        kwargs: dict[str, Any] = {
            "LaunchTemplate": {**spec, "Version": version},
            "MinCount": count,
            "MaxCount": count,
        }
        if subnet_id:
            kwargs["SubnetId"] = subnet_id
        reservation = self._ec2.run_instances(**kwargs)
        return sorted(i["InstanceId"] for i in reservation["Instances"])

    def terminate(self, instance_ids: Sequence[str]) -> None:
        if instance_ids:
            self._ec2.terminate_instances(InstanceIds=list(instance_ids))

    def vcpus(self, instance_types: Sequence[str]) -> dict[str, int]:
        """Default vCPUs of each type (DescribeInstanceTypes), for the scaler's cap."""
        wanted = sorted(set(instance_types))
        if not wanted:
            return {}
        page = self._ec2.describe_instance_types(InstanceTypes=wanted)
        return {
            t["InstanceType"]: int(t["VCpuInfo"]["DefaultVCpus"])
            for t in page.get("InstanceTypes", [])
        }

    def tag(self, instance_ids: Sequence[str], key: str, value: str) -> None:
        if instance_ids:
            self._ec2.create_tags(Resources=list(instance_ids), Tags=[{"Key": key, "Value": value}])

    def untag(self, instance_ids: Sequence[str], key: str) -> None:
        if instance_ids:
            self._ec2.delete_tags(Resources=list(instance_ids), Tags=[{"Key": key}])
