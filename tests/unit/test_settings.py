"""Settings models are the one env contract: each runtime gets exactly its model's keys."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from darkroom import names, settings
from darkroom.local.cloud import LocalCloud, LocalCloudConfig
from darkroom.settings import (
    FUNCTION_SETTINGS,
    ApiSettings,
    RegisterJobSettings,
    StartWorkerSettings,
    WorkerSettings,
    env_key,
    env_keys,
    load,
)
from tests.checks import run_fresh_python


@pytest.fixture
def cloud(tmp_path: Path) -> LocalCloud:
    """The local cloud's environment-building code, with nothing started."""
    local = LocalCloud(LocalCloudConfig(state_dir=tmp_path, pool_size=2))
    local.instance_ids = ["i-00000000000000001", "i-00000000000000002"]
    return local


def parse(model: type[settings.Settings], env: dict[str, str]) -> settings.Settings:
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith(settings.ENV_PREFIX)]:
            patch.delenv(key)
        for key, value in env.items():
            patch.setenv(key, value)
        return load(model)


def test_every_function_has_a_settings_model() -> None:
    assert set(FUNCTION_SETTINGS) == set(names.HANDLERS)


@pytest.mark.parametrize("function", sorted(names.HANDLERS))
def test_each_local_function_gets_exactly_its_settings_keys(
    cloud: LocalCloud, function: str
) -> None:
    model = FUNCTION_SETTINGS[function]
    env = cloud.function_environment(function)
    assert set(env) == env_keys(model)
    parse(model, env)  # and its model reads them


def test_the_local_worker_gets_exactly_the_worker_settings_keys(cloud: LocalCloud) -> None:
    env = cloud.worker_environment()
    assert {k for k in env if k.startswith(settings.ENV_PREFIX)} == env_keys(WorkerSettings)
    worker = parse(WorkerSettings, env)
    assert isinstance(worker, WorkerSettings) and worker.shutdown_mode == "ec2-api"


def test_functions_receive_only_what_they_read(cloud: LocalCloud) -> None:
    stop = cloud.function_environment(names.Function.STOP_WORKER)
    done = cloud.function_environment(names.Function.MARK_DONE)
    assert env_key("jobs_table") not in stop
    assert env_key("raw_bucket") not in done
    assert all(env_key("log_level") in cloud.function_environment(f) for f in names.HANDLERS)


def test_local_values_and_defaults_reach_the_environment(cloud: LocalCloud) -> None:
    start = cloud.function_environment(names.Function.START_WORKER)
    assert start[env_key("worker_instance_ids")] == ",".join(cloud.instance_ids)
    register = parse(RegisterJobSettings, cloud.function_environment(names.Function.REGISTER_JOB))
    assert isinstance(register, RegisterJobSettings)
    assert register.worker_heartbeat_seconds == cloud.config.worker_heartbeat_seconds
    api = parse(ApiSettings, cloud.function_environment(names.Function.API))
    assert isinstance(api, ApiSettings)
    assert api.s3_addressing_style == "path"
    assert api.max_file_bytes == ApiSettings.model_fields["max_file_bytes"].default


def test_the_api_settings_can_be_overridden_by_field(tmp_path: Path) -> None:
    local = LocalCloud(LocalCloudConfig(state_dir=tmp_path, api_settings={"max_file_bytes": 10}))
    assert local.function_environment(names.Function.API)[env_key("max_file_bytes")] == "10"


def test_tracing_is_off_in_local_function_processes_without_a_function_key(
    cloud: LocalCloud,
) -> None:
    env = cloud.function_environment(names.Function.MARK_DONE)
    spec = cloud.spec_for(names.Function.MARK_DONE, "tasks.mark_done.handler", env, 30, 256)
    assert spec.extra_env["POWERTOOLS_TRACE_DISABLED"] == "true"
    assert "POWERTOOLS_TRACE_DISABLED" not in spec.environment


def test_environment_names_what_is_missing_or_unknown() -> None:
    with pytest.raises(KeyError, match=env_key("workers_table")):
        settings.environment(StartWorkerSettings, {"jobs_table": "j", "worker_instance_ids": "i"})
    with pytest.raises(KeyError, match="jobs_tabel"):
        settings.environment(StartWorkerSettings, {"jobs_tabel": "j"})


def test_a_missing_or_empty_resource_name_fails_at_start_up_naming_its_key() -> None:
    with pytest.raises(RuntimeError, match=env_key("raw_bucket")):
        parse(RegisterJobSettings, {env_key("jobs_table"): "jobs"})
    with pytest.raises(RuntimeError, match=env_key("raw_bucket")):
        parse(RegisterJobSettings, {env_key("jobs_table"): "jobs", env_key("raw_bucket"): ""})


def test_every_handler_applies_the_log_level_at_start_up() -> None:
    modules = sorted({handler.rsplit(".", 1)[0] for handler in names.HANDLERS.values()})
    code = (
        "import importlib, logging\n"
        "from darkroom.observability import logger\n"
        f"for module in {modules!r}:\n"
        "    logger.setLevel('INFO')\n"
        "    importlib.import_module(module)\n"
        "    assert logger.log_level == logging.WARNING, module\n"
    )
    run_fresh_python(code, {env_key("log_level"): "warning"})


def test_the_local_cloud_gives_the_api_the_studio_by_the_deploys_names(tmp_path: Path) -> None:
    studio = {names.STUDIO_NAME: "Light & Shade", names.STUDIO_ACCENT_COLOUR: "#8a3b5c"}
    local = LocalCloud(LocalCloudConfig(state_dir=tmp_path, studio=studio))
    env = local.function_environment(names.Function.API)
    assert env[env_key(names.STUDIO_NAME)] == "Light & Shade"
    assert env[env_key(names.STUDIO_ACCENT_COLOUR)] == "#8a3b5c"
    assert env[env_key(names.STUDIO_LOGO_URL)] == ""
