"""Fixtures for tests that need the AWS account: moto's in-memory DynamoDB and S3.

``aws`` stands up the store's tables and bucket exactly as the local engine does (through
``stepnet.engine.provision``) and sets the environment variables the handlers read;
``store`` is a :class:`trainer.store.Store` on top of it.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from stepnet.engine.provision import create_tables_and_bucket
from trainer.contract import names
from trainer.contract.environment import FunctionEnvironment
from trainer.store import Store

REGION = "us-east-1"


@dataclass(frozen=True)
class AwsAccount:
    """Low-level clients of the mocked account and the names of what it holds."""

    dynamodb: Any
    s3: Any
    runs_table: str
    tensors_table: str
    bucket: str
    region: str = REGION


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsAccount]:
    """A mocked AWS account with the runs table, the tensors table and the bucket created."""
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    prefix = names.DEFAULT_STACK_NAME
    account = {
        "runs_table": f"{prefix}-runs",
        "tensors_table": f"{prefix}-tensors",
        "bucket": f"{prefix}-test-bucket",
    }
    for name, value in FunctionEnvironment(**account).to_env().items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        s3 = boto3.client("s3", region_name=REGION)
        create_tables_and_bucket(dynamodb, s3, **account)
        yield AwsAccount(dynamodb=dynamodb, s3=s3, **account)


STORES = ("dynamodb", "home")  # the deployed store, and the local engine's (stepnet.home)


@pytest.fixture
def store(request: pytest.FixtureRequest, aws: AwsAccount, tmp_path: Path) -> Store:
    """A Store on the mocked account, with default limits and the real clock; or, for a test
    that asks only for a store (``pytest_generate_tests`` in the store's test folders), each
    implementation in turn: the same contract holds for both."""
    if getattr(request, "param", "dynamodb") == "home":
        from stepnet.home import open_home

        return open_home(tmp_path / "home", bucket=aws.bucket)
    return Store.from_clients(
        aws.dynamodb,
        aws.s3,
        runs_table=aws.runs_table,
        tensors_table=aws.tensors_table,
        bucket=aws.bucket,
    )


def each_store(metafunc: pytest.Metafunc) -> None:
    """Run a test that uses only the ``store`` (not the account behind it) on every store."""
    parameters = inspect.signature(metafunc.function).parameters
    if "store" in parameters and not {"aws", "handler_env"} & set(parameters):
        metafunc.parametrize("store", STORES, indirect=True)


@pytest.fixture
def handler_env(aws: AwsAccount) -> Iterator[AwsAccount]:
    """The mocked account for tests that invoke handlers: the handlers' store
    (``trainer.settings.store()``, with its cached configs and tensors) is dropped before and
    after the test, so no test sees another test's clients or records."""
    from trainer import settings

    settings.install(None)
    yield aws
    settings.install(None)
