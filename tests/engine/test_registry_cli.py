"""`stepnet models / promote / rollback` on the emulated account (whole runs on the engine,
each ending in the registry's states)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stepnet.cli import main
from stepnet.local import run_local
from tests.engine.conftest import digits_config
from trainer.config import parse_config

pytestmark = pytest.mark.engine
PIPELINE = "cli-digits"


def _pointer(account: Any) -> dict[str, Any]:
    s3 = account.client("s3")
    key = f"models/{PIPELINE}/production.json"
    document: dict[str, Any] = json.loads(
        s3.get_object(Bucket=account.resources.bucket, Key=key)["Body"].read()
    )
    return document


def test_models_promote_and_rollback(account, capsys) -> None:
    # Given a pipeline's first run, then a worse one (its rule asks for a large margin)
    first = digits_config(run_id="cli-one", pipeline=PIPELINE, epochs=1, mode="fused")
    second = digits_config(
        run_id="cli-two", pipeline=PIPELINE, epochs=1, mode="fused", seed=3,
        promote_if={"metric": "val_accuracy", "margin": 0.5},
    )  # fmt: skip
    for document in (first, second):
        run = run_local(parse_config(document), None, account=account)
        assert run.succeeded, run.description
    # and the Training graph ended on each outcome
    ends = {
        name: [e for e in run.histories[name] if e["type"] == "SucceedStateEntered"]
        for name in ("cli-two",)
    }
    assert [e["stateEnteredEventDetails"]["name"] for e in ends["cli-two"]] == ["Not promoted"]
    region = ["--region", "us-east-1"]

    # When the registry is listed, the second run promoted by hand, then rolled back
    assert main(["models", *region]) == 0
    assert main(["models", PIPELINE, *region]) == 0
    listed = capsys.readouterr().out
    assert main(["promote", "cli-two", "--reason", "by a test", *region]) == 0
    promoted = _pointer(account)
    assert main(["models", PIPELINE, *region]) == 0
    after = capsys.readouterr().out
    assert main(["rollback", PIPELINE, *region]) == 0
    rolled_back = _pointer(account)

    # Then the listing shows the versions and why the second was not promoted
    assert PIPELINE in listed and "cli-one" in listed and "cli-two" in listed
    assert "cli-two not promoted (" in listed and "margin 0.5" in listed
    assert "production: run cli-one" in listed
    # and the pointer followed each change, recorded with when and why
    assert (promoted["run_id"], promoted["action"], promoted["revision"]) == (
        "cli-two",
        "manual",
        2,
    )
    assert "serves run cli-two" in after and "by a test" in after
    assert (rolled_back["run_id"], rolled_back["action"], rolled_back["revision"]) == (
        "cli-one", "rollback", 3,
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "pipeline cli-digits serves run cli-one again" in out


def test_the_registry_commands_name_what_is_missing(account, capsys) -> None:
    # When / Then
    region = ["--region", "us-east-1"]
    assert main(["models", "no-such-pipeline", *region]) == 2
    assert main(["rollback", "no-such-pipeline", *region]) == 2
    assert main(["promote", "no-such-run", *region]) == 2
    out = capsys.readouterr().out
    assert "pipeline 'no-such-pipeline' has no registered model" in out
    assert "pipeline 'no-such-pipeline' has no production model to roll back" in out
    assert "run 'no-such-run' does not exist" in out
