"""inference.output: the prediction CSV (bits kept) and the online JSON document."""

from __future__ import annotations

import csv
import io
import json

import numpy as np

from inference.model import Prediction
from inference.output import csv_bytes, csv_header, prediction_document
from inference.rows import JSON_NUMBER_BYTES, LAMBDA_SYNC_PAYLOAD_BYTES, online_limits

PROBABILITIES = np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]], dtype=np.float32) / np.float32(
    1.0001
)


def read(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode())))


def test_a_classification_csv_has_labels_then_one_probability_per_class() -> None:
    # Given
    prediction = Prediction(outputs=PROBABILITIES, classes=(3, 5, 9))

    # When
    lines = read(csv_bytes(prediction))

    # Then
    assert lines[0] == ["prediction", "p_3", "p_5", "p_9"]
    assert [line[0] for line in lines[1:]] == ["5", "3"]
    written = np.array([[np.float32(v) for v in line[1:]] for line in lines[1:]])
    assert written.dtype == np.float32 and np.array_equal(written, PROBABILITIES)


def test_a_regression_csv_has_one_column_per_output_and_keeps_every_bit() -> None:
    # Given values whose shortest float32 spelling differs from their float64 one
    outputs = np.array([[1 / 3, -1e-30], [3.4e38, 0.0]], dtype=np.float32)
    prediction = Prediction(outputs=outputs, classes=None)

    # When
    lines = read(csv_bytes(prediction))

    # Then
    assert lines[0] == ["y0", "y1"]
    assert lines[1][0] == "0.33333334"
    assert np.array_equal(np.array(lines[1:], dtype=np.float32), outputs)


def test_batch_files_carry_the_run_and_model_version_on_every_line() -> None:
    # Given
    prediction = Prediction(outputs=PROBABILITIES, classes=(0, 1, 2))

    # When
    lines = read(csv_bytes(prediction, ("digits-7", 1250)))

    # Then
    assert csv_header(prediction, ("digits-7", 1250))[-2:] == ["run_id", "model_version"]
    assert lines[0][-2:] == ["run_id", "model_version"]
    assert all(line[-2:] == ["digits-7", "1250"] for line in lines[1:])


def test_labels_with_commas_are_quoted() -> None:
    # Given
    prediction = Prediction(outputs=PROBABILITIES[:, :2], classes=("a,b", 'say "hi"'))

    # When
    lines = read(csv_bytes(prediction))

    # Then
    assert lines[0] == ["prediction", "p_a,b", 'p_say "hi"']
    assert lines[1][0] == 'say "hi"'


def test_the_json_document_holds_exact_values_and_the_model_version() -> None:
    # Given
    classified = Prediction(outputs=PROBABILITIES, classes=(3, 5, 9))
    regressed = Prediction(outputs=PROBABILITIES[:, :2], classes=None)

    # When
    classification = json.loads(
        json.dumps(prediction_document(classified, pipeline="p", run_id="r", version=4))
    )
    regression = prediction_document(regressed, pipeline="p", run_id="r", version=4)

    # Then
    assert classification["predictions"] == [5, 3]
    assert classification["classes"] == [3, 5, 9]
    assert np.array_equal(np.array(classification["probabilities"], np.float32), PROBABILITIES)
    assert (
        classification["pipeline"],
        classification["run_id"],
        classification["model_version"],
    ) == ("p", "r", 4)
    assert set(regression) == {"pipeline", "run_id", "model_version", "outputs"}


def test_the_largest_online_response_fits_lambda_s_6_mb() -> None:
    # Given the most rows one request may have, each output as long as JSON writes a float32
    rows = online_limits().max_rows(n_features=1, n_outputs=10)
    outputs = np.full((rows, 10), -1.2345678e-05, dtype=np.float32)
    classified = Prediction(outputs=outputs, classes=tuple(range(10)))
    regressed = Prediction(outputs=outputs, classes=None)

    # When
    sizes = [
        len(json.dumps(prediction_document(p, pipeline="p" * 64, run_id="r" * 40, version=10**9)))
        for p in (classified, regressed)
    ]

    # Then
    assert len(json.dumps(float(outputs[0, 0]))) + 2 <= JSON_NUMBER_BYTES
    assert max(sizes) < LAMBDA_SYNC_PAYLOAD_BYTES
