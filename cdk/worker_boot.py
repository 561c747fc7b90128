"""What boots a pool instance: paths on the instance, the scripts and the systemd units
that user data writes, and the helpers that fill them in. The worker pool construct
assembles them into user data.

Two units: a root one-shot that mounts the scratch volume and installs the worker, and
the worker itself, which requires it and runs as an unprivileged, sandboxed user."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

SCRATCH_DEVICE: Final = "/dev/sdf"
ROOT_DEVICE: Final = "/dev/xvda"  # Amazon Linux 2023's root device name
MOUNT_POINT: Final = "/var/lib/darkroom"
SCRATCH_DIR: Final = f"{MOUNT_POINT}/scratch"
WORKER_ENV_FILE: Final = "/etc/darkroom/worker.env"
WORKER_LOG_FILE: Final = "/var/log/darkroom/worker.log"
UNIT_NAME: Final = "darkroom-worker.service"
SETUP_UNIT_NAME: Final = "darkroom-worker-setup.service"
WORKER_USER: Final = "darkroom-worker"
# Of the instance's memory, what the worker and its decoders may use together.
MEMORY_MAX: Final = "85%"
INSTALL_DIR: Final = "/opt/darkroom"
# In the worker's source asset (cdk/bundling.py): the lock's part for the instance, the
# wheels it names, and under those the project's own wheel.
WORKER_REQUIREMENTS: Final = "worker-requirements.txt"
WORKER_WHEELS: Final = "wheels"
WORKER_PROJECT_WHEELS: Final = "project"


SCRATCH_SCRIPT: Final = r"""#!/bin/bash
# Mounts the scratch volume at @MOUNT@, formatting it only if it carries no file system,
# and hands the scratch directory to the worker's user. Safe at every boot.
set -euo pipefail
mount_point=@MOUNT@
if mountpoint -q "$mount_point"; then
  mkdir -p @SCRATCH@
  chown -R @USER@:@USER@ @SCRATCH@
  exit 0
fi
device=""
for _ in $(seq 1 120); do
  # Amazon Linux's udev rules name NVMe EBS volumes after their block device mapping.
  if [ -e @DEVICE@ ]; then device=$(readlink -f @DEVICE@); break; fi
  root_disk=$(lsblk -no PKNAME "$(findmnt -no SOURCE /)")
  other=$(lsblk -dno NAME,TYPE \
    | awk -v root="$root_disk" '$2 == "disk" && $1 != root {print "/dev/" $1; exit}')
  if [ -n "$other" ]; then device=$other; break; fi
  sleep 1
done
if [ -z "$device" ]; then echo "darkroom: scratch volume @DEVICE@ not found" >&2; exit 1; fi
if ! blkid "$device" >/dev/null 2>&1; then
  mkfs.xfs -q -L drscratch "$device"  # XFS labels: 12 characters at most
fi
uuid=$(blkid -s UUID -o value "$device")
mkdir -p "$mount_point"
if ! grep -q "UUID=$uuid" /etc/fstab; then
  echo "UUID=$uuid $mount_point xfs defaults,nofail 0 2" >> /etc/fstab
fi
mount "$mount_point"
mkdir -p @SCRATCH@
# The worker runs unprivileged: its scratch directory is the one place it writes.
chown -R @USER@:@USER@ @SCRATCH@
"""

# The install step proper: the lock's pins from the asset's own wheels, each file's hash
# checked, then the project's wheel; no index, so no boot depends on PyPI.
PIP_INSTALL: Final = r"""@INSTALL@/venv/bin/pip install --quiet --disable-pip-version-check \
  --no-index --find-links @INSTALL@/src/@WHEELS@ --require-hashes --no-deps \
  --requirement @INSTALL@/src/@REQUIREMENTS@
