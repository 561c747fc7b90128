"""Context options, and names the CDK app shares with code it does not own."""

from __future__ import annotations

import json
import re

import pytest

from darkroom import cost_guard, names, observability
from tests.infra.conftest import REPO

config = pytest.importorskip("cdk.config", reason="install the cdk extra")


def test_cdk_json_lists_every_option_with_its_default() -> None:
    cdk_json = json.loads((REPO / "cdk" / "cdk.json").read_text())
    assert cdk_json["context"] == config.defaults()
    assert cdk_json["app"] == "../.venv/bin/python app.py"


def test_a_deploy_without_options_runs_two_graviton_workers() -> None:
    default = config.DeployConfig.from_context({}.get)
    assert default.pool_size == 2
    assert default.instance_types == names.WORKER_INSTANCE_TYPES == ("c7g.xlarge", "c6g.xlarge")


def test_a_deploy_without_options_is_one_a_new_account_accepts() -> None:
    """No reserved concurrency (a new account's quota refuses any), the default EBS
    key, and names from the default stack."""
    default = config.DeployConfig.from_context({}.get)
    assert default.thumbnail_reserved_concurrency == 0
    assert default.ebs_kms_key == ""
    assert default.stack_name == names.DEFAULT_STACK


def test_by_default_originals_never_expire_and_no_version_is_deleted() -> None:
    default = config.DeployConfig.from_context({}.get)
    assert default.raw_archive_after_days is None
    assert default.raw_expire_after_days is None
    assert default.raw_noncurrent_expire_after_days is None
    opted_in = config.DeployConfig.from_context(
        {"raw_archive_after_days": "90", "raw_expire_after_days": "400"}.get
    )
    assert (opted_in.raw_archive_after_days, opted_in.raw_expire_after_days) == (90, 400)


def test_cli_strings_are_coerced_and_checked() -> None:
    given = {
        "pool_size": "3",
        "retain_data": "false",
        "worker_instance_types": "c7i.2xlarge, c6i.2xlarge",
    }
    parsed = config.DeployConfig.from_context(given.get)
    assert (parsed.pool_size, parsed.retain_data, parsed.instance_types) == (
        3,
        False,
        ("c7i.2xlarge", "c6i.2xlarge"),
    )
    with pytest.raises(ValueError, match="pool_size"):
        config.DeployConfig.from_context({"pool_size": "0"}.get)
    with pytest.raises(ValueError, match="expected an integer"):
        config.DeployConfig.from_context({"pool_size": "two"}.get)
    with pytest.raises(ValueError, match="retain_data: expected true or false, got 'maybe'"):
        config.DeployConfig.from_context({"retain_data": "maybe"}.get)
    # cdk.json's JSON types too: a number where text is expected is taken as text.
    assert config.DeployConfig.from_context({"thumbnail_sizes": 512}.get).thumbnail_sizes_env == (
        "512"
    )


