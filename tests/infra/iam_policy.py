"""A small IAM evaluator over the synthesized template: intrinsics resolved to concrete
ARNs, each role's identity statements, and allow/deny for one request.

Why not a package: policyuniverse parses and expands policies but evaluates no request;
principalmapper's local simulator needs a whole account graph and is unmaintained;
parliament and policy_sentry lint or generate. This covers what the stack uses: action
and resource wildcards, NotAction/NotResource, explicit Deny before Allow, policy
variables, and the string, ARN and Bool condition operators (with IfExists and the
ForAnyValue/ForAllValues set forms). An operator it does not know fails loudly rather
than being read as a match.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.infra.helpers import as_list

PARTITION = "aws"
URL_SUFFIX = "amazonaws.com"

# Property holding an explicit physical name, by resource type.
_NAME_PROPERTY = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::IAM::Role": "RoleName",
    "AWS::Events::Rule": "Name",
}


@dataclass
class Resolver:
    """Intrinsics to values, with physical names the test chooses (the local cloud's)."""

    template: Mapping[str, Any]
    region: str
    account: str
    physical: dict[str, str] = field(default_factory=dict)  # logical id -> name

    @property
    def resources(self) -> Mapping[str, Any]:
        resources: Mapping[str, Any] = self.template["Resources"]
        return resources

    def name(self, logical_id: str) -> str:
        if logical_id in self.physical:
            return self.physical[logical_id]
        resource = self.resources[logical_id]
        explicit = resource.get("Properties", {}).get(_NAME_PROPERTY.get(resource["Type"], ""))
        if explicit is not None:
            return str(self.resolve(explicit))
        return logical_id.lower()

    def ref(self, target: str) -> str:
        pseudo = {
            "AWS::Partition": PARTITION,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::URLSuffix": URL_SUFFIX,
            "AWS::StackName": "darkroom",
        }
        if target in pseudo:
            return pseudo[target]
        if target not in self.resources:
            return f"<parameter {target}>"
        kind = self.resources[target]["Type"]
        if kind in (
            "AWS::StepFunctions::StateMachine",
            "AWS::SNS::Topic",
            "AWS::IAM::ManagedPolicy",
        ):
            return self.arn(target)
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{self.region}.{URL_SUFFIX}/{self.account}/{self.name(target)}"
        return self.name(target)

    def arn(self, logical_id: str) -> str:
        kind = self.resources[logical_id]["Type"]
        name, r, a = self.name(logical_id), self.region, self.account
        arns = {
            "AWS::S3::Bucket": f"arn:aws:s3:::{name}",
            "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{r}:{a}:table/{name}",
            "AWS::Lambda::Function": f"arn:aws:lambda:{r}:{a}:function:{name}",
            "AWS::StepFunctions::StateMachine": f"arn:aws:states:{r}:{a}:stateMachine:{name}",
            "AWS::Logs::LogGroup": f"arn:aws:logs:{r}:{a}:log-group:{name}:*",
            "AWS::SQS::Queue": f"arn:aws:sqs:{r}:{a}:{name}",
            "AWS::SNS::Topic": f"arn:aws:sns:{r}:{a}:{name}",
            "AWS::IAM::Role": f"arn:aws:iam::{a}:role/{name}",
            "AWS::IAM::ManagedPolicy": f"arn:aws:iam::{a}:policy/{name}",
            "AWS::EC2::Instance": f"arn:aws:ec2:{r}:{a}:instance/{name}",
            "AWS::Events::Rule": f"arn:aws:events:{r}:{a}:rule/{name}",
        }
        return arns.get(kind, f"arn:aws:unresolved:{r}:{a}:{logical_id}")

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                if attribute == "Arn":
                    return self.arn(logical_id)
                return f"<{logical_id}.{attribute}>"
            if key == "Fn::Join":
                separator, parts = arg
                return separator.join(str(self.resolve(p)) for p in self.resolve(parts))
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else arg
                local = {k: str(self.resolve(v)) for k, v in variables.items()}

                def substitute(match: re.Match[str]) -> str:
                    ref = match.group(1)
                    if ref in local:
                        return local[ref]
                    if "." in ref:
                        logical_id, attribute = ref.split(".", 1)
                        return str(self.resolve({"Fn::GetAtt": [logical_id, attribute]}))
                    return self.ref(ref)

                return re.sub(r"\$\{([^!][^}]*)\}", substitute, text)
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(index)]
            if key == "Fn::Split":
                separator, text = arg
                return str(self.resolve(text)).split(separator)
        return {k: self.resolve(v) for k, v in value.items()}

    def statements_of_role(self, role_id: str) -> list[dict[str, Any]]:
        """Every identity statement of the role, resolved: inline policies, attached
        AWS::IAM::Policy and customer managed policies. AWS managed policies are named,
        not expanded: none may carry a permission the stack's code relies on."""
        role = self.resources[role_id]["Properties"]
        documents = [p["PolicyDocument"] for p in role.get("Policies", [])]
        managed = {str(self.resolve(m)) for m in role.get("ManagedPolicyArns", [])}
        for logical_id, resource in self.resources.items():
            props = resource.get("Properties", {})
            if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in props["Roles"]:
                documents.append(props["PolicyDocument"])
            if resource["Type"] == "AWS::IAM::ManagedPolicy" and (
                {"Ref": role_id} in props.get("Roles", []) or self.ref(logical_id) in managed
            ):
                documents.append(props["PolicyDocument"])
        return [self.resolve(s) for d in documents for s in as_list(d["Statement"])]


