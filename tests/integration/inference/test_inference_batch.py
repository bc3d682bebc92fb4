"""inference.handlers.batch: an S3 upload under inference/<pipeline>/in/ becomes a predictions
file under out/, or an error file beside it; never a partial file, never a raise for bad input."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import numpy as np
import pytest

from inference.handlers import batch
from trainer.data.readers import read_dataset
from trainer.data.sources import read_builtin

Forward = Any  # conftest's forward fixture: (model folder, X) -> the model's own forward pass
Promote = Any  # conftest's promote fixture: (pipeline, model folder) -> its pointer


def upload(account: Any, key: str, body: bytes) -> dict[str, Any]:
    """Put the object and return the S3 ObjectCreated event Lambda would get for it."""
    account.s3.put_object(Bucket=account.bucket, Key=key, Body=body)
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": account.bucket},
                    "object": {"key": quote_plus(key), "size": len(body)},
                },
            }
        ]
    }


def keys(account: Any, prefix: str) -> list[str]:
    listing = account.s3.list_objects_v2(Bucket=account.bucket, Prefix=prefix)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def read(account: Any, key: str) -> bytes:
    body: bytes = account.s3.get_object(Bucket=account.bucket, Key=key)["Body"].read()
    return body


def csv_text(X: np.ndarray) -> bytes:
    lines = [",".join(f"f{j}" for j in range(X.shape[1]))]
    lines += [",".join(repr(float(v)) for v in row) for row in X]
    return ("\n".join(lines) + "\n").encode()


def npz_bytes(X: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, X=X)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    X, _ = read_dataset(*read_builtin("builtin:digits"), None)
    return X


@pytest.mark.parametrize(("name", "encode"), [("day 1.csv", csv_text), ("day1.npz", npz_bytes)])
def test_an_upload_gets_its_predictions_exactly(
    container: Any,
    promote: Promote,
    classifier_dir: Path,
    forward: Forward,
    digits: np.ndarray,
    name: str,
    encode: Any,
) -> None:
    # Given
    production = promote("digits", classifier_dir)
    X = digits[:500]

    # When
    result = batch(upload(container, f"inference/digits/in/{name}", encode(X)))

    # Then
    output = f"inference/digits/out/{name.rsplit('.', 1)[0]}.csv"
    assert result["results"] == [
        {
            "input": f"inference/digits/in/{name}",
            "output": output,
            "rows": 500,
            "run_id": production.run_id,
            "model_version": production.version,
        }
    ]
    assert keys(container, "inference/digits/out/") == [output]
    lines = list(csv.reader(io.StringIO(read(container, output).decode())))
    expected = forward(classifier_dir, X)
    assert lines[0] == ["prediction", *(f"p_{c}" for c in range(10)), "run_id", "model_version"]
    assert len(lines) == 501
    assert [int(line[0]) for line in lines[1:]] == np.argmax(expected, axis=1).tolist()
    assert np.array_equal(np.array([line[1:11] for line in lines[1:]], dtype=np.float32), expected)
    assert {tuple(line[11:]) for line in lines[1:]} == {
        (production.run_id, str(production.version))
    }
    metadata = container.s3.head_object(Bucket=container.bucket, Key=output)["Metadata"]
    assert metadata == {"run-id": production.run_id, "model-version": str(production.version)}


def test_a_regression_upload_gets_one_column_per_output(
    container: Any, promote: Promote, regressor_dir: Path, forward: Forward
) -> None:
    # Given
    promote("regress", regressor_dir)
    X = np.random.default_rng(1).normal(size=(50, 5)).astype(np.float32)

    # When
    batch(upload(container, "inference/regress/in/x.npz", npz_bytes(X)))

    # Then
    lines = list(csv.reader(io.StringIO(read(container, "inference/regress/out/x.csv").decode())))
    assert lines[0] == ["y0", "y1", "run_id", "model_version"]
    outputs = np.array([line[:2] for line in lines[1:]], dtype=np.float32)
    assert np.array_equal(outputs, forward(regressor_dir, X))


def error_of(account: Any, key: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(read(account, key))
    return document


@pytest.mark.parametrize(
    ("name", "body", "reason"),
    [
        ("empty.csv", b"", "empty"),
        ("narrow.csv", b"a,b\n1,2\n", "header has 2 columns but the model takes 64"),
        (
            "text.csv",
            b"<header>\n" + b"1," * 63 + b"one\n",
            "row 1 (line 2), column 64 ('f63') is 'one'",
        ),
        (
            "short.csv",
            b"<header>\n" + b"1," * 63 + b"1\n" + b"1," * 62 + b"1\n",
            "row 2 (line 3) has 63 fields",
        ),
        ("nan.csv", b"<header>\n" + b"1," * 63 + b"nan\n", "column 64 ('f63') is NaN"),
        ("header-only.csv", b"<header>\n", "no rows"),
        ("wrong.npz", npz_bytes(np.zeros((3, 8))), "X has shape (3, 8)"),
        ("notes.txt", b"hello", "neither a .csv nor an .npz"),
    ],
)
def test_bad_input_gets_an_error_file_and_no_output(
    container: Any, promote: Promote, classifier_dir: Path, name: str, body: bytes, reason: str
) -> None:
    # Given
    promote("digits", classifier_dir)
    header = ",".join(f"f{j}" for j in range(64)).encode()
    key = f"inference/digits/in/{name}"

    # When
    result = batch(upload(container, key, body.replace(b"<header>", header)))

    # Then
    stem = name.removesuffix(".csv").removesuffix(".npz")
    error_key = f"inference/digits/out/{stem}.error.json"
    assert keys(container, "inference/digits/out/") == [error_key]
    document = error_of(container, error_key)
    assert document["input"] == key and document["status"] == 400
    assert reason in document["error"]
    assert result["results"][0]["error_file"] == error_key


def test_a_file_too_large_for_the_memory_is_refused_before_it_is_read(
    container: Any, promote: Promote, classifier_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a 128 MB function: a 32 MiB file at most, 4 M input numbers (65,536 rows of 64)
    from inference import handlers

    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
    handlers.reset()
    promote("digits", classifier_dir)
    event = upload(container, "inference/digits/in/big.csv", b"a,b\n")
    event["Records"][0]["s3"]["object"]["size"] = 40 * 2**20  # what the event says it has

    # When
    batch(event)

    # Then
    document = error_of(container, "inference/digits/out/big.error.json")
    assert "too large for one invocation: the file has 41,943,040 bytes" in document["error"]
    assert "split it into files of fewer rows" in document["error"]


def test_a_pipeline_without_a_model_gets_an_error_file(container: Any) -> None:
    # When
    result = batch(upload(container, "inference/nobody/in/a.csv", b"a\n1\n"))

    # Then
    document = error_of(container, "inference/nobody/out/a.error.json")
    assert document["status"] == 404 and "no production model" in document["error"]
    assert "error" in result["results"][0]


def test_a_new_result_replaces_the_other_file_of_the_pair(
    container: Any, promote: Promote, classifier_dir: Path, digits: np.ndarray
) -> None:
    # Given a good upload, then a bad one under the same name, then a good one again
    promote("digits", classifier_dir)
    key = "inference/digits/in/daily.csv"
    out = "inference/digits/out/"

    # When / Then
    batch(upload(container, key, csv_text(digits[:3])))
    assert keys(container, out) == [out + "daily.csv"]
    batch(upload(container, key, b"a,b\n1,2\n"))
    assert keys(container, out) == [out + "daily.error.json"]
    batch(upload(container, key, csv_text(digits[:3])))
    assert keys(container, out) == [out + "daily.csv"]


def test_keys_outside_the_input_prefix_are_skipped(
    container: Any, promote: Promote, classifier_dir: Path
) -> None:
    # Given
    promote("digits", classifier_dir)

    # When: e.g. a trigger configured too widely sees the function's own output
    result = batch(upload(container, "inference/digits/out/a.csv", b"prediction\n1\n"))

    # Then
    assert result["results"][0]["skipped"]
    assert keys(container, "inference/digits/out/") == ["inference/digits/out/a.csv"]


def test_several_records_are_each_answered(
    container: Any, promote: Promote, classifier_dir: Path, digits: np.ndarray
) -> None:
    # Given
    promote("digits", classifier_dir)
    good = upload(container, "inference/digits/in/good.csv", csv_text(digits[:2]))
    bad = upload(container, "inference/digits/in/bad.csv", b"")

    # When
    result = batch({"Records": good["Records"] + bad["Records"]})

    # Then
    assert [("output" in r, "error" in r) for r in result["results"]] == [
        (True, False),
        (False, True),
    ]
    assert keys(container, "inference/digits/out/") == [
        "inference/digits/out/bad.error.json",
        "inference/digits/out/good.csv",
    ]
