"""The report's numbers and page from a record, and the watch view from a poll."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rich.console import Console

from stepnet.billing import prices
from stepnet.report.dollars import bill
from stepnet.report.page import render
from stepnet.report.record import RunRecord
from stepnet.report.summary import definitions, machine_of, summarize
from stepnet.watch import Snapshot, StepPosition
from stepnet.watch import render as render_watch
from trainer.contract.functions import LAMBDA_ARCHITECTURE

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _event(id_: int, type_: str, ms: int, key: str, **details: Any) -> dict[str, Any]:
    return {"id": id_, "previousEventId": id_ - 1, "type": type_,
            "timestamp": T0 + timedelta(milliseconds=ms), key: details}  # fmt: skip


def test_dollars_are_the_billing_package_s_prices_of_the_counts() -> None:
    # Given 10 transitions and two Lambda tasks of 1.5 ms and 100 ms at 1024 and 512 MB
    gb_second = prices.each(f"lambda_gb_second_{LAMBDA_ARCHITECTURE.replace('-', '_')}")

    # When
    dollars = bill(10, [("A", 0.0015), ("B", 0.1)], {"A": 1024, "B": 512})

    # Then each is priced by stepnet.billing, durations rounded up to the millisecond
    assert dollars.items == {
        "Step Functions transitions": pytest.approx(10 * prices.each("stepfunctions_standard_transition")),
        "Lambda requests": pytest.approx(2 * prices.each("lambda_request")),
        "Lambda GB-s": pytest.approx((0.002 * 1 + 0.1 * 0.5) * gb_second),
    }  # fmt: skip
    assert dollars.total == pytest.approx(sum(dollars.items.values()))


def test_a_failed_run_s_page_says_why_in_the_innermost_words() -> None:
    # Given a Training execution that failed after its first state, its cause nested as the
    # workflow nests an epoch's failure
    config = {"run_id": "r", "epochs": 2, "model": {"layers": [{"units": 3, "activation": "relu"}]}}
    inner = json.dumps({"errorType": "Runtime.OutOfMemory", "errorMessage": "Backward used 300 MB"})
    cause = json.dumps({"Error": "stepnet.EpochFailed", "Cause": inner})
    training = [
        _event(1, "ExecutionStarted", 0, "executionStartedEventDetails", input=json.dumps(config)),
        _event(2, "TaskStateEntered", 1, "stateEnteredEventDetails", name="Initialize run"),
        _event(3, "TaskStateExited", 5, "stateExitedEventDetails", name="Initialize run"),
        _event(4, "ExecutionFailed", 9, "executionFailedEventDetails", error="E", cause=cause),
    ]
    record = RunRecord("r", {"r": training}, [], {})

    # When
    page = render(summarize(record))

    # Then the status and the innermost message are on the page, and the graph of what ran
    assert record.status == "FAILED"
    assert "Runtime.OutOfMemory: Backward used 300 MB" in page
    assert 'id="failure"' in page and "<script" not in page
    assert 'data-machine="Training"' in page and 'data-machine="Epoch"' not in page
    assert machine_of(training, definitions()) == "Training"
    assert "no data yet" in page  # no epoch was evaluated


def test_the_watch_view_shows_the_bars_the_losses_and_the_newest_epochs() -> None:
    # Given a poll mid-run
    snap = Snapshot(
        run_id="r", status="RUNNING", epochs=20,
        metrics=[{"epoch": e, "train_loss": 1 / e, "val_loss": 2 / e} for e in range(1, 8)],
        execution="r-epoch-008", position=StepPosition(8, 12, 45, (0.5, 0.25)), cause=None,
    )  # fmt: skip
    console = Console(record=True, width=100)

    # When
    console.print(render_watch(snap))

    # Then
    screen = console.export_text()
    assert "run r RUNNING" in screen
    assert "epochs evaluated" in screen and "7/20" in screen
    assert "epoch 8 steps" in screen and "12/45" in screen
    assert "last step's micro-batch losses: 0.5000 0.2500" in screen
    assert "0.2857" in screen and "1.0000" not in screen  # epochs 3–7 only (2/7, not 1/1)
