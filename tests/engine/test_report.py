"""`stepnet report`: the page of a run trained on the emulated account, built from the folder
`stepnet local` wrote and from the account's APIs alike, opened in Debian's headless chromium."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stepnet.cli import main
from stepnet.client import StepnetClient
from stepnet.engine import LocalAccount
from stepnet.local import LocalRun, run_local
from stepnet.report import record
from stepnet.report.summary import Summary, definitions, states_of, summarize
from tests.engine.conftest import digits_config
from tests.support.browser import browser
from trainer.config import parse_config

pytestmark = pytest.mark.engine
EPOCHS = 3


@pytest.fixture(scope="module")
def trained(
    account: LocalAccount, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LocalRun, Path]]:
    """A 3-epoch run trained by `stepnet local`'s code, its folder written."""
    out = tmp_path_factory.mktemp("run")
    config = parse_config(digits_config(run_id="reported", epochs=EPOCHS, mode="fused"))
    yield run_local(config, out, account=account), out


def _client(account: LocalAccount) -> StepnetClient:
    assert account.resources is not None
    return StepnetClient(account.resources, endpoint_url=account.endpoint_url)


def _numbers(summary: Summary) -> dict[str, Any]:
    """What must not depend on where the record came from."""
    return {
        "epochs": [
            (row.epoch, row.counts.executions, row.counts.transitions, row.counts.lambda_tasks)
            for row in summary.epochs
        ],
        "metrics": [row.metrics for row in summary.epochs],
        "run": (summary.run.transitions, summary.run.lambda_tasks),
        "states": {
            machine.logical: {name: stats.entered for name, stats in machine.states.items()}
            for machine in summary.machines
        },
        "dollars": round(summary.total.total, 9),
        "seconds": {
            machine.logical: {n: round(s.seconds, 3) for n, s in machine.states.items()}
            for machine in summary.machines
        },
    }


def test_local_writes_the_report_and_the_account_gives_the_same_numbers(
    account: LocalAccount, trained: tuple[LocalRun, Path]
) -> None:
    # Given a run `stepnet local` trained, and its folder
    run, out = trained
    assert run.succeeded

    # When the report's record is read back from the folder and from the account's APIs
    from_dir = summarize(record.from_dir(out))
    from_account = summarize(record.from_client(_client(account), "reported"))

    # Then the page was written beside the model
    assert run.report == out / "report.html" and run.report.is_file()
    assert (out / "model.npz").is_file()
    # and both sources give the same numbers
    assert _numbers(from_dir) == _numbers(from_account)
    # which are the run's own: per epoch the transitions and Lambda tasks stepnet local counts
    assert [
        (row.epoch, row.counts.transitions, row.counts.lambda_tasks) for row in from_dir.epochs
    ] == [(row["epoch"], row["transitions"], row["lambda_invocations"]) for row in run.per_epoch]
    assert [row.metrics for row in from_dir.epochs] == run.metrics
    # (a folder without metrics.json, a failed run's, has them from the epochs' own outputs)
    assert record.evaluated_epochs(run.histories.values()) == [
        {key: value for key, value in row.items() if key != "version"} for row in run.metrics
    ]
    # every state entered is one of its machine's ASL states, and they add up to the transitions
    machines = definitions()
    for machine in from_dir.machines:
        assert set(machine.states) <= {name for name, _ in states_of(machines[machine.logical])}
    entered = sum(s.entered for m in from_dir.machines for s in m.states.values())
    transitions = from_dir.run.transitions + sum(r.counts.transitions for r in from_dir.epochs)
    assert entered == transitions
    # each epoch costs something, and the run's total is the sum of its parts
    assert all(row.counts.dollars.total > 0 for row in from_dir.epochs)
    parts = from_dir.run.dollars.total + sum(r.counts.dollars.total for r in from_dir.epochs)
    assert from_dir.total.total == pytest.approx(parts)