@dataclass(frozen=True)
class Request:
    action: str
    resource: str
    # Condition keys of the request (s3:prefix, aws:ResourceTag/..., ec2:SourceInstanceARN).
    context: Mapping[str, str | list[str]] = field(default_factory=dict)


def _wildcard(pattern: str, *, case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"^{body}$", 0 if case else re.IGNORECASE)


def _variables(text: str, context: Mapping[str, Any]) -> str | None:
    """Policy variables (${aws:...}) filled from the request; None if one is missing."""
    missing = False

    def fill(match: re.Match[str]) -> str:
        nonlocal missing
        key = match.group(1)
        if key in ("*", "?", "$"):
            return key
        value = context.get(key)
        if not isinstance(value, str):
            missing = True
            return ""
        return value

    filled = re.sub(r"\$\{([^}]+)\}", fill, text)
    return None if missing else filled


def _any_match(
    patterns: Iterable[str], value: str, context: Mapping[str, Any], *, case: bool
) -> bool:
    for pattern in patterns:
        filled = _variables(pattern, context)
        if filled is not None and _wildcard(filled, case=case).match(value):
            return True
    return False


_STRING_TESTS = {
    "StringEquals": lambda p, v: p == v,
    "StringEqualsIgnoreCase": lambda p, v: p.lower() == v.lower(),
    "StringLike": lambda p, v: bool(_wildcard(p, case=True).match(v)),
    "ArnEquals": lambda p, v: bool(_wildcard(p, case=True).match(v)),
    "ArnLike": lambda p, v: bool(_wildcard(p, case=True).match(v)),
    "Bool": lambda p, v: p.lower() == v.lower(),
}
_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}


class UnsupportedCondition(Exception):
    pass


def _condition_holds(operator: str, key: str, wanted: Any, context: Mapping[str, Any]) -> bool:
    qualifier = ""
    if ":" in operator:
        qualifier, operator = operator.split(":", 1)
    if_exists = operator.endswith("IfExists")
    operator = operator.removesuffix("IfExists")
    negated = operator in _NEGATED
    base = _NEGATED.get(operator, operator)
    if base not in _STRING_TESTS:
        raise UnsupportedCondition(f"condition operator {operator} is not evaluated here")
    test = _STRING_TESTS[base]
    if key not in context:
        # A missing key: IfExists and negated operators hold; others do not.
        return if_exists or negated or qualifier == "ForAllValues"
    values = as_list(context[key])
    patterns = [p for p in (_variables(str(w), context) for w in as_list(wanted)) if p is not None]

    def one(value: str) -> bool:
        hit = any(test(p, value) for p in patterns)
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        return all(one(v) for v in values)
    return any(one(v) for v in values)


def statement_matches(statement: Mapping[str, Any], request: Request) -> bool:
    context = request.context
    if "Action" in statement:
        if not _any_match(as_list(statement["Action"]), request.action, context, case=False):
            return False
    elif _any_match(as_list(statement["NotAction"]), request.action, context, case=False):
        return False
    if "Resource" in statement:
        if not _any_match(as_list(statement["Resource"]), request.resource, context, case=True):
            return False
    elif _any_match(as_list(statement["NotResource"]), request.resource, context, case=True):
        return False
    for operator, tests in statement.get("Condition", {}).items():
        for key, wanted in tests.items():
            if not _condition_holds(operator, key, wanted, context):
                return False
    return True


def decide(statements: Iterable[Mapping[str, Any]], request: Request) -> str:
    """ "Deny" (explicit), "Allow", or "ImplicitDeny"."""
    statements = list(statements)
    if any(s["Effect"] == "Deny" and statement_matches(s, request) for s in statements):
        return "Deny"
    if any(s["Effect"] == "Allow" and statement_matches(s, request) for s in statements):
        return "Allow"
    return "ImplicitDeny"
