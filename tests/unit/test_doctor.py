"""`darkroom doctor`'s checks, each over plain data: what ok, warn and fail look like,
and that a fact that could not be gathered is reported as unknown with its reason."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from darkroom import doctor, names
from darkroom.doctor import (
    FAIL,
    OK,
    SKIP,
    UNKNOWN,
    WARN,
    BootLog,
    Image,
    PoolInstance,
    StackFacts,
    Unavailable,
)

NOW = dt.datetime(2026, 12, 4, 8, 0, tzinfo=dt.UTC)
DENIED = Unavailable("servicequotas:GetServiceQuota", "AccessDeniedException: not allowed")


def stopped(iid: str, **extra: object) -> PoolInstance:
    values: dict[str, object] = {
        "instance_id": iid,
        "state": "stopped",
        "instance_type": "c7g.xlarge",
        "image_id": "ami-0abc",
        "lease": "IDLE",
        "software": {"darkroom": "0.1.0", "rawpy": "0.25.0"},
    }
    values.update(extra)
    return PoolInstance(**values)  # type: ignore[arg-type]


def all_outputs() -> dict[str, str]:
    return {key: f"value-of-{key}" for key in doctor.REQUIRED_OUTPUTS}


def test_doctor_reads_the_outputs_the_cdk_app_declares() -> None:
    from cdk.config import ExtraOutput

    assert doctor.ALARM_TOPIC_OUTPUT == ExtraOutput.ALARM_TOPIC_ARN
    assert doctor.WORKER_INSTANCE_IDS_OUTPUT == ExtraOutput.WORKER_INSTANCE_IDS
    assert names.Output.SENDER_IDENTITY not in doctor.REQUIRED_OUTPUTS
    assert names.Output.API_URL in doctor.REQUIRED_OUTPUTS


def test_every_output_present_is_ok_and_a_missing_one_fails_naming_it() -> None:
    assert doctor.outputs_present(all_outputs()).status == OK
    partial = all_outputs()
    del partial[names.Output.API_URL]
    found = doctor.outputs_present(partial)
    assert found.status == FAIL
    assert names.Output.API_URL in found.detail
    assert "deploy" in found.fix


def test_a_stopped_idle_pool_on_one_version_is_ok_and_names_the_version() -> None:
    found = doctor.pool_idle([stopped("i-1"), stopped("i-2")], expected=2)
    assert found.status == OK
    assert "darkroom 0.1.0" in found.detail


def test_a_running_instance_with_a_job_is_ok_but_one_with_none_warns() -> None:
    busy = stopped("i-1", state="running", lease="LEASED", job_id="job-7")
    assert doctor.pool_idle([busy, stopped("i-2")]).status == OK
    assert "job-7" in doctor.pool_idle([busy]).detail
    idle_running = stopped("i-1", state="running", lease="IDLE")
    found = doctor.pool_idle([idle_running])
    assert found.status == WARN
    assert "cost guard" in found.fix


def test_a_terminated_or_missing_instance_fails() -> None:
    assert doctor.pool_idle([stopped("i-1", state="terminated")]).status == FAIL
    assert doctor.pool_idle([stopped("i-1")], expected=2).status == FAIL
    assert doctor.pool_idle([]).status == FAIL


def test_instances_on_different_software_warn_and_show_both() -> None:
    older = stopped("i-2", software={"darkroom": "0.0.9"})
    found = doctor.pool_idle([stopped("i-1"), older])
    assert found.status == WARN
    assert "0.0.9" in found.detail and "0.1.0" in found.detail


def test_an_instance_never_started_has_no_version_yet_and_is_not_a_problem() -> None:
    found = doctor.pool_idle([stopped("i-1"), stopped("i-2", software=None)])
    assert found.status == OK
    assert "1 not started since the deploy" in found.detail


def test_a_pinned_ami_inside_the_patch_cadence_is_ok_and_an_old_one_warns() -> None:
    fresh = Image("ami-1", "al2023-ami-2026.12", NOW - dt.timedelta(days=10))
    assert doctor.ami_age(fresh, True, NOW).status == OK
    old = Image(
        "ami-1", "al2023-ami-2026.09", NOW - dt.timedelta(days=names.WORKER_AMI_PATCH_DAYS + 5)
    )
    found = doctor.ami_age(old, True, NOW)
    assert found.status == WARN
    assert f"{names.WORKER_AMI_PATCH_DAYS + 5} days old" in found.detail
    assert "worker_ami_id" in found.fix


def test_an_unpinned_or_deprecated_ami_warns_and_a_vanished_one_fails() -> None:
    fresh = Image("ami-1", "al2023", NOW - dt.timedelta(days=1))
    assert "not pinned" in doctor.ami_age(fresh, False, NOW).detail
    deprecated = Image("ami-1", "al2023", NOW - dt.timedelta(days=1), NOW - dt.timedelta(days=1))
    assert doctor.ami_age(deprecated, True, NOW).status == WARN
    assert doctor.ami_age(None, True, NOW).status == FAIL


def worker_line(message: str, **extra: object) -> str:
    return json.dumps({"level": "INFO", "message": message, **extra})


def test_the_latest_boot_is_what_follows_the_previous_worker_down() -> None:
    lines = [
        "old setup noise",
        "ERROR: an old boot's failure",
        worker_line("worker down", reason="idle"),
        worker_line("worker up", software={"darkroom": "0.1.0"}),
        worker_line("worker down", reason="idle"),
    ]
    latest = doctor.latest_boot(lines)
    assert latest == lines[3:]
    assert doctor.software_of(latest) == {"darkroom": "0.1.0"}
    assert doctor.boot_logs_clean([BootLog("i-1", tuple(latest))]).status == OK


def test_an_error_in_the_latest_boot_fails_and_quotes_it() -> None:
    lines = ("ERROR: Could not find a version that satisfies the requirement rawpy",)
    found = doctor.boot_logs_clean([BootLog("i-1", lines), BootLog("i-2", ())])
    assert found.status == FAIL
    assert "i-1: ERROR: Could not find" in found.detail
    assert "aws logs tail" in found.fix


def test_no_boot_yet_warns_with_how_to_make_one() -> None:
    found = doctor.boot_logs_clean([BootLog("i-1"), BootLog("i-2")])
    assert found.status == WARN
    assert "run a small job" in found.fix


def test_a_confirmed_subscription_is_ok_pending_warns_none_fails() -> None:
    topic = "arn:aws:sns:eu-west-1:111122223333:alarms"
    confirmed = {"SubscriptionArn": f"{topic}:1234", "Endpoint": "ops@studio.example"}
    pending = {"SubscriptionArn": "PendingConfirmation", "Endpoint": "ops@studio.example"}
    assert doctor.alarms_subscribed(topic, [confirmed, pending]).status == OK
    assert doctor.alarms_subscribed(topic, [pending]).status == WARN
    found = doctor.alarms_subscribed(topic, [])
    assert found.status == FAIL
    assert "set alarm_email" in found.fix


def test_state_machine_logging_off_fails_and_on_is_ok() -> None:
    on = {"level": "ALL", "includeExecutionData": True, "destinations": [{"x": 1}]}
    assert doctor.state_machine_logging(on).status == OK
    assert doctor.state_machine_logging({"level": "OFF"}).status == FAIL
    assert doctor.state_machine_logging(None).status == FAIL


def test_a_new_accounts_lambda_quota_warns_and_reservations_that_do_not_fit_fail() -> None:
    assert doctor.lambda_concurrency(1000.0, 10).status == OK
    assert doctor.lambda_concurrency(10.0, 0).status == WARN
    found = doctor.lambda_concurrency(105.0, 10)
    assert found.status == FAIL
    assert "thumbnail_reserved_concurrency=0" in found.fix


def test_the_vcpu_quota_must_hold_the_whole_pool_running() -> None:
    vcpus = {"c7g.xlarge": 4}
    assert doctor.vcpu_quota(64.0, vcpus, ["c7g.xlarge"] * 2).status == OK
    found = doctor.vcpu_quota(5.0, vcpus, ["c7g.xlarge"] * 2)
    assert found.status == FAIL
    assert "needs 8 vCPUs" in found.detail and "L-1216C47A" in found.fix
    assert doctor.vcpu_quota(9.0, vcpus, ["c7g.xlarge"] * 2).status == WARN
    assert doctor.vcpu_quota(64.0, {"g5.xlarge": 4}, ["g5.xlarge"]).status == WARN


def test_the_ses_sender_is_skipped_unless_configured_and_sandbox_warns() -> None:
    assert doctor.sender_identity(None, "", False).status == SKIP
    assert doctor.sender_identity("studio.example", "SUCCESS", True).status == OK
    assert doctor.sender_identity("studio.example", "SUCCESS", False).status == WARN
    found = doctor.sender_identity("studio.example", "PENDING", True)
    assert found.status == FAIL
    assert "DKIM" in found.fix


@pytest.mark.parametrize(
    "check",
    [
        lambda: doctor.outputs_present(DENIED),
        lambda: doctor.pool_idle(DENIED),
        lambda: doctor.ami_age(DENIED, True, NOW),
        lambda: doctor.boot_logs_clean(DENIED),
        lambda: doctor.alarms_subscribed("arn:topic", DENIED),
        lambda: doctor.state_machine_logging(DENIED),
        lambda: doctor.lambda_concurrency(DENIED, 0),
        lambda: doctor.vcpu_quota(DENIED, {}, ["c7g.xlarge"]),
        lambda: doctor.sender_identity("studio.example", DENIED, True),
    ],
)
def test_a_fact_that_could_not_be_gathered_is_unknown_with_its_reason(check) -> None:  # type: ignore[no-untyped-def]
    found = check()
    assert found.status == UNKNOWN
    assert "AccessDeniedException" in found.detail
    assert "servicequotas:GetServiceQuota" in found.fix


def test_a_check_that_raises_is_reported_and_the_round_goes_on() -> None:
    facts = StackFacts(outputs=all_outputs(), instances=[stopped("i-1")])
    facts.vcpus = {"c7g.xlarge": "four"}  # type: ignore[dict-item] - a malformed answer
    facts.vcpu_quota = 64.0
    findings = doctor.diagnose(facts, NOW)
    by_check = {f.check: f for f in findings}
    assert by_check["EC2 vCPU quota"].status == UNKNOWN
    assert by_check["outputs"].status == OK
    assert len(findings) == 9
    assert doctor.exit_status(findings) == 1


def test_only_fail_and_unknown_make_the_exit_status_one() -> None:
    ok = doctor.Finding("a", OK, "")
    warn = doctor.Finding("b", WARN, "")
    assert doctor.exit_status([ok, warn, doctor.Finding("c", SKIP, "")]) == 0
    assert doctor.exit_status([ok, doctor.Finding("d", FAIL, "")]) == 1


def test_the_fix_for_an_unknown_check_fits_why_the_call_failed() -> None:
    throttled = Unavailable("sns:ListSubscriptionsByTopic", "Throttling: Rate exceeded")
    assert "again in a minute" in doctor.unknown("alarms", throttled).fix
    down = Unavailable("logs:GetLogEvents", "EndpointConnectionError: could not connect")
    assert "check the network" in doctor.unknown("boot log", down).fix
    assert "allow" in doctor.unknown("quota", DENIED).fix


def test_a_worker_line_is_an_error_by_its_level_and_setup_text_by_its_words() -> None:
    assert doctor.is_error_line(worker_line("could not read the lease", level="ERROR"))
    # A file the decoder refused is the job's news, not the boot's.
    failed_file = json.dumps(
        {"level": "WARNING", "message": "file failed", "error": "decode error: bad DNG"}
    )
    assert not doctor.is_error_line(failed_file)
    assert doctor.is_error_line("ERROR: Could not install packages due to an OSError")
    assert doctor.is_error_line("darkroom: scratch volume /dev/sdf not found")
    assert not doctor.is_error_line("Installed: python3.12-3.12.9-1.amzn2023")
