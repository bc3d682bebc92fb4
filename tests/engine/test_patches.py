"""The moto patches the local engine stands on: pinned, and each one checked for its effect, so
that an upgrade which breaks one fails here, loudly, rather than somewhere in a training run."""

from __future__ import annotations

import contextlib
import gc
import json
import re
import threading
import time
from pathlib import Path

import moto
import pytest
import werkzeug.wrappers
from moto.stepfunctions.parser.asl.utils import json_path

from stepnet.engine import bodies, patches

pytestmark = pytest.mark.engine
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_the_installed_moto_is_the_one_the_patches_were_written_for() -> None:
    # Given / When / Then: no error for the pinned version
    patches.check_version()


@pytest.mark.parametrize("version", ["5.2.4", "5.3.0", "6.0.0"])
def test_another_moto_version_is_refused(monkeypatch, version: str) -> None:
    # Given
    monkeypatch.setattr(moto, "__version__", version)

    # When / Then
    with pytest.raises(
        patches.EngineCompatibilityError, match=re.escape("re-verify stepnet/engine/patches.py")
    ):
        patches.check_version()


def test_the_dependency_pin_matches_the_supported_range() -> None:
    # Given the moto requirement in pyproject.toml
    pin = re.search(r'"moto\[[^\]]*\]>=([\d.]+),<([\d.]+)"', PYPROJECT.read_text())
    assert pin is not None

    # Then it is exactly the range the patches support
    low, high = patches.SUPPORTED_MOTO
    assert pin.group(1) == ".".join(map(str, low))
    assert pin.group(2) == ".".join(map(str, high[:2]))


def test_json_paths_are_parsed_once(account) -> None:
    # Given the patched parser
    parse = json_path.parse
    before = parse.cache_info().hits

    # When the same path is evaluated twice
    json_path.extract_json("$.cursor.version", {"cursor": {"version": 3}})
    value = json_path.extract_json("$.cursor.version", {"cursor": {"version": 4}})

    # Then the second evaluation reused the parse, and the value is right
    assert value == 4
    assert parse.cache_info().hits > before


