"""``stepnet predict``: a model trained by ``stepnet reference`` predicts files exactly as its
own forward pass does; bad inputs are errors that name the problem and leave no file."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stepnet.cli import main

Forward = Any  # conftest's forward fixture: (model folder, X) -> the model's own forward pass

TINY: dict[str, Any] = {
    "run_id": "tiny-predict",
    "dataset": {"source": "builtin:digits"},
    "model": {
        "layers": [{"units": 8, "activation": "relu"}, {"units": 10, "activation": "softmax"}]
    },
    "loss": "cross_entropy",
    "optimizer": {"name": "adam", "learning_rate": 0.01},
    "epochs": 1,
    "batch_size": 128,
}


def write_csv(path: Path, X: np.ndarray) -> Path:
    lines = [",".join(f"pixel{j}" for j in range(X.shape[1]))]
    lines += [",".join(repr(float(v)) for v in row) for row in X]
    path.write_text("\n".join(lines) + "\n")
    return path


def read_predictions(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open() as file:
        lines = list(csv.reader(file))
    return lines[0], lines[1:]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny")
    config = folder / "tiny.json"
    config.write_text(json.dumps(TINY))
    assert main(["reference", str(config), "--out", str(folder / "model")]) == 0
    return folder / "model"


@pytest.mark.parametrize("suffix", [".csv", ".npz"])
def test_stepnet_predict_equals_the_forward_pass(
    tmp_path: Path, tiny_model: Path, digits_rows: np.ndarray, forward: Forward, suffix: str
) -> None:
    # Given
    X = digits_rows[:300]
    if suffix == ".csv":
        rows = write_csv(tmp_path / "rows.csv", X)
    else:
        rows = tmp_path / "rows.npz"
        np.savez(rows, X=X)
    out = tmp_path / "predictions" / "out.csv"

    # When
    code = main(["predict", str(tiny_model), str(rows), "--out", str(out)])

    # Then
    assert code == 0
    header, lines = read_predictions(out)
    expected = forward(tiny_model, X)
    assert header == ["prediction", *(f"p_{c}" for c in range(10))]
    assert [int(line[0]) for line in lines] == np.argmax(expected, axis=1).tolist()
    assert np.array_equal(np.array([line[1:] for line in lines], dtype=np.float32), expected)
    assert [p.name for p in out.parent.iterdir()] == ["out.csv"]  # no temporary file left


def test_a_regression_model_writes_one_column_per_output(
    tmp_path: Path,
    regressor_dir: Path,
    regression_rows: tuple[np.ndarray, np.ndarray],
    forward: Forward,
) -> None:
    # Given
    X, _ = regression_rows
    rows = write_csv(tmp_path / "rows.csv", X)

    # When
    code = main(["predict", str(regressor_dir), str(rows), "--out", str(tmp_path / "out.csv")])

    # Then
    header, lines = read_predictions(tmp_path / "out.csv")
    assert code == 0 and header == ["y0", "y1"]
    assert np.array_equal(np.array(lines, dtype=np.float32), forward(regressor_dir, X))


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("a,b\n1,2\n", "header has 2 columns but the model takes 64"),
        ("<64 columns>\n" + ",".join(["1"] * 63) + ",x\n", "column 64 ('pixel63') is 'x'"),
        ("missing.csv", "cannot read"),
    ],
)
def test_bad_inputs_are_errors_and_leave_no_file(
    tmp_path: Path,
    tiny_model: Path,
    rows: str,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given
    path = tmp_path / "rows.csv"
    if rows != "missing.csv":
        header = ",".join(f"pixel{j}" for j in range(64))
        path.write_text(rows.replace("<64 columns>", header))
    out = tmp_path / "out.csv"

    # When
    code = main(["predict", str(tiny_model), str(path), "--out", str(out)])

    # Then
    assert code == 2
    assert message in capsys.readouterr().out.replace("\n", "")
    assert not out.exists()


def test_a_source_that_is_neither_a_folder_nor_a_run_id_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # When
    code = main(["predict", "no/such/folder", "x.csv", "--out", str(tmp_path / "o.csv")])

    # Then
    assert code == 2
    assert "neither a folder nor a run id" in capsys.readouterr().out
