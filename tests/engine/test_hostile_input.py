"""Hostile input on the local engine, end to end: a CSV of formulas, quoted commas and unicode
fails the run with a DatasetError naming the shard, the row, the column and the cell; the run
leaves its failure (the execution's status and cause, its history, the report) and nothing else:
no run record, no tensor, no prepared shard, no model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stepnet.client import readable_cause
from stepnet.local import run_local
from tests.engine.conftest import digits_config
from trainer.config import parse_config

pytestmark = pytest.mark.engine

HOSTILE_CSV = (
    'pixel "a",b,label\n'
    '1,"2,5",0\n'  # a quoted comma (a decimal comma, not a number)
    "=1+2,3,1\n"  # a spreadsheet formula
    "4,\u4e2d,0\n"  # unicode
).encode()


def _items_of(account: Any, table: str, run_id: str) -> list[dict[str, Any]]:
    items = account.client("dynamodb").scan(TableName=table)["Items"]
    return [item for item in items if run_id in json.dumps(item)]


def test_a_hostile_csv_fails_the_run_by_row_and_column_writing_nothing_else(
    account: Any, tmp_path: Path
) -> None:
    # Given a CSV file whose cells are formulas, quoted commas and unicode
    path = tmp_path / "hostile.csv"
    path.write_bytes(HOSTILE_CSV)
    document = digits_config(run_id="hostile-csv", epochs=1)
    document["dataset"] = {"source": str(path)}
    document["model"]["layers"][-1]["units"] = 2

    # When it runs on the local engine
    run = run_local(parse_config(document), tmp_path / "out", account=account)

    # Then the run failed, its cause naming the shard, the first bad row and column and the cell
    assert run.description["status"] == "FAILED"
    cause = readable_cause(run.description)
    assert cause.startswith("DatasetError: dataset: shard s3://"), cause
    assert "hostile.csv: line 2 (data row 1), column 'b': '2,5' is not a number" in cause
    # and nothing of the run was stored: no record, no tensor, no object but the upload
    resources = account.resources
    assert _items_of(account, resources.runs_table, "hostile-csv") == []
    assert _items_of(account, resources.tensors_table, "hostile-csv") == []
    listed = account.client("s3").list_objects_v2(Bucket=resources.bucket).get("Contents", [])
    assert [o["Key"] for o in listed if not o["Key"].startswith("uploads/")] == []
    assert not (tmp_path / "out" / "model.npz").exists()