def test_a_nested_sync2_execution_returns_its_parsed_output(account) -> None:
    # Given a parent that starts a child with startExecution.sync:2 (moto 5.2.5 fails this
    # without the patch: PascalCase parameters reach botocore)
    sfn = account.client("stepfunctions")
    role = "arn:aws:iam::123456789012:role/stepnet-local"
    child = sfn.create_state_machine(
        name="patch-child",
        roleArn=role,
        definition=json.dumps(
            {
                "StartAt": "Echo",
                "States": {"Echo": {"Type": "Pass", "Result": {"ok": 1}, "End": True}},
            }
        ),
    )["stateMachineArn"]
    parent = sfn.create_state_machine(
        name="patch-parent",
        roleArn=role,
        definition=json.dumps(
            {
                "StartAt": "Start child",
                "States": {
                    "Start child": {
                        "Type": "Task",
                        "Resource": "arn:aws:states:::states:startExecution.sync:2",
                        "Parameters": {
                            "StateMachineArn": child,
                            "Name": "patch-child-1",
                            "Input": {},
                        },
                        "ResultSelector": {"ok.$": "$.Output.ok", "arn.$": "$.ExecutionArn"},
                        "End": True,
                    }
                },
            }
        ),
    )["stateMachineArn"]

    # When
    arn = sfn.start_execution(stateMachineArn=parent, input="{}")["executionArn"]
    while (description := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        time.sleep(0.05)

    # Then the child ran under its name and its output came back parsed, PascalCase keys
    assert description["status"] == "SUCCEEDED", description
    output = json.loads(description["output"])
    assert output["ok"] == 1
    assert output["arn"].endswith(":execution:patch-child:patch-child-1")


def test_lambda_invocations_run_in_process_through_the_lambda_api(account) -> None:
    # Given the emulated account's Plan function, called through the Lambda API itself
    lambda_ = account.client("lambda")

    # When it is invoked with an event it must reject
    response = lambda_.invoke(FunctionName="stepnet-Plan", Payload=b'{"run_id": "x"}')

    # Then the handler ran here and reported its error the way Lambda does
    assert response["FunctionError"] in {"Handled", "Unhandled"}  # moto's API says "Handled"
    payload = json.loads(response["Payload"].read())
    assert payload["errorType"] == "ValidationError"
    assert "epoch" in payload["errorMessage"]


def test_a_ranged_get_reads_only_its_range(account, monkeypatch) -> None:
    # Given an object of 8 MB (spooled to disk by moto) in the account's bucket
    s3 = account.client("s3")
    bucket = account.resources.bucket
    data = bytes(range(256)) * (8 * 4096)
    s3.put_object(Bucket=bucket, Key="datasets/ranged.bin", Body=data)
    whole_reads = []
    value = vars(patches.s3_models.FakeKey)["value"]

    def counting(key):
        if patches._RANGE.get() is None:
            whole_reads.append(key.name)
        return value.fget(key)

    monkeypatch.setattr(patches.s3_models.FakeKey, "value", property(counting, value.fset))

    # When ranges are read, and the whole object
    got = [
        s3.get_object(Bucket=bucket, Key="datasets/ranged.bin", Range=f"bytes={a}-{b}")
        for a, b in ((0, 0), (1000, 5095), (len(data) - 10, len(data) + 100))
    ]
    whole = s3.get_object(Bucket=bucket, Key="datasets/ranged.bin")["Body"].read()

    # Then each range is its bytes (the last clipped to the object), read without the rest
    assert [g["Body"].read() for g in got] == [data[:1], data[1000:5096], data[-10:]]
    assert got[1]["ContentRange"] == f"bytes 1000-5095/{len(data)}"
    assert got[1]["ContentLength"] == 4096
    assert whole == data and whole_reads == ["datasets/ranged.bin"]
    assert patches.single_range("bytes=5-") is None  # open ranges are moto's own
    assert patches.single_range("bytes=5-9") == (5, 9)


def test_s3_notifications_invoke_their_function_asynchronously_and_retry_a_failure(
    account,
) -> None:
    # Given batch predictions held until released, and failing once (a transient S3 error, say)
    s3 = account.client("s3")
    bucket, function = account.resources.bucket, "stepnet-PredictBatch"
    release = threading.Event()
    threads: list[str] = []

    @contextlib.contextmanager
    def hold(name: str):
        if name == function:
            threads.append(threading.current_thread().name)
            release.wait(30)
        yield

    before = account.runtime.invocations[function]
    account.runtime.inject_fault(function, "Test.Transient", times=1)
    account.runtime.hooks.append(hold)
    try:
        # When a file is uploaded under inference/<pipeline>/in/
        started = time.monotonic()
        s3.put_object(Bucket=bucket, Key="inference/patched/in/a.csv", Body=b"x\n1\n")
        upload_seconds = time.monotonic() - started
        release.set()
        finished = patches.wait_for_notifications(timeout=30)
    finally:
        account.runtime.hooks.remove(hold)

    # Then the upload returned while the function was still held (an asynchronous invocation),
    # which ran in its own thread, failed once and was retried
    assert upload_seconds < 10
    assert finished
    assert threads and all(name.startswith("s3-notification-") for name in threads)
    assert account.runtime.invocations[function] - before == 2
    # and the retry did its work: the pipeline has no model, so an error file says so
    error = json.loads(
        s3.get_object(Bucket=bucket, Key="inference/patched/out/a.error.json")["Body"].read()
    )
    assert error["status"] == 404


def test_large_object_bodies_live_in_files_and_go_with_their_object(account) -> None:
    # Given the account's bucket
    s3 = account.client("s3")
    bucket = account.resources.bucket
    spilled = bodies.spill_directory()
    before = set(spilled.iterdir())
    large, small = b"w" * (bodies.MEMORY_BYTES + 1), b"s" * 100

    # When a large and a small object are written
    s3.put_object(Bucket=bucket, Key="tensors/large", Body=large)
    s3.put_object(Bucket=bucket, Key="tensors/small", Body=small)
    files = set(spilled.iterdir()) - before

    # Then only the large one has a file, both read back whole and by range
    assert len(files) == 1 and next(iter(files)).stat().st_size == len(large)
    assert s3.get_object(Bucket=bucket, Key="tensors/large")["Body"].read() == large
    ranged = s3.get_object(Bucket=bucket, Key="tensors/large", Range="bytes=10-19")
    assert ranged["Body"].read() == large[10:20]
    assert s3.get_object(Bucket=bucket, Key="tensors/small")["Body"].read() == small

    # And deleting the object removes its file
    s3.delete_object(Bucket=bucket, Key="tensors/large")
    assert set(spilled.iterdir()) - before == set()


def test_a_request_is_freed_once_answered(account) -> None:
    # Given the account's bucket, and the cyclic collector off (it would hide a cycle)
    s3 = account.client("s3")
    bucket = account.resources.bucket
    body = bytearray(b"b" * (2 * 2**20))
    gc.disable()
    try:
        # When an object is written and read (its body then referred to by nothing else)
        s3.put_object(Bucket=bucket, Key="datasets/freed.bin", Body=bytes(body))
        s3.get_object(Bucket=bucket, Key="datasets/freed.bin")["Body"].read()

        # Then no werkzeug request of moto's is left alive
        left = [o for o in gc.get_objects() if isinstance(o, werkzeug.wrappers.Request)]
    finally:
        gc.enable()
    assert left == []