def test_stepnet_report_from_a_folder_and_from_a_run_id(
    account: LocalAccount, trained: tuple[LocalRun, Path], tmp_path: Path, capsys
) -> None:
    # Given the trained run
    _, out = trained

    # When the user asks for its report from the folder, and from the run id on the account
    assert main(["report", str(out), "--out", str(tmp_path / "dir.html")]) == 0
    assert (
        main(["report", "reported", "--region", "us-east-1", "--out", str(tmp_path / "id.html")])
        == 0
    )
    # and for a run the account does not know
    assert (
        main(["report", "nobody", "--region", "us-east-1", "--out", str(tmp_path / "x.html")]) == 2
    )

    # Then both pages are written and name the run and its status
    for name in ("dir.html", "id.html"):
        text = (tmp_path / name).read_text()
        assert "Run reported" in text and "SUCCEEDED" in text
    printed = capsys.readouterr().out
    assert "run nobody has no Training execution" in printed
    assert not (tmp_path / "x.html").exists()


def _region(b: Any, selector: str) -> dict[str, float]:
    """An element's box in page coordinates."""
    box: dict[str, float] = b.evaluate(
        f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
        ".getBoundingClientRect(); return {x: r.x + scrollX, y: r.y + scrollY, "
        "width: r.width, height: r.height}; })()"
    )
    return box


def _ink(pixels: Any, box: dict[str, float]) -> float:
    """The share of the box's pixels that are not white."""
    x, y = int(box["x"]), int(box["y"])
    crop = pixels[y : y + int(box["height"]), x : x + int(box["width"]), :3]
    return float((crop.min(axis=2) < 0.9).mean())


def test_the_report_opens_offline_in_chromium_with_the_curves_and_the_graphs(
    trained: tuple[LocalRun, Path], tmp_path: Path
) -> None:
    from matplotlib.image import imread  # decodes the screenshot (a PNG) into an array

    # Given the page `stepnet local` wrote
    run, _ = trained
    assert run.report is not None
    machines = definitions()

    # When a real headless chromium opens it from disk and takes a screenshot of the whole page
    with browser(1280, 900) as b:
        page = b.load(run.report.resolve().as_uri())
        dom = b.evaluate(
            """(() => ({
              points: Object.fromEntries([...document.querySelectorAll('svg.chart polyline')]
                .map(p => [p.closest('svg').dataset.chart + ':' + p.dataset.series,
                           p.points.numberOfItems])),
              graphs: Object.fromEntries([...document.querySelectorAll('svg.graph')]
                .map(g => [g.dataset.machine, [...g.querySelectorAll('g.state')]
                  .map(s => s.dataset.state)])),
              edges: document.querySelectorAll('svg.graph path.edge').length,
              rows: document.querySelectorAll('#epochs tbody tr').length,
              failure: document.querySelector('#failure') !== null,
            }))()"""
        )
        boxes = {
            "loss": _region(b, 'svg.chart[data-chart="loss"]'),
            "Epoch": _region(b, 'svg.graph[data-machine="Epoch"]'),
            "Training": _region(b, 'svg.graph[data-machine="Training"]'),
        }
        shot = b.screenshot(tmp_path / "report.png")

    # Then it loaded with no console error and asked for nothing but itself
    assert page.errors == []
    assert page.requests == [run.report.resolve().as_uri()]
    # the curves have a point per epoch, the table a row per epoch
    assert dom["points"] == {
        "loss:train_loss": EPOCHS, "loss:val_loss": EPOCHS, "accuracy:val_accuracy": EPOCHS
    }  # fmt: skip
    assert dom["rows"] == EPOCHS and not dom["failure"]
    # each machine that ran is drawn with every state of its ASL, and edges between them
    for logical in ("Training", "Epoch"):
        assert sorted(dom["graphs"][logical]) == sorted(n for n, _ in states_of(machines[logical]))
    assert dom["edges"] > 0
    # and the screenshot shows them: ink in the chart's and the graphs' regions
    pixels = imread(shot)
    for name, box in boxes.items():
        assert box["width"] > 100 and box["height"] > 100, name
        assert _ink(pixels, box) > 0.03, name