@pytest.mark.parametrize(
    ("context", "complaint"),
    [
        ({"worker_heartbeat_interval_seconds": 200}, "at most half"),
        ({"cost_guard_max_idle_minutes": 15}, "cost_guard_max_idle_minutes"),
        ({"log_retention_days": 10}, "log_retention_days"),
        ({"thumbnail_sizes": "big"}, "thumbnail_sizes"),
        ({"raw_infrequent_access_days": 10}, "30 or more"),
        ({"raw_archive_after_days": 40}, "30 days after the IA move"),
        ({"raw_expire_after_days": 20}, "after the IA and archive moves"),
        ({"raw_infrequent_access_days": 0, "raw_expire_after_days": 0}, "1 or more"),
        ({"raw_expire_days": 180}, "raw_expire_days is now raw_expire_after_days"),
        ({"stack_name": "studio_b"}, "only letters, digits and -"),
        (
            {"worker_instance_type": "c7i.2xlarge"},
            "worker_instance_type is now worker_instance_types",
        ),
        ({"worker_instance_types": ""}, "must be instance types"),
        ({"worker_instance_types": "c7g.xlarge,big"}, "must be instance types"),
        ({"worker_instance_types": "c7g.xlarge,c7g.xlarge"}, "lists a type twice"),
        ({"ebs_kms_key": "alias/studio-ebs"}, "ebs_kms_key must be a key ARN"),
        ({"stack_name": "s" * 43}, "would pass Lambda's 64 characters"),
    ],
)
def test_unsafe_combinations_are_refused(context: dict[str, object], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        config.DeployConfig.from_context(context.get)


def test_metric_names_agree_with_the_code_that_publishes_them() -> None:
    assert config.METRIC_WORKERS_RUNNING == cost_guard.METRIC_RUNNING
    assert config.METRIC_WORKERS_UNLEASED == cost_guard.METRIC_UNLEASED
    assert config.METRIC_WORKER_LONGEST_RUN == cost_guard.METRIC_LONGEST_RUN
    assert config.METRIC_WORKERS_STOPPED == cost_guard.METRIC_STOPPED
    assert config.METRIC_NAMESPACE == observability.NAMESPACE
    assert config.METRIC_SERVICE_DIMENSION == {"service": observability.SERVICE}


def test_the_worker_still_logs_the_messages_the_metric_filters_count() -> None:
    source = (REPO / "worker" / "job.py").read_text()
    for message in (config.WORKER_LOG_FILE_DEVELOPED, config.WORKER_LOG_FILE_FAILED):
        assert re.search(rf"[\"']{message}[\"']", source), message


def test_the_studio_context_is_checked_and_named_as_the_api_settings_name_it() -> None:
    from darkroom import names
    from darkroom.settings import ApiSettings

    assert set(names.STUDIO_SETTINGS) <= set(config.DeployConfig.model_fields)
    assert set(names.STUDIO_SETTINGS) <= set(ApiSettings.model_fields)
    parsed = config.DeployConfig.from_context(
        {"studio_name": " Light   Studio ", "studio_accent_colour": "#ABC"}.get
    )
    assert parsed.studio == {
        names.STUDIO_NAME: "Light Studio",
        names.STUDIO_LOGO_URL: "",
        names.STUDIO_ACCENT_COLOUR: "#aabbcc",
    }
    with pytest.raises(ValueError, match=r"studio_accent_colour: 'red' is not a colour"):
        config.DeployConfig.from_context({"studio_accent_colour": "red"}.get)
    with pytest.raises(ValueError, match=r"studio_logo_url: a logo must be an https URL"):
        config.DeployConfig.from_context({"studio_logo_url": "http://cdn.example/l.png"}.get)


@pytest.mark.parametrize(
    ("context", "complaint"),
    [
        ({"edge": "true"}, "edge=true needs region"),
        ({"edge": True, "region": "eu-west-1", "edge_rate_limit": 5}, "edge_rate_limit"),
        ({"edge": True, "region": "Ireland"}, "region must be an AWS region"),
        (
            {"edge": True, "region": "eu-west-1", "edge_domain_name": "photos.example.com"},
            "go together",
        ),
        (
            {
                "edge": True,
                "region": "eu-west-1",
                "edge_domain_name": "photos.example.com",
                "edge_certificate_arn": "arn:aws:acm:eu-west-1:111122223333:certificate/abc",
            },
            "in us-east-1",
        ),
        (
            {"edge": True, "edge_web_acl_arn": "arn:aws:wafv2:eu-west-1:1:regional/webacl/a/b"},
            "web ACL's ARN in us-east-1",
        ),
        ({"edge_domain_name": "photos.example.com"}, "need edge=true"),
    ],
)
def test_edge_options_that_cannot_work_are_refused_naming_why(
    context: dict[str, object], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        config.DeployConfig.from_context(context.get)


def test_the_edge_and_the_private_network_are_off_by_default() -> None:
    default = config.DeployConfig.from_context({}.get)
    assert (default.edge, default.private_network, default.region) == (False, False, "")
    on = config.DeployConfig.from_context(
        {"edge": "true", "region": "eu-west-1", "private_network": "true"}.get
    )
    assert (on.edge, on.private_network, on.edge_rate_limit) == (True, True, 1500)
