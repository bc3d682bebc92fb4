"""StoreCharges: the one rule book the meter and the dry run charge store calls by."""

from __future__ import annotations

from stepnet.billing.rules import inline_item_bytes, item_bytes, read_units, write_units
from stepnet.billing.usage import FunctionUsage, StoreCharges, StoreUsage, Usage
from trainer.store import runs
from trainer.store.tensors import tensor_item

KEY = "run/weights/v000001/layer1"


def test_a_tensor_write_is_one_put_and_a_spilled_one_an_s3_put_too() -> None:
    # Given an inline and a spilled bundle's items
    charges, usage = StoreCharges(), StoreUsage()
    inline = tensor_item(KEY, 3000, spilled=False, expires_at=None, payload=bytes(3000))
    spilled = tensor_item("run/data/train", 90_000, spilled=True, expires_at=None)

    # When both are written
    charges.tensor_put(usage, KEY, inline, encoded=3000, spilled=False)
    charges.tensor_put(usage, "run/data/train", spilled, encoded=90_000, spilled=True)

    # Then: two PutItems by their items' sizes, one S3 PUT, every encoded byte
    assert (usage.ddb_writes, usage.s3_puts, usage.bytes_written) == (2, 1, 93_000)
    assert usage.wru == write_units(item_bytes(inline)) + write_units(item_bytes(spilled))
    assert usage.seed_wru == write_units(item_bytes(inline)) + write_units(
        inline_item_bytes(spilled, 90_000)
    )


def test_reads_are_charged_cold_by_the_items_written() -> None:
    # Given two bundles written, one spilled
    charges, written, read = StoreCharges(), StoreUsage(), StoreUsage()
    inline = tensor_item(KEY, 9000, spilled=False, expires_at=None, payload=bytes(9000))
    spilled = tensor_item("run/data/val", 50_000, spilled=True, expires_at=None)
    charges.tensor_put(written, KEY, inline, encoded=9000, spilled=False)
    charges.tensor_put(written, "run/data/val", spilled, encoded=50_000, spilled=True)

    # When one is read alone, then both in a batch (duplicates asked for once), then a stranger
    charges.tensor_get(read, [KEY], batch=False)
    charges.tensor_get(read, [KEY, "run/data/val", KEY], batch=True)
    charges.tensor_get(read, ["run/never/written"], batch=False)

    # Then: 3 requests; the RRU of each item; the spilled bundle's S3 GET; the minimum for the
    # stranger
    assert read.ddb_reads == 3
    per_inline, per_spilled = read_units(item_bytes(inline)), read_units(item_bytes(spilled))
    assert read.rru == 2 * per_inline + per_spilled + 1
    assert (read.s3_gets, read.bytes_read) == (1, 2 * 9000 + 50_000)


def test_a_batch_read_takes_one_request_per_hundred_keys() -> None:
    # Given 250 distinct keys
    charges, usage = StoreCharges(), StoreUsage()

    # When read in one get_many, Then three BatchGetItem requests
    charges.tensor_get(usage, [f"run/k{i}" for i in range(250)], batch=True)
    assert usage.ddb_reads == 3


def test_records_and_objects_are_charged_as_sent() -> None:
    # Given a run's records and an exported object
    charges, usage = StoreCharges(), StoreUsage()
    now = runs.timestamp(0.0)
    config = runs.config_item("r", '{"run_id":"r"}', now)
    epochs = [runs.epoch_item("r", e, {"train_loss": 0.5}, now) for e in (1, 2)]

    # When written, read (the config apart), queried and exported
    charges.record_put(usage, config)
    charges.record_get(usage, config, config=True)
    charges.record_get(usage, None)
    charges.record_query(usage, epochs)
    charges.object_put(usage, 1234)
    charges.object_get(usage, 99)

    # Then every request is counted once, the config read apart, a missing record 1 RRU
    assert (usage.ddb_writes, usage.wru) == (1, 1)
    assert (usage.config_reads, usage.config_rru) == (1, 1)
    assert (usage.ddb_reads, usage.rru) == (2, 1 + 1)
    assert (usage.s3_puts, usage.bytes_written, usage.s3_gets, usage.bytes_read) == (1, 1234, 1, 99)


def test_usage_adds_and_scales_per_function() -> None:
    # Given two usages of the same function
    one = Usage(transitions=3, functions={"Plan": FunctionUsage(1, 10, StoreUsage(ddb_writes=2))})
    two = Usage(transitions=1, functions={"Plan": FunctionUsage(1, 10, StoreUsage(ddb_writes=1))})

    # When added and scaled, Then per field
    total = (one + two).scaled(0.5)
    assert total.transitions == 2
    assert total.store.ddb_writes == 1.5
    assert total.functions["Plan"].invocations == 1 and total.functions["Plan"].billed_ms == 10
