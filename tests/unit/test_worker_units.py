"""The systemd units a pool instance runs, as user data writes them: a root one-shot
that mounts and installs, and the worker, unprivileged and sandboxed, which requires it."""

from __future__ import annotations

import configparser
import re

from cdk import worker_boot as boot

PATHS = boot.placeholders()


def directives(text: str) -> dict[str, dict[str, list[str]]]:
    """section -> key -> values (a key may repeat, as ExecStart= does)."""
    assert not re.search("@[A-Z_]+@", text), "a placeholder was left unfilled"
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def one(unit: dict[str, dict[str, list[str]]], section: str, key: str) -> str:
    (value,) = unit[section][key]
    return value


def test_the_worker_runs_unprivileged_and_sandboxed() -> None:
    unit = directives(boot.fill(boot.UNIT, **PATHS))
    service = unit["Service"]
    assert one(unit, "Service", "User") == boot.WORKER_USER != "root"
    assert one(unit, "Service", "Group") == boot.WORKER_USER
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
        "AmbientCapabilities": "",
        "RestrictSUIDSGID": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectControlGroups": "yes",
        "SystemCallFilter": "@system-service",
    }
    for key, value in expected.items():
        assert one(unit, "Service", key) == value, key
    # Its scratch directory is the only place it may write.
    assert service["ReadWritePaths"] == [boot.SCRATCH_DIR]
    assert not service.get("ExecStartPre"), "setup runs in its own root unit"
    assert one(unit, "Service", "ExecStart") == f"{boot.INSTALL_DIR}/venv/bin/python -m worker"
    assert one(unit, "Service", "Restart") == "on-failure"


def test_the_worker_and_its_decoders_share_a_memory_ceiling() -> None:
    unit = directives(boot.fill(boot.UNIT, **PATHS))
    assert one(unit, "Service", "MemoryMax") == boot.MEMORY_MAX
    assert one(unit, "Service", "MemorySwapMax") == "0"
    # A decoder the kernel kills fails its file; the worker is not taken down with it.
    assert one(unit, "Service", "OOMPolicy") == "continue"


def test_the_worker_requires_the_root_setup_unit() -> None:
    unit = directives(boot.fill(boot.UNIT, **PATHS))
    assert boot.SETUP_UNIT_NAME in one(unit, "Unit", "Requires").split()
    assert boot.SETUP_UNIT_NAME in one(unit, "Unit", "After").split()
    setup = directives(boot.fill(boot.SETUP_UNIT, **PATHS))
    assert one(setup, "Service", "Type") == "oneshot"
    assert "User" not in setup["Service"], "mounting and installing need root"
    assert setup["Service"]["ExecStart"] == [
        f"{boot.INSTALL_DIR}/scratch.sh",
        f"{boot.INSTALL_DIR}/install.sh",
    ]
    # A setup that failed once and succeeds on its retry still starts the worker.
    assert one(setup, "Service", "Restart") == "on-failure"
    assert boot.UNIT_NAME in one(setup, "Service", "ExecStartPost")
    assert one(setup, "Install", "WantedBy") == "multi-user.target"


def test_the_scratch_directory_belongs_to_the_worker() -> None:
    script = boot.fill(boot.SCRATCH_SCRIPT, **PATHS)
    owner = f"chown -R {boot.WORKER_USER}:{boot.WORKER_USER} {boot.SCRATCH_DIR}"
    # On both paths: already mounted, and mounted now.
    assert script.count(owner) == 2
    assert not re.search("@[A-Z_]+@", script)


def test_units_parse_as_ini() -> None:
    for text in (boot.UNIT, boot.SETUP_UNIT):
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.read_string(boot.fill(text, **PATHS))
        assert {"Unit", "Service", "Install"} <= set(parser.sections())


def test_the_worker_installs_the_locks_pins_and_resolves_nothing() -> None:
    script = boot.fill(boot.INSTALL_SCRIPT, **PATHS)
    assert not re.search("@[A-Z_]+@", script)
    pip = [
        line for line in script.replace("\\\n", " ").splitlines() if "/venv/bin/pip install" in line
    ]
    assert len(pip) == 2
    pins, project = pip
    assert "--require-hashes" in pins and "--no-deps" in pins
    # From the asset's own wheels: no boot depends on PyPI.
    assert "--no-index" in pins and "--no-index" in project
    assert f"--find-links {boot.INSTALL_DIR}/src/{boot.WORKER_WHEELS}" in pins
    assert f"--requirement {boot.INSTALL_DIR}/src/{boot.WORKER_REQUIREMENTS}" in pins
    # The project itself comes after, adding nothing: its dependencies are all there.
    assert "--no-deps" in project and "[worker]" not in project
    assert project.endswith(f"{boot.WORKER_WHEELS}/{boot.WORKER_PROJECT_WHEELS}/*.whl")
