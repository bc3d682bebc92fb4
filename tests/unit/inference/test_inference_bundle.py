"""The inference bundle is numpy + trainer/__init__.py + trainer/nn/ + inference/ (+ Powertools):
nothing it imports needs pydantic, powertools, boto3 or the rest of ``trainer`` (boto3 is
imported only when a handler first talks to S3, and the Lambda runtime has it; Powertools only
when a handler Lambda runs writes its metrics)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

LAMBDAS = Path(__file__).resolve().parents[3] / "lambdas"

PROBE = """
import importlib.abc, sys
BLOCKED = ("pydantic", "aws_lambda_powertools", "boto3", "botocore")

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        outside_nn = name.startswith("trainer.") and not name.startswith("trainer.nn")
        if top in BLOCKED or outside_nn:
            raise ImportError(f"the inference bundle does not ship {name}")
        return None

sys.meta_path.insert(0, Block())
import inference, inference.handlers, inference.cache, inference.output, inference.rows
from inference.model import Model
assert inference.__file__.startswith(sys.argv[1]), inference.__file__
model = Model.from_dir(sys.argv[2])
print(model.predict(model.mean[None, :]).labels())
"""


def test_the_bundle_imports_and_predicts_without_the_rest(
    tmp_path: Path, classifier_dir: Path
) -> None:
    # Given the bundle's files, alone in a folder
    bundle = tmp_path / "bundle"
    (bundle / "trainer").mkdir(parents=True)
    shutil.copy(LAMBDAS / "trainer" / "__init__.py", bundle / "trainer")
    shutil.copytree(LAMBDAS / "trainer" / "nn", bundle / "trainer" / "nn")
    shutil.copytree(LAMBDAS / "inference", bundle / "inference")

    # When
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(bundle), str(classifier_dir)],
        env={"PYTHONPATH": str(bundle), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )

    # Then
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("[")
