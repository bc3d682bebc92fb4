"""app.py as the CDK CLI runs it: one stack, named from context, passing cdk-nag."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from trainer.contract import names
from trainer.contract.functions import FUNCTIONS

pytestmark = [pytest.mark.infra, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_app_synthesizes_the_named_stack_with_cdk_nag(
    tmp_path: Path, cdk_context: dict[str, Any]
) -> None:
    # Given the context the CLI would pass, with another stack name and bundling skipped
    context = {**cdk_context, "stack_name": "stepnet-ci", "aws:cdk:bundling-stacks": []}
    environment = {
        **os.environ,
        "CDK_OUTDIR": str(tmp_path),
        "CDK_CONTEXT_JSON": json.dumps(context),
    }

    # When
    result = subprocess.run(
        [sys.executable, "app.py"],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    # Then (a cdk-nag finding would fail the synth)
    assert result.returncode == 0, result.stderr[-4000:]
    template = json.loads((tmp_path / "stepnet-ci.template.json").read_text())
    deployed = {
        r["Properties"]["FunctionName"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function" and "FunctionName" in r["Properties"]
    }  # (CDK's bucket-notifications custom resource has no name)
    assert deployed == {names.function_name("stepnet-ci", logical) for logical in FUNCTIONS}
    report = json.loads((tmp_path / "validation-report.json").read_text())
    assert report["pluginReports"] == []
