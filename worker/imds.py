"""The instance's own id, from the EC2 instance metadata service (IMDSv2 only)."""

from __future__ import annotations

import urllib.request

_BASE = "http://169.254.169.254/latest"


def instance_id(timeout: float = 2.0) -> str:
    token_request = urllib.request.Request(
        f"{_BASE}/api/token",
        method="PUT",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": "300"},
    )
    with urllib.request.urlopen(token_request, timeout=timeout) as response:
        token = response.read().decode()
    id_request = urllib.request.Request(
        f"{_BASE}/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": token}
    )
    with urllib.request.urlopen(id_request, timeout=timeout) as response:
        return str(response.read().decode())
