"""The EMF checker (tests/support/emf.py) accepts the specification's example and names what is
wrong with a broken document, so that a test relying on it can fail."""

import json

import pytest
from support import emf

VALID = {
    "_aws": {
        "Timestamp": 1574109732004,
        "CloudWatchMetrics": [
            {
                "Namespace": "lambda-function-metrics",
                "Dimensions": [["functionVersion"]],
                "Metrics": [{"Name": "time", "Unit": "Milliseconds", "StorageResolution": 60}],
            }
        ],
    },
    "functionVersion": "$LATEST",
    "time": 100,
    "requestId": "989ffbf8-9ace-4817-a57c-e4dd734019ee",
}


def test_the_specification_s_example_is_valid() -> None:
    assert emf.problems(json.dumps(VALID)) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d.pop("functionVersion"), "dimension 'functionVersion'"),
        (lambda d: d.update(time="fast"), "time must be a root member"),
        (lambda d: d["_aws"].pop("Timestamp"), "Timestamp"),
        (
            lambda d: d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0].update(Unit="ms"),
            "not a CloudWatch unit",
        ),
        (lambda d: d["_aws"]["CloudWatchMetrics"][0].update(Namespace=""), "Namespace"),
    ],
)
def test_a_broken_document_is_refused_with_its_problem(change, problem: str) -> None:
    # Given
    document = json.loads(json.dumps(VALID))

    # When
    change(document)

    # Then
    assert any(problem in p for p in emf.problems(json.dumps(document)))
