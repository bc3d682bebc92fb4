"""inference.handlers.online: POST /models/{pipeline}/predict on moto's S3."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference.handlers import online
from trainer.data.readers import read_dataset
from trainer.data.sources import read_builtin

Forward = Any  # conftest's forward fixture: (model folder, X) -> the model's own forward pass
Promote = Any  # conftest's promote fixture: (pipeline, model folder) -> its pointer


def request(pipeline: str, body: Any, *, raw: bool = False) -> dict[str, Any]:
    """An API Gateway (REST, proxy) event for POST /models/{pipeline}/predict."""
    return {
        "resource": "/models/{pipeline}/predict",
        "path": f"/models/{pipeline}/predict",
        "httpMethod": "POST",
        "pathParameters": {"pipeline": pipeline},
        "headers": {"Content-Type": "application/json"},
        "body": body if raw else json.dumps(body),
        "isBase64Encoded": False,
    }


def answer(response: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    assert response["headers"]["Content-Type"] == "application/json"
    return response["statusCode"], json.loads(response["body"])


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    X, _ = read_dataset(*read_builtin("builtin:digits"), None)
    return X


@pytest.mark.parametrize("n_rows", [1, 37])
def test_predictions_equal_the_forward_pass(
    promote: Promote, classifier_dir: Path, forward: Forward, digits: np.ndarray, n_rows: int
) -> None:
    # Given
    production = promote("digits", classifier_dir)
    X = digits[:n_rows]

    # When
    status, document = answer(online(request("digits", {"rows": X.tolist()})))

    # Then
    expected = forward(classifier_dir, X)
    assert status == 200
    assert (document["pipeline"], document["run_id"], document["model_version"]) == (
        "digits",
        production.run_id,
        production.version,
    )
    assert document["classes"] == list(range(10))
    assert np.array_equal(np.array(document["probabilities"], dtype=np.float32), expected)
    assert document["predictions"] == np.argmax(expected, axis=1).tolist()


def test_a_regression_answers_its_outputs(
    promote: Promote, regressor_dir: Path, forward: Forward
) -> None:
    # Given
    promote("regress", regressor_dir)
    X = np.random.default_rng(0).normal(size=(4, 5))

    # When
    status, document = answer(online(request("regress", {"rows": X.tolist()})))

    # Then
    assert status == 200 and "predictions" not in document
    assert np.array_equal(
        np.array(document["outputs"], dtype=np.float32), forward(regressor_dir, X)
    )


def test_a_base64_body_is_decoded(
    promote: Promote, classifier_dir: Path, digits: np.ndarray
) -> None:
    # Given
    promote("digits", classifier_dir)
    event = request("digits", {"rows": digits[:2].tolist()})
    event["body"] = base64.b64encode(event["body"].encode()).decode()
    event["isBase64Encoded"] = True

    # When
    status, _ = answer(online(event))

    # Then
    assert status == 200


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("", "body is empty"),
        ("{rows: 1}", "not valid JSON"),
        ({"instances": [[0] * 64]}, 'one key "rows"'),
        ({"rows": []}, "non-empty list"),
        ({"rows": [[0] * 63]}, "rows[0] has 63 values; the model takes 64 features"),
        ({"rows": [[0] * 63 + ["7"]]}, 'rows[0][63] is "7", not a number'),
        ('{"rows": [[' + "0," * 63 + "NaN]]}", "rows[0][63] is NaN"),
        ({"rows": [[0] * 64] * 18_182}, "18,182 rows of 64 features (at most 18,181 rows"),
        (
            {"rows": [[0.5] * 64] * 20_000},
            "request body has 6,440,010 bytes, more than 6,291,456; send fewer rows",
        ),
    ],
)
def test_bad_rows_get_a_400_with_the_reason(
    promote: Promote, classifier_dir: Path, body: Any, reason: str
) -> None:
    # Given
    promote("digits", classifier_dir)

    # When
    status, document = answer(online(request("digits", body, raw=isinstance(body, str))))

    # Then
    assert status == 400
    assert reason in document["error"]


def test_a_pipeline_without_a_production_model_is_404(container: Any) -> None:
    # When
    status, document = answer(online(request("nothing-here", {"rows": [[1.0]]})))

    # Then
    assert status == 404
    assert "no production model" in document["error"]


def test_an_invalid_pipeline_name_is_400(container: Any) -> None:
    # When
    status, document = answer(online(request("../runs", {"rows": [[1.0]]})))

    # Then
    assert status == 400 and "pipeline name" in document["error"]


def test_a_pointer_to_a_missing_model_is_500(container: Any) -> None:
    # Given
    container.s3.put_object(
        Bucket=container.bucket,
        Key="models/digits/production.json",
        Body=b'{"run_id": "never-ran", "version": 3}',
    )

    # When
    status, document = answer(online(request("digits", {"rows": [[1.0]]})))

    # Then
    assert status == 500 and "runs/never-ran/model/model.npz" in document["error"]


def test_a_promotion_is_noticed_by_a_warm_container(
    promote: Promote,
    classifier_dir: Path,
    second_classifier_dir: Path,
    forward: Forward,
    digits: np.ndarray,
) -> None:
    # Given a warm container serving the first model
    promote("digits", classifier_dir)
    body = {"rows": digits[:5].tolist()}
    _, before = answer(online(request("digits", body)))

    # When
    second = promote("digits", second_classifier_dir)
    _, after = answer(online(request("digits", body)))

    # Then
    assert before["run_id"] == "serve-digits"
    assert (after["run_id"], after["model_version"]) == (second.run_id, second.version)
    expected = forward(second_classifier_dir, digits[:5])
    assert np.array_equal(np.array(after["probabilities"], dtype=np.float32), expected)
