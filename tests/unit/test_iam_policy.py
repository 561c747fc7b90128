"""The IAM evaluator the IAM-call test relies on (tests/infra/iam_policy.py): it must deny
what AWS denies, or that test proves nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.iam_policy import Request, Resolver, UnsupportedCondition, decide

BUCKET = "arn:aws:s3:::raw"


def allow(action: Any, resource: Any, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def test_actions_match_case_insensitively_with_wildcards_and_resources_exactly() -> None:
    statements = [allow("s3:Get*", f"{BUCKET}/raw/*")]
    assert decide(statements, Request("s3:getobject", f"{BUCKET}/raw/j/a.dng")) == "Allow"
    assert decide(statements, Request("s3:PutObject", f"{BUCKET}/raw/j/a.dng")) != "Allow"
    assert decide(statements, Request("s3:GetObject", f"{BUCKET}/RAW/j/a.dng")) != "Allow"
    assert decide(statements, Request("s3:GetObject", f"{BUCKET}/processed/a")) != "Allow"


def test_an_explicit_deny_wins() -> None:
    statements = [
        allow("dynamodb:*", "*"),
        {"Effect": "Deny", "Action": "dynamodb:DeleteItem", "Resource": "*"},
    ]
    assert decide(statements, Request("dynamodb:GetItem", "arn:t")) == "Allow"
    assert decide(statements, Request("dynamodb:DeleteItem", "arn:t")) == "Deny"
    assert decide([], Request("dynamodb:GetItem", "arn:t")) == "ImplicitDeny"


def test_not_action_and_not_resource() -> None:
    statements = [{"Effect": "Allow", "NotAction": "s3:Delete*", "NotResource": f"{BUCKET}/x"}]
    assert decide(statements, Request("s3:GetObject", f"{BUCKET}/y")) == "Allow"
    assert decide(statements, Request("s3:DeleteObject", f"{BUCKET}/y")) != "Allow"
    assert decide(statements, Request("s3:GetObject", f"{BUCKET}/x")) != "Allow"


def test_list_bucket_prefix_condition() -> None:
    statements = [allow("s3:ListBucket", BUCKET, Condition={"StringLike": {"s3:prefix": "raw/*"}})]
    assert decide(statements, Request("s3:ListBucket", BUCKET, {"s3:prefix": "raw/j/"})) == "Allow"
    assert decide(statements, Request("s3:ListBucket", BUCKET, {"s3:prefix": ""})) != "Allow"
    assert decide(statements, Request("s3:ListBucket", BUCKET)) != "Allow"


def test_condition_forms() -> None:
    tagged = allow(
        "ec2:CreateTags",
        "*",
        Condition={"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}},
    )
    assert decide([tagged], Request("ec2:CreateTags", "i", {"aws:TagKeys": ["a"]})) == "Allow"
    assert decide([tagged], Request("ec2:CreateTags", "i", {"aws:TagKeys": ["a", "c"]})) != "Allow"
    own = allow(
        "ec2:StopInstances",
        "arn:i/1",
        Condition={"ArnEquals": {"ec2:SourceInstanceARN": "arn:i/1"}},
    )
    assert (
        decide([own], Request("ec2:StopInstances", "arn:i/1", {"ec2:SourceInstanceARN": "arn:i/1"}))
        == "Allow"
    )
    assert (
        decide([own], Request("ec2:StopInstances", "arn:i/1", {"ec2:SourceInstanceARN": "arn:i/2"}))
        != "Allow"
    )
    variable = allow("ec2:StopInstances", "${ec2:SourceInstanceARN}")
    assert (
        decide(
            [variable],
            Request("ec2:StopInstances", "arn:i/1", {"ec2:SourceInstanceARN": "arn:i/1"}),
        )
        == "Allow"
    )
    assert decide([variable], Request("ec2:StopInstances", "arn:i/1")) != "Allow"
    unknown = allow("s3:GetObject", "*", Condition={"NumericLessThan": {"s3:max-keys": "10"}})
    with pytest.raises(UnsupportedCondition):
        decide([unknown], Request("s3:GetObject", "x"))


def test_intrinsics_resolve_to_concrete_arns() -> None:
    template = {
        "Resources": {
            "Jobs": {"Type": "AWS::DynamoDB::Table", "Properties": {}},
            "Raw": {"Type": "AWS::S3::Bucket", "Properties": {}},
            "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"FunctionName": "f"}},
        }
    }
    resolver = Resolver(template, "eu-west-1", "111122223333", {"Jobs": "jobs", "Raw": "raw"})
    assert resolver.resolve({"Fn::GetAtt": ["Jobs", "Arn"]}) == (
        "arn:aws:dynamodb:eu-west-1:111122223333:table/jobs"
    )
    joined = {"Fn::Join": ["", [{"Fn::GetAtt": ["Raw", "Arn"]}, "/raw/*"]]}
    assert resolver.resolve(joined) == "arn:aws:s3:::raw/raw/*"
    sub = {"Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:x/${Fn}"}
    assert resolver.resolve(sub) == "arn:aws:states:eu-west-1:111122223333:x/f"
    assert resolver.resolve({"Fn::GetAtt": ["Fn", "Arn"]}).endswith(":function:f")
