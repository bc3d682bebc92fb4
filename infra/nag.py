"""cdk-nag v3 acknowledgments (CDK's `Validations.of(scope).acknowledge`).

An acknowledgment covers the construct it is made on and all its children, and names one exact
finding: `AwsSolutions-IAM5[Resource::<ARN as cdk-nag flattens it>]`, never the whole rule.
"""

import json
from typing import Any

from aws_cdk import Acknowledgment, Stack, Validations
from constructs import IConstruct


def acknowledge(scope: IConstruct, rule_id: str, *, reason: str) -> None:
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def wildcard_resource_finding(scope: IConstruct, resource: str) -> str:
    """The AwsSolutions-IAM5 finding cdk-nag reports for an ARN (a token) containing `*`."""
    return f"AwsSolutions-IAM5[Resource::{_flatten(Stack.of(scope).resolve(resource))}]"


def _flatten(node: Any) -> str:
    """cdk-nag's flattenCfnReference: `{"Fn::GetAtt": [X, "Arn"]}` -> `<X.Arn>`, and so on."""
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, dict) and len(node) == 1:
        ((function, argument),) = node.items()
        if function == "Fn::Join":
            delimiter, items = argument
            return str(delimiter).join(_flatten(item) for item in items)
        if function in ("Fn::Sub", "Fn::ImportValue"):
            return _flatten(argument)
        if function == "Fn::GetAtt":
            resource, attribute = argument
            return f"<{_flatten(resource)}.{_flatten(attribute)}>"
        if function == "Ref":
            return f"<{_flatten(argument)}>"
    return json.dumps(node, separators=(",", ":"))
