"""Runs side by side on one account stay apart, and a run id that exists is never started again:
the existing run is refused with a message and left as it is."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from stepnet.client import StepnetClient
from stepnet.reference import train
from tests.engine.conftest import digits_config, each_store, load_weights, max_weight_difference
from trainer.config import parse_config
from trainer.executions import ExecutionExistsError

pytestmark = pytest.mark.engine


def _client(account) -> StepnetClient:
    return account.stepnet_client()


def _execution(client: StepnetClient, run_id: str) -> dict[str, object]:
    """The run's execution as described (without the request's own metadata)."""
    return {k: v for k, v in client.describe(run_id).items() if k != "ResponseMetadata"}


@each_store
def test_two_runs_at_once_each_train_as_alone(account, tmp_path: Path) -> None:
    # Given two configs that differ in their seed, started one right after the other
    client = _client(account)
    configs = [
        parse_config(digits_config(run_id=f"side-{s}", seed=s, epochs=2, mode="fused"))
        for s in (1, 2)
    ]
    uploaded = [client.upload_dataset(c) for c in configs]

    # When both run at once
    for config in uploaded:
        client.start(config)
    ended: dict[str, str] = {}
    watchers = [
        threading.Thread(
            target=lambda run_id=c.run_id: ended.__setitem__(
                run_id, client.watch(run_id, poll_seconds=0.2)["status"]
            )
        )
        for c in uploaded
    ]
    for watcher in watchers:
        watcher.start()
    for watcher in watchers:
        watcher.join()

    # Then each succeeded with its own metrics and the weights it would have alone
    assert ended == {"side-1": "SUCCEEDED", "side-2": "SUCCEEDED"}
    for config in configs:
        assert [row["epoch"] for row in client.metrics(config.run_id)] == [1, 2]
        client.fetch(config.run_id, tmp_path / config.run_id)
        model = load_weights(tmp_path / config.run_id / "model.npz")
        assert max_weight_difference(train(config).params, model) == 0.0


@each_store
def test_a_run_id_that_exists_is_refused_and_the_run_left_as_it_is(account, tmp_path: Path) -> None:
    # Given a run that has finished
    client = _client(account)
    config = client.upload_dataset(parse_config(digits_config(run_id="taken", epochs=1)))
    client.start(config)
    assert client.watch("taken", poll_seconds=0.2)["status"] == "SUCCEEDED"
    before = (_execution(client, "taken"), client.metrics("taken"))
    client.fetch("taken", tmp_path / "before")

    # When it is started again, as it was and with another config
    refusals = []
    for again in (config, config.model_copy(update={"epochs": 3})):
        with pytest.raises(ExecutionExistsError) as refused:
            client.start(again)
        refusals.append(str(refused.value))

    # Then each start is refused naming the run, its status and what to do
    for message in refusals:
        assert "a run with id 'taken' exists already (SUCCEEDED)" in message
        assert "stepnet watch taken" in message
    # and nothing of the run changed: its execution, metrics and model
    assert (_execution(client, "taken"), client.metrics("taken")) == before
    client.fetch("taken", tmp_path / "after")
    assert (tmp_path / "after" / "model.npz").read_bytes() == (
        tmp_path / "before" / "model.npz"
    ).read_bytes()
