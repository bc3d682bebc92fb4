"""Synthesizes the stack once per session, with cdk.json's context and without bundling."""

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from infra.stack import StepnetStack
from trainer.contract import names

REPO_ROOT = Path(__file__).resolve().parents[2]
NO_BUNDLING = {"aws:cdk:bundling-stacks": []}

StackFactory = Callable[..., StepnetStack]


@pytest.fixture(scope="session")
def cdk_context() -> dict[str, Any]:
    return json.loads((REPO_ROOT / "cdk.json").read_text())["context"]


@pytest.fixture(scope="session")
def make_stack(cdk_context: dict[str, Any]) -> StackFactory:
    """A StepnetStack in a fresh App with cdk.json's context plus `overrides`, never bundling."""

    def make(overrides: Mapping[str, Any] | None = None) -> StepnetStack:
        app = cdk.App(context={**cdk_context, **(overrides or {}), **NO_BUNDLING})
        return StepnetStack(app, names.DEFAULT_STACK_NAME)

    return make


@pytest.fixture(scope="session")
def stack(make_stack: StackFactory) -> StepnetStack:
    return make_stack()


@pytest.fixture(scope="session")
def template(stack: StepnetStack) -> Template:
    return Template.from_stack(stack)


@pytest.fixture(scope="session")
def resources(template: Template) -> dict[str, dict[str, Any]]:
    """The synthesized template's Resources, by logical id."""
    return template.to_json()["Resources"]


@pytest.fixture(scope="session")
def logical_id_named(resources: dict[str, dict[str, Any]]) -> Callable[[str, str, str], str]:
    """The logical id of the one resource of a type whose name property has a value."""

    def find(resource_type: str, name_property: str, name: str) -> str:
        matches = [
            logical_id
            for logical_id, resource in resources.items()
            if resource["Type"] == resource_type
            and resource["Properties"].get(name_property) == name
        ]
        assert len(matches) == 1, f"{resource_type} named {name}: {matches}"
        return matches[0]

    return find