@INSTALL@/venv/bin/pip install --quiet --disable-pip-version-check --no-index --no-deps \
  @INSTALL@/src/@WHEELS@/@PROJECT_WHEELS@/*.whl"""

INSTALL_SCRIPT: Final = r"""#!/bin/bash
# Installs the worker bundle the SSM parameter named in source.env points at, whenever
# that changed since the last install: a deploy updates each instance at its next start.
set -euo pipefail
. @INSTALL@/source.env
bundle=$(aws ssm get-parameter --region "$AWS_REGION" --name "$DARKROOM_BUNDLE_PARAMETER" \
  --query Parameter.Value --output text)
stamp=@INSTALL@/.installed
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$bundle" ]; then
  exit 0
fi
dnf install -y -q python3.12 python3.12-pip amazon-cloudwatch-agent logrotate
rm -rf @INSTALL@/src @INSTALL@/venv @INSTALL@/source.zip
aws s3 cp --only-show-errors --region "$AWS_REGION" "$bundle" @INSTALL@/source.zip
python3 -m zipfile -e @INSTALL@/source.zip @INSTALL@/src
rm -f @INSTALL@/source.zip
python3.12 -m venv @INSTALL@/venv
@PIP_INSTALL@
/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl \
  -a fetch-config -m ec2 -s -c file:@INSTALL@/cloudwatch-agent.json
echo "$bundle" > "$stamp"
""".replace("@PIP_INSTALL@", PIP_INSTALL)

SETUP_UNIT: Final = """[Unit]
Description=darkroom worker setup: scratch volume and worker install (as root)
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=@INSTALL@/scratch.sh
ExecStart=@INSTALL@/install.sh
# Once set up (at every boot: a first boot cut short finishes on the next), start the
# worker; the worker unit requires this one, so it never runs on a half-installed box.
ExecStartPost=/usr/bin/systemctl start --no-block @WORKER_UNIT@
Restart=on-failure
RestartSec=30
# The first start installs Python and the worker's wheels.
TimeoutStartSec=1800
StandardOutput=append:@LOG_FILE@
StandardError=inherit

[Install]
WantedBy=multi-user.target
"""

# The worker itself: an unprivileged user that can write its scratch directory and
# nothing else on the box. It stops its own instance through the EC2 API when idle
# (an IAM grant limited to that instance), so it needs no root and no polkit rule.
UNIT: Final = """[Unit]
Description=darkroom RAW worker
Requires=@SETUP_UNIT@
After=@SETUP_UNIT@ network-online.target
Wants=network-online.target

[Service]
Type=simple
User=@USER@
Group=@USER@
EnvironmentFile=@ENV_FILE@
Environment=HOME=@SCRATCH@
WorkingDirectory=@SCRATCH@
ExecStart=@INSTALL@/venv/bin/python -m worker
UMask=0027
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ReadWritePaths=@SCRATCH@
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictSUIDSGID=yes
RestrictNamespaces=yes
RestrictRealtime=yes
LockPersonality=yes
RemoveIPC=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
# AF_NETLINK: glibc's getaddrinfo reads the interfaces' addresses through it.
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK
# No MemoryDenyWriteExecute: compiled extensions (cffi callbacks) may need W+X pages.
# Decoders run as child processes in this unit's cgroup: together they may not take
# the memory the OS, the agents and the worker's own bookkeeping need. A decoder the
# kernel kills fails its file; the worker and its other children carry on.
MemoryMax=@MEMORY_MAX@
MemorySwapMax=0
OOMPolicy=continue
TasksMax=512
LimitCORE=0
Restart=on-failure
RestartSec=30
StandardOutput=append:@LOG_FILE@
StandardError=inherit

[Install]
WantedBy=multi-user.target
"""

LOGROTATE: Final = """@LOG_FILE@ {
    daily
    rotate 7
    maxsize 100M
    compress
    missingok
    notifempty
    copytruncate
}
"""


def placeholders() -> dict[str, str]:
    """Every @NAME@ the scripts and units above use, with its value."""
    return {
        "MOUNT": MOUNT_POINT,
        "SCRATCH": SCRATCH_DIR,
        "DEVICE": SCRATCH_DEVICE,
        "USER": WORKER_USER,
        "INSTALL": INSTALL_DIR,
        "ENV_FILE": WORKER_ENV_FILE,
        "LOG_FILE": WORKER_LOG_FILE,
        "SETUP_UNIT": SETUP_UNIT_NAME,
        "WORKER_UNIT": UNIT_NAME,
        "MEMORY_MAX": MEMORY_MAX,
        "REQUIREMENTS": WORKER_REQUIREMENTS,
        "WHEELS": WORKER_WHEELS,
        "PROJECT_WHEELS": WORKER_PROJECT_WHEELS,
    }


def fill(text: str, **values: str) -> str:
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    return text


def env_file(values: Mapping[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in values.items())


def write_file(path: str, content: str, mode: str = "0644") -> list[str]:
    # Quoted delimiter: bash expands nothing inside (CloudFormation already filled in
    # every name before the instance sees the script).
    return [
        f"cat > {path} <<'DARKROOM_EOF'",
        content.rstrip("\n"),
        "DARKROOM_EOF",
        f"chmod {mode} {path}",
    ]
