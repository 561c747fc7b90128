"""The reconcilers in the template: every bad ending of this state machine reaches the
ending reconciler, durably; the submission reconciler runs on a schedule."""

from __future__ import annotations

from typing import Any

from darkroom import names
from darkroom.names import Function
from tests.infra.conftest import Synth
from tests.infra.helpers import as_list, functions_by_name


def _targets(synth: Synth, rule: Any) -> list[dict[str, Any]]:
    targets: list[dict[str, Any]] = synth.resource(rule)["Properties"]["Targets"]
    return targets


def test_this_machines_failed_timed_out_and_aborted_executions_go_to_the_reconciler(
    synth: Synth,
) -> None:
    reconcilers = synth.stack.pipeline.reconcilers
    props = synth.resource(reconcilers.ending_rule)["Properties"]
    assert props["State"] == "ENABLED"
    assert props["EventPattern"] == {
        "source": ["aws.states"],
        "detail-type": [names.EXECUTION_STATUS_CHANGE],
        "detail": {
            "stateMachineArn": [{"Ref": synth.logical_id(synth.stack.pipeline.state_machine)}],
            "status": ["FAILED", "TIMED_OUT", "ABORTED"],
        },
    }
    (target,) = _targets(synth, reconcilers.ending_rule)
    logical_id, _ = functions_by_name(synth.template)[Function.RECONCILE_ENDING]
    assert target["Arn"] == {"Fn::GetAtt": [logical_id, "Arn"]}
    # Delivery retried for a day, then parked where an alarm sees it.
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}
    queue = synth.logical_id(synth.stack.pipeline.ending_failures)
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [queue, "Arn"]}}


def test_only_the_ending_rule_may_invoke_the_reconciler_and_park_its_events(
    synth: Synth,
) -> None:
    reconcilers = synth.stack.pipeline.reconcilers
    rule_arn = {"Fn::GetAtt": [synth.logical_id(reconcilers.ending_rule), "Arn"]}
    logical_id, _ = functions_by_name(synth.template)[Function.RECONCILE_ENDING]
    (permission,) = [
        p["Properties"]
        for p in synth.resources("AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [logical_id, "Arn"]}
    ]
    assert permission["Principal"] == "events.amazonaws.com"
    assert permission["SourceArn"] == rule_arn
    queue = synth.logical_id(synth.stack.pipeline.ending_failures)
    (policy,) = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in synth.resources("AWS::SQS::QueuePolicy").values()
        if {"Ref": queue} in as_list(p["Properties"]["Queues"])
    ]
    allowed = [s for s in policy if s["Effect"] == "Allow"]
    assert [s["Principal"] for s in allowed] == [{"Service": "events.amazonaws.com"}]
    assert allowed[0]["Condition"] == {"ArnEquals": {"aws:SourceArn": rule_arn}}


def test_the_submission_reconciler_runs_every_five_minutes_on_the_orchestrators_queue(
    synth: Synth,
) -> None:
    reconcilers = synth.stack.pipeline.reconcilers
    props = synth.resource(reconcilers.submissions_schedule)["Properties"]
    assert props["ScheduleExpression"] == "rate(5 minutes)"
    (target,) = props["Targets"]
    logical_id, function = functions_by_name(synth.template)[Function.RECONCILE_SUBMISSIONS]
    assert target["Arn"] == {"Fn::GetAtt": [logical_id, "Arn"]}
    variables = function["Properties"]["Environment"]["Variables"]
    queue = synth.logical_id(synth.stack.pipeline.submission_failures)
    assert variables["DARKROOM_SUBMISSION_FAILURES_QUEUE_URL"] == {"Ref": queue}
    assert variables["DARKROOM_RESUBMIT_AFTER_SECONDS"] == "300"
