"""The estimate: the digits epoch's known counts, long epochs, the bills, datasets, the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stepnet.billing import bills, prices, report
from stepnet.billing import estimate as cost
from stepnet.datasets import synthetic_classification, write_npz
from trainer.config import parse_config
from trainer.training import schedule

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _digits(**changes: Any) -> Any:
    document = json.loads((EXAMPLES / "digits.json").read_text())
    return parse_config(document | changes)


def test_the_digits_epoch_has_the_known_counts() -> None:
    # Given the example config (1,437 training examples, batch 32, 4 workers, 2 layers)
    estimate = cost.estimate(_digits())
    per_layer, fused = estimate.modes["per_layer"], estimate.modes["fused"]
    per_step = estimate.modes["per_step"]

    # Then 12 steps, 45 micro-batches, one chunk; Standard: Plan, the chunk's Task and Choice,
    # the evaluation of the one group of shards and the Succeed, plus 2 in the Training
    # execution; Express: 3 per step, the micro-batch paths (11 or 2 states), the chunk's first
    # Choice and its Succeed; per_step: 2 per step (its Task and the Choice), no micro-batch path
    assert (estimate.shapes.steps, estimate.shapes.microbatches) == (12, 45)
    assert per_layer.usage.transitions == fused.usage.transitions == 1 + 2 + 4 + 2
    assert per_step.usage.transitions == 1 + 2 + 4 + 2
    assert per_layer.usage.express_transitions == 3 * 12 + 11 * 45 + 2
    assert fused.usage.express_transitions == 3 * 12 + 2 * 45 + 2
    assert per_step.usage.express_transitions == 2 * 12 + 2
    # Plan, the Updates, the micro-batches' tasks, EvaluateShards and Evaluate; per_step: Plan,
    # a task per step, EvaluateShards and Evaluate
    assert per_layer.usage.invocations == 1 + 12 + 45 * 5 + 1 + 1
    assert fused.usage.invocations == 1 + 12 + 45 + 1 + 1
    assert per_step.usage.invocations == 1 + 12 + 1 + 1
    assert per_layer.parts == fused.parts == per_step.parts == 1


def test_a_long_epoch_is_counted_in_several_chunks() -> None:
    # Given an epoch of 1,438 one-example steps (longer than one chunk's assumed duration;
    # blocks of one row split off exactly round(1,797 × 0.2) validation rows)
    config = _digits(batch_size=1, workers=1, mode="fused")
    estimate = cost.estimate(config)
    seconds = schedule.step_seconds_bound(sizes=[64, 64, 10], batch_size=1, workers=1, mode="fused")
    chunk = schedule.steps_per_chunk(workers=1, layers=2, mode="fused", step_seconds=seconds)

    # Then its steps run in ceil(steps / chunk) Express chunks, 2 Standard transitions each
    # besides Plan and the evaluation (4) with its Succeed, and a first Choice and a Succeed
    # each in Express
    parts = -(-1438 // chunk)
    assert estimate.shapes.n_train == 1438
    assert estimate.mode.parts == parts > 1
    assert estimate.mode.usage.epoch_transitions == 1 + 2 * parts + 4
    assert estimate.mode.usage.express_transitions == 3 * 1438 + 2 * 1438 + 2 * parts


def test_bills_price_the_counts() -> None:
    # Given the digits estimate
    estimate = cost.estimate(_digits())
    usage = estimate.modes["per_layer"].usage
    standard = estimate.modes["per_layer"].standard

    # Then transitions, requests and units are priced from stepnet.billing.prices
    assert standard.items["Step Functions transitions"] == pytest.approx(usage.transitions * 25e-6)
    assert standard.items["Lambda requests"] == pytest.approx(usage.invocations * 0.2e-6)
    assert standard.items["DynamoDB WRU"] == pytest.approx(usage.store.wru * 0.625e-6)
    # the seed design: same invocations, an SNS publish each, no Step Functions, no S3
    assert estimate.seed.items["SNS publishes"] == pytest.approx(usage.invocations * 0.5e-6)
    assert "Step Functions transitions" not in estimate.seed.items
    # the Express chunks: a request each, 64 MB × their duration in 100 ms steps
    fused = estimate.modes["fused"]
    assert fused.standard.items["Express requests"] == pytest.approx(fused.parts * 1e-6)
    gb_s = bills.express_seconds(fused.usage.express_seconds, fused.parts) * 64 / 1024
    assert fused.standard.items["Express GB-s"] == pytest.approx(gb_s * 0.00001667)
    # everything on Standard (for comparison): every transition billed as Standard
    every = fused.all_standard
    assert every.hypothetical
    assert every.items["Step Functions transitions"] == pytest.approx(
        (fused.usage.transitions + fused.usage.express_transitions) * 25e-6
    )


def test_fused_needs_fewer_transitions_and_invocations() -> None:
    # Given a deep, narrow network
    layers = [{"units": 16, "activation": "relu"}] * 8 + [{"units": 10, "activation": "softmax"}]
    config = _digits(model={"layers": layers}, batch_size=8)

    # When estimated
    modes = cost.estimate(config).modes

    # Then fused takes far fewer transitions per example (all of them, Express chunks' too)
    every = {name: m.usage.transitions + m.usage.express_transitions for name, m in modes.items()}
    assert every["per_layer"] / every["fused"] > 10
    assert modes["fused"].standard.total < modes["per_layer"].standard.total


def test_express_duration_is_billed_in_100_ms_steps() -> None:
    # Given 2 executions of 1.23 s in all, When / Then each is rounded up to 0.7 s
    assert bills.express_seconds(1.23, 2) == pytest.approx(1.4)
    assert bills.express_seconds(0.0, 0) == 0.0


def test_the_dataset_shape_is_read_from_a_local_npz(tmp_path: Path) -> None:
    # Given a config whose dataset is a local .npz of 500 x 12
    X, y = synthetic_classification(n=500, d=12, k=3, seed=1)
    path = write_npz(tmp_path / "blobs.npz", X, y)
    layers = [{"units": 3, "activation": "softmax"}]
    config = _digits(dataset={"source": str(path)}, model={"layers": layers})

    # When estimated without n_train
    estimate = cost.estimate(config)

    # Then the split is the dataset's: 400 train, 100 validation, 12 features
    assert (estimate.shapes.n_train, estimate.shapes.n_val) == (400, 100)
    assert estimate.shapes.n_features == 12


def test_an_s3_dataset_needs_n_train_and_n_features() -> None:
    # Given a dataset the estimate cannot read
    config = _digits(dataset={"source": "s3://bucket/data.npz"})

    # Then it says what to pass, and takes the numbers when given
    with pytest.raises(cost.EstimateError, match="n_train and n_features"):
        cost.estimate(config)
    assert cost.estimate(config, 60_000, n_features=64).shapes.steps == -(-60_000 // 128)


def test_format_estimate_shows_both_modes_and_every_design() -> None:
    # Given the digits estimate, When rendered
    text = report.format_estimate(cost.estimate(_digits()))

    # Then the counts and the dollars of each design are there, with the prices' source
    for needle in (
        "Standard state transitions", "Express state transitions", "per_layer", "fused",
        "Express chunks", "everything on Standard", "AWS time per epoch (estimate)",
    ):  # fmt: skip
        assert needle in text
    assert "seed design" in text and "m5.large" in text
    assert prices.SOURCE in text


def test_every_price_names_its_source() -> None:
    # Given the price table, Then each entry has a positive price, a unit and a source
    for name, price in prices.PRICES.items():
        assert price.usd > 0 and price.per >= 1, name
        assert price.unit and price.source, name
    assert prices.each("stepfunctions_standard_transition") == pytest.approx(0.000025)


def test_logs_and_traces_are_priced_from_the_history_events_and_invocations() -> None:
    # Given the digits estimate (one chunk per epoch, one group of shards)
    fused = cost.estimate(_digits()).modes["fused"]
    usage = fused.usage

    # Then the events are the Standard epoch's, the chunk's and the Training execution's
    standard = 2 + 5 + 8 + (4 + 7 + 5) + 2
    express = 12 * 11 + 45 * 9 + 6
    assert usage.history_events == standard + express + 8
    assert usage.express_history_events == express
    # and the logs are priced per GB ingested, the traces per execution: the Express chunk's
    # events (level ALL), none of the Standard executions' (level ERROR, and nothing failed)
    telemetry = bills.TelemetryModel()
    assert telemetry.logged_events(usage) == express
    log_bytes = express * telemetry.state_event_bytes + (
        usage.invocations * telemetry.lambda_bytes_per_invocation
    )
    assert fused.standard.items["CloudWatch Logs"] == pytest.approx(log_bytes / 1e9 * 0.50)
    assert fused.standard.items["X-Ray traces"] == pytest.approx((1 + fused.parts) * 5e-6)


def test_the_ways_to_run_select_config_fields_and_carry_their_counts() -> None:
    # Given the digits config (blocks of 4 rows: batch 32 // 8)
    config = _digits()

    # When
    result = cost.ways_to_run(config)

    # Then each mode is a way, as configured and with blocks of a batch, cheapest first
    selects = [entry.select for entry in result.entries]
    assert sorted(map(json.dumps, selects)) == sorted(
        json.dumps(s)
        for s in (
            {"mode": "per_layer"},
            {"mode": "fused"},
            {"mode": "per_step"},
            {"mode": "per_layer", "dataset": {"block_rows": 32}},
            {"mode": "fused", "dataset": {"block_rows": 32}},
            {"mode": "per_step", "dataset": {"block_rows": 32}},
        )
    )
    totals = [entry.mode.standard.total for entry in result.entries]
    assert totals == sorted(totals)
    # and merging a select into the config estimates exactly that entry
    for entry in result.entries:
        document = json.loads(config.to_json())
        document["mode"] = entry.select["mode"]
        document["dataset"] |= entry.select.get("dataset", {})
        alone = cost.estimate(parse_config(document)).modes[entry.select["mode"]]
        assert alone.standard.total == pytest.approx(entry.mode.standard.total)
        row = entry.as_dict()
        assert row["transitions_per_epoch"] == alone.usage.transitions
        assert row["invocations_per_epoch"] == alone.usage.invocations
        assert row["dollars_per_epoch"] == pytest.approx(
            sum(row["dollars_per_epoch_parts"].values())
        )
        assert row["seconds_per_epoch_estimate"] == alone.usage.epoch_seconds > 0


def test_a_config_with_blocks_of_a_batch_has_no_larger_blocks_way() -> None:
    # Given blocks as large as a batch already
    config = _digits(dataset={"source": "builtin:digits", "block_rows": 32})

    # When / Then
    assert cost.larger_blocks(config) is None
    assert [e.select for e in cost.ways_to_run(config).entries] == [
        {"mode": "per_step"}, {"mode": "fused"}, {"mode": "per_layer"}
    ]  # fmt: skip
