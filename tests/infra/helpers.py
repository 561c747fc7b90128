"""Reading the synthesized template: functions by name, policies by role, user data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from darkroom import names

Resource = dict[str, Any]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def functions_by_name(
    template: dict[str, Any], stack: str = names.DEFAULT_STACK
) -> dict[str, tuple[str, Resource]]:
    """darkroom.names.Function key -> (logical id, resource), for the functions that
    have a name (`stack` deployed each under names.in_stack)."""
    keys = {names.in_stack(key, stack): key for key in names.HANDLERS}
    found: dict[str, tuple[str, Resource]] = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Lambda::Function":
            name = resource["Properties"].get("FunctionName")
            if isinstance(name, str):
                found[keys.get(name, name)] = (logical_id, resource)
    return found


def name_of_function(template: dict[str, Any], logical_id: str) -> str:
    name: str = template["Resources"][logical_id]["Properties"]["FunctionName"]
    return name


def getatt_target(value: Any) -> str | None:
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target: str = value["Fn::GetAtt"][0]
        return target
    return None


def role_logical_id(function: Resource) -> str:
    target = getatt_target(function["Properties"]["Role"])
    assert target is not None
    return target


def statements_of_role(template: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    """Every statement of the identity policies attached to the role (inline or not)."""
    out: list[dict[str, Any]] = []
    role = template["Resources"][role_id]
    for policy in role["Properties"].get("Policies", []):
        out.extend(as_list(policy["PolicyDocument"]["Statement"]))
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        if {"Ref": role_id} in resource["Properties"].get("Roles", []):
            out.extend(as_list(resource["Properties"]["PolicyDocument"]["Statement"]))
    return out


def actions_of(statements: list[dict[str, Any]]) -> set[str]:
    return {a for s in statements if s["Effect"] == "Allow" for a in as_list(s["Action"])}


def all_policy_statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(logical id, statement) for identity and resource policies alike."""
    documents = {
        "AWS::IAM::Policy": "PolicyDocument",
        "AWS::IAM::ManagedPolicy": "PolicyDocument",
        "AWS::S3::BucketPolicy": "PolicyDocument",
        "AWS::SQS::QueuePolicy": "PolicyDocument",
        "AWS::SNS::TopicPolicy": "PolicyDocument",
    }
    for logical_id, resource in template["Resources"].items():
        key = documents.get(resource["Type"])
        if key:
            for statement in as_list(resource["Properties"][key]["Statement"]):
                yield logical_id, statement
        if resource["Type"] == "AWS::IAM::Role":
            for policy in resource["Properties"].get("Policies", []):
                for statement in as_list(policy["PolicyDocument"]["Statement"]):
                    yield logical_id, statement


def render(value: Any, placeholder: Any = None) -> str:
    """A Fn::Join / Fn::Base64 / Fn::Sub tree as text, references shown as <...>."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "Fn::Base64" in value:
            return render(value["Fn::Base64"], placeholder)
        if "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return str(separator).join(render(p, placeholder) for p in parts)
        if placeholder is not None:
            return str(placeholder(value))
        return "<" + json.dumps(value, sort_keys=True) + ">"
    return str(value)


def heredoc(text: str, path: str) -> str:
    """The body user data writes to `path` with cat > path <<'DARKROOM_EOF'."""
    start = text.index(f"cat > {path} <<'DARKROOM_EOF'\n") + len(f"cat > {path} <<'DARKROOM_EOF'\n")
    end = text.index("\nDARKROOM_EOF\n", start)
    return text[start:end] + "\n"
