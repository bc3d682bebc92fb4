"""What is deployed, checked by the tools made for it: cfn-lint on the synthesized template,
asl-validator (npm, pinned in package.json) on every state machine as deployed, and the Node.js
the CDK CLI and the validator run on (22 LTS, pinned in package.json, first on make's PATH)."""

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint

from trainer.contract import names
from trainer.contract.functions import FUNCTIONS
from trainer.contract.statemachines import (
    STATE_MACHINES,
    creation_order,
    definition_text,
    read_references,
    render,
    substitutions,
)

pytestmark = pytest.mark.infra

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE_BIN = REPO_ROOT / "node_modules" / ".bin"
NODE_MAJOR = 22
ACCOUNT, REGION = "123456789012", "us-east-1"
# cfn-lint checks resource specs per region: two here (all 30+ would take a minute per template)
LINT_REGIONS = ["us-east-1", "eu-west-1"]


def _validate(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    """asl-validator on ``paths``, run by the pinned Node.js."""
    command = [str(NODE_BIN / "node"), str(NODE_BIN / "asl-validator")]
    for path in paths:
        command += ["--json-path", str(path)]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False, cwd=REPO_ROOT
    )


def deployed_definitions() -> dict[str, str]:
    """Every state machine's definition with its placeholders replaced by ARNs, as the stack
    and the engine render them (children first)."""
    functions = {
        logical: f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:"
        f"{names.function_name(names.DEFAULT_STACK_NAME, logical)}"
        for logical in FUNCTIONS
    }
    machines: dict[str, str] = {}
    rendered: dict[str, str] = {}
    for logical in creation_order():
        values = substitutions(read_references(logical), functions, machines)
        rendered[logical] = render(definition_text(logical), values)
        machines[logical] = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:" + (
            names.state_machine_name(names.DEFAULT_STACK_NAME, logical)
        )
    return rendered


def test_cfn_lint_finds_no_error_in_the_synthesized_template(template: Any) -> None:
    # Given the stack as synthesized (bundling skipped: assets are only paths)
    document = json.dumps(template.to_json())

    # When cfn-lint checks it
    matches = lint(document, regions=LINT_REGIONS)

    # Then no error (warnings and informational findings are listed, not failed)
    errors = [m for m in matches if m.rule.id.startswith("E")]
    assert errors == [], "\n".join(str(m) for m in errors)


def test_cfn_lint_would_fail_a_broken_template(template: Any) -> None:
    # Given the template with one function's role a resource that does not exist
    document = template.to_json()
    function = next(
        r for r in document["Resources"].values() if r["Type"] == "AWS::Lambda::Function"
    )
    function["Properties"]["Role"] = {"Fn::GetAtt": ["NoSuchRole", "Arn"]}

    # When / Then cfn-lint reports it as an error
    errors = [
        m for m in lint(json.dumps(document), regions=LINT_REGIONS) if m.rule.id.startswith("E")
    ]
    assert any("NoSuchRole" in m.message for m in errors)


def test_every_state_machine_passes_asl_validator(tmp_path: Path) -> None:
    # Given each machine's definition as deployed
    paths = []
    for logical, text in deployed_definitions().items():
        path = tmp_path / f"{logical}.asl.json"
        path.write_text(text)
        paths.append(path)

    # When validated
    result = _validate(paths)

    # Then every one is valid
    assert len(paths) == len(STATE_MACHINES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_asl_validator_would_fail_a_broken_machine(tmp_path: Path) -> None:
    # Given the epoch machine with a transition to a state that does not exist
    definition = json.loads(deployed_definitions()["Epoch"])
    state = next(s for s in definition["States"].values() if "Next" in s)
    state["Next"] = "Nowhere"
    path = tmp_path / "broken.asl.json"
    path.write_text(json.dumps(definition))

    # When / Then
    result = _validate([path])
    assert result.returncode != 0 and "Nowhere" in result.stdout + result.stderr


def test_the_cdk_cli_and_the_validator_run_on_node_22() -> None:
    # Given the Node.js package.json pins, installed in node_modules
    pinned = json.loads((REPO_ROOT / "package.json").read_text())["devDependencies"]["node"]

    # When asked its version
    version = subprocess.run(
        [str(NODE_BIN / "node"), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()

    # Then it is 22 LTS, the one pinned, and make puts it first on the PATH of every target
    assert pinned.split(".")[0] == str(NODE_MAJOR) and version == f"v{pinned}"
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "export PATH := $(CURDIR)/node_modules/.bin:$(PATH)" in makefile
    if os.environ.get("MAKELEVEL"):  # run by make: the PATH has it
        assert os.environ["PATH"].split(os.pathsep)[0] == str(NODE_BIN)
