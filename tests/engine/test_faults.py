"""Random transient faults (`stepnet local --inject-faults RATE`): Lambda service errors before
a function runs and lost responses after it ran; the workflow retries both, and the run's
weights stay the reference's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stepnet.cli import main
from stepnet.engine.runtime import LOST_RESPONSE, SERVICE_ERRORS, LambdaRuntime
from stepnet.local import run_local
from stepnet.reference import train
from tests.engine import sandbox_handlers
from tests.engine.conftest import digits_config, each_store, load_weights, max_weight_difference
from trainer.config import parse_config

pytestmark = pytest.mark.engine


def _no_account(method: str, url: str, headers: Any, body: bytes) -> tuple[int, Any, bytes]:
    return 500, {}, b"this handler calls no AWS API"


def test_a_share_of_invocations_fails_and_a_lost_response_has_run() -> None:
    # Given a function that records each call, 40% of invocations failing at random
    runtime = LambdaRuntime("threads", transport=_no_account)
    runtime.register("count", "tests.engine.sandbox_handlers.count", memory_mb=512, timeout_s=30)
    runtime.inject_faults(0.4, seed=3)
    sandbox_handlers.CALLS.clear()

    # When it is invoked 400 times
    outcomes = [runtime.invoke("count", {"tag": i}) for i in range(400)]

    # Then about 40% fail, each with a transient error the ASL retries, as counted
    failed = [payload["errorType"] for payload, error in outcomes if error]
    assert 0.3 < len(failed) / len(outcomes) < 0.5
    assert set(failed) == {*SERVICE_ERRORS, LOST_RESPONSE}
    assert sum(runtime.injected.values()) == len(failed)
    # and a lost response ran (its effect is there), a service error did not
    ran = len(sandbox_handlers.CALLS)
    assert ran == len(outcomes) - len(failed) + failed.count(LOST_RESPONSE)
    runtime.close()


@pytest.mark.parametrize("rate", [-0.1, 0.6])
def test_a_rate_out_of_range_is_refused(rate: float) -> None:
    runtime = LambdaRuntime("threads", transport=_no_account)
    with pytest.raises(ValueError, match=r"from 0 to 0\.5"):
        runtime.inject_faults(rate)


def test_the_cli_refuses_a_rate_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    # When / Then: argparse's usage error, naming the flag and the range
    with pytest.raises(SystemExit) as exited:
        main(["local", "examples/digits.json", "--inject-faults", "0.9"])
    assert exited.value.code == 2
    assert "--inject-faults: a share of invocations from 0 to 0.5" in capsys.readouterr().err


@each_store
def test_a_run_with_faults_finishes_with_the_references_weights(account, tmp_path: Path) -> None:
    # Given a fused digits run, and a fifth of all invocations failing at random
    config = parse_config(
        digits_config(run_id="faulty", epochs=1, workers=4, mode="fused", batch_size=64)
    )
    account.runtime.inject_faults(0.2, seed=11)

    # When it runs
    try:
        run = run_local(config, tmp_path, account=account)
    finally:
        account.runtime.inject_faults(0.0)

    # Then it finished, both kinds of fault were injected and retried, and nothing changed
    assert run.succeeded, run.description
    assert run.faults.get(LOST_RESPONSE, 0) > 0
    assert sum(run.faults.get(error, 0) for error in SERVICE_ERRORS) > 0
    retried = {
        event["taskFailedEventDetails"]["error"]
        for events in run.every_history.values()
        for event in events
        if event["type"] == "TaskFailed"
    }
    assert retried == set(run.faults)
    difference = max_weight_difference(train(config).params, load_weights(tmp_path / "model.npz"))
    assert difference == 0.0, f"max |local - reference| = {difference}"
