"""Lambda packaging without Docker: manylinux arm64 wheels, cached, project files only."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from darkroom import names
from tests.infra.conftest import REPO, Synth

bundling = pytest.importorskip("cdk.bundling", reason="install the cdk extra")
boot = pytest.importorskip("cdk.worker_boot", reason="install the cdk extra")


def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)


def lambda_asset(synth: Synth) -> Path:
    from darkroom.names import Function
    from tests.infra.helpers import functions_by_name

    _, resource = functions_by_name(synth.template)[Function.ORCHESTRATOR]
    key = resource["Properties"]["Code"]["S3Key"]
    return synth.outdir / f"asset.{key.removesuffix('.zip')}"


def test_requirements_are_the_base_plus_the_lambda_extra_without_boto3() -> None:
    requirements = bundling.lambda_requirements(REPO / "pyproject.toml")
    distributions = {bundling._dist_name(r) for r in requirements}
    assert {"pydantic", "pydantic-settings", "aws-lambda-powertools"} <= distributions
    assert not distributions & {"boto3", "botocore"}, "the runtime provides them"
    assert "darkroom" not in distributions


def test_the_lambda_bundle_takes_the_locks_pins_for_python_312_on_arm64() -> None:
    pins = bundling.lambda_pins(REPO)
    names_ = {bundling._dist_name(p) for p in pins}
    assert {"pydantic", "pydantic-core", "aws-lambda-powertools", "rawpy", "numpy"} <= names_
    # Neither what the runtime provides nor what only the laptop, CDK or the worker use.
    assert not names_ & {"boto3", "botocore", "s3transfer", "moto", "typer", "aws-cdk-lib"}
    assert not names_ & {"opencv-python-headless", "lensfunpy", "sagemaker"}
    assert all(";" not in p.split(" \\")[0] and "--hash=sha256:" in p for p in pins)
    numpy = next(p for p in pins if p.startswith("numpy=="))
    lock_numpy = {
        pin.version
        for pin in bundling.lock.read_lock()
        if pin.name == "numpy" and pin.applies(bundling.lock.LAMBDA_ENVIRONMENT)
    }
    assert numpy.split(" ")[0] == f"numpy=={lock_numpy.pop()}"


def test_the_worker_asset_carries_its_pins_and_every_wheel_for_arm64(synth: Synth) -> None:
    assets = [
        p for p in synth.outdir.glob("asset.*") if (p / bundling.WORKER_REQUIREMENTS).is_file()
    ]
    assert len(assets) == 1, "one worker source asset with its requirements"
    asset = assets[0]
    text = (asset / bundling.WORKER_REQUIREMENTS).read_text(encoding="utf-8")
    entries = [line.split(" \\")[0] for line in text.splitlines() if not line.startswith(" ")]
    listed = {bundling._dist_name(e.split("==")[0]) for e in entries}
    assert {"boto3", "rawpy", "opencv-python-headless", "lensfunpy", "pyexiv2"} <= listed
    assert not listed & {"moto", "typer", "aws-cdk-lib", "sagemaker", "pytest"}
    assert not any(";" in e for e in entries), "markers settled for the instance's Python"
    assert text.count("--hash=sha256:") >= len(entries)
    wheels = list((asset / bundling.WORKER_WHEELS).glob("*.whl"))
    assert len(wheels) == len(entries), "one wheel per pin"
    native = [w.name for w in wheels if not w.name.endswith("-none-any.whl")]
    assert native and all("aarch64" in n and ("cp312" in n or "abi3" in n) for n in native)
    project = list((asset / bundling.WORKER_WHEELS / bundling.WORKER_PROJECT_WHEELS).glob("*"))
    assert [p.name.split("-")[0] for p in project] == ["darkroom"]


def test_the_boot_install_step_installs_the_bundle_with_the_network_off(tmp_path: Path) -> None:
    """The install step of the boot script, as written into user data, run in an empty
    directory with no network, against a bundle built for this machine."""
    if shutil.which("unshare") is None or run(["unshare", "-rn", "true"]).returncode != 0:
        pytest.skip("needs `unshare -rn` (a user namespace with no network) to go offline")
    libc, version = platform.libc_ver()
    if libc != "glibc":
        pytest.skip(f"manylinux wheels need glibc; this machine has {libc or 'another libc'}")
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    target = bundling.worker_target(platform.machine(), python, int(version.split(".")[1]))
    files = bundling.project_files(bundling.WORKER_SOURCES)
    bundler = bundling.WorkerBundling(files, cache=bundling.DependencyCache(), target=target)
    install = tmp_path / "opt" / "darkroom"
    bundler.try_bundle(str(install / "src"), image=None)

    step = boot.fill(boot.PIP_INSTALL, **{**boot.placeholders(), "INSTALL": str(install)})
    offline = "import socket; socket.create_connection(('pypi.org', 443), timeout=5)"
    script = "\n".join(
        [
            "set -euo pipefail",
            # Proof the network is gone: reaching PyPI must fail in here.
            f'! {sys.executable} -c "{offline}" 2>/dev/null',
            f"{sys.executable} -m venv {install}/venv",
            step,
            f"{install}/venv/bin/pip check",
        ]
    )
    # No pip configuration of this machine's (its extra indexes, its wheel folders).
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}
    env = {k: v for k, v in env.items() if not k.startswith("PIP_") or k == "PIP_CONFIG_FILE"}
    done = run(["unshare", "-rn", "bash", "-c", script], env=env)
    assert done.returncode == 0, done.stdout + done.stderr

    imports = "import boto3, cv2, defusedxml, lensfunpy, numpy, PIL, pyexiv2, rawpy, worker"
    check = f"{imports}; from darkroom.imaging.develop import develop_file; print('ok')"
    checked = run([f"{install}/venv/bin/python", "-c", check], cwd=tmp_path)
    assert checked.stdout.strip() == "ok", checked.stderr


def test_every_function_shares_one_bundle(synth: Synth) -> None:
    keys = {
        r["Properties"]["Code"]["S3Key"]
        for r in synth.resources("AWS::Lambda::Function").values()
        if "S3Key" in r["Properties"].get("Code", {})
    }
    assert len(keys) == 1


def test_the_bundle_holds_runtime_code_and_arm64_wheels_only(synth: Synth) -> None:
    asset = lambda_asset(synth)
    for handler in {*names.HANDLERS.values(), "tasks.cost_guard.handler"}:
        module = handler.rsplit(".", 1)[0].replace(".", "/") + ".py"
        if not (REPO / module).exists():
            continue  # being written on another branch of work (e.g. tasks/thumbnail.py)
        assert (asset / module).is_file(), module
    assert (asset / "workflows" / "raw_pipeline.asl.json").is_file()
    assert not (asset / "workflows" / "raw_pipeline.py").exists(), "authoring SDK code"
    for absent in ("tests", "cdk", "worker", "darkroom/local", "darkroom/cli", "boto3", "botocore"):
        assert not (asset / absent).exists(), absent
    assert not list(asset.rglob("__pycache__"))
    native = [p.name for p in (asset / "pydantic_core").glob("*.so")]
    assert native and all("cpython-312-aarch64-linux-gnu" in n for n in native), native


def test_a_warm_cache_bundles_without_running_pip(
    synth: Synth, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a second synth does: the session's synth warmed the cache (or found it warm)."""
    target = bundling.Target()
    requirements = bundling.lambda_pins(REPO)
    cache = bundling.DependencyCache()
    assert (cache.path_for(requirements, target) / ".complete").is_file()

    def no_pip(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("pip ran although the cache was warm")

    monkeypatch.setattr(bundling.DependencyCache, "pip_install", no_pip)
    files = bundling.project_files(
        bundling.LAMBDA_SOURCES, excluded_dirs=bundling.LAMBDA_EXCLUDED_DIRS
    )
    bundler = bundling.LambdaBundling(files, requirements, cache=cache, target=target)
    assert bundler.try_bundle(str(tmp_path), image=None) is True
    assert (tmp_path / "pydantic" / "__init__.py").is_file()
    assert (tmp_path / "tasks" / "orchestrator.py").is_file()
    assert cache.pip_runs == 0


def test_a_cold_cache_runs_pip_once_for_the_lambda_platform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[str]] = []

    def fake_run(command: list[str], **kwargs: Any) -> Any:
        seen.append(command)
        into = Path(command[command.index("--target") + 1])
        (into / "fake").mkdir(parents=True)

        class Done:
            returncode = 0
            stderr = ""

        return Done()

    monkeypatch.setattr(bundling.subprocess, "run", fake_run)
    cache = bundling.DependencyCache(tmp_path)
    target = bundling.Target()
    first = cache.ensure(["pydantic>=2"], target)
    second = cache.ensure(["pydantic>=2"], target)
    assert first == second and len(seen) == 1 and cache.pip_runs == 1
    command = seen[0]
    assert "--only-binary=:all:" in command
    assert command[command.index("--python-version") + 1] == "3.12"
    assert command[command.index("--implementation") + 1] == "cp"
    platforms = {command[i + 1] for i, part in enumerate(command) if part == "--platform"}
    assert "manylinux2014_aarch64" in platforms and "manylinux_2_34_aarch64" in platforms
    assert not any("x86_64" in p for p in platforms)
    # Exactly the listed pins, every file's hash checked: nothing is resolved at synth.
    assert {"--require-hashes", "--no-deps", "--requirement"} <= set(command)
    # A different requirement set is a different cache entry.
    cache.ensure(["pydantic>=2", "pillow"], target)
    assert len(seen) == 2
    shutil.rmtree(tmp_path)
