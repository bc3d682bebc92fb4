"""Lambda's limits on the local engine: every invocation runs in a worker process held to its
function's memory and timeout, measured like Lambda's REPORT line, and failing as Lambda reports
it — first the runtime alone (handlers of tests/engine/sandbox_handlers.py), then whole runs,
sized with `stepnet local --function-memory/--function-timeout`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from stepnet.cli import main
from stepnet.client import readable_cause
from stepnet.datasets import synthetic_classification, write_npz
from stepnet.engine import LocalAccount, workers
from stepnet.engine.runtime import LambdaRuntime
from stepnet.engine.workers import SandboxSpec, blas_threads, sandbox_environment, visible_cpus
from stepnet.local import run_local
from tests.engine.conftest import digits_config
from trainer.config import parse_config
from trainer.contract.functions import FUNCTIONS
from trainer.training import memory

pytestmark = pytest.mark.engine

HANDLERS = "tests.engine.sandbox_handlers"
# name -> (handler, memory MB, timeout s)
TEST_FUNCTIONS = {
    "hold": ("hold", 256, 30),
    "roomy": ("hold", 1024, 30),
    "spike": ("spike", 256, 30),
    "sleep": ("sleep", 512, 1),
    "exit": ("exit_with", 512, 30),
    "fail": ("fail", 512, 30),
    "unserializable": ("unserializable", 512, 30),
    "missing": ("nowhere", 512, 30),
}


def _no_account(method: str, url: str, headers: Any, body: bytes) -> tuple[int, Any, bytes]:
    return 500, {}, b"these handlers call no AWS API"


@pytest.fixture(scope="module")
def runtime() -> Iterator[LambdaRuntime]:
    """A runtime of its own (no account: the handlers call no AWS API)."""
    runtime = LambdaRuntime(transport=_no_account)
    for name, (handler, memory_mb, timeout_s) in TEST_FUNCTIONS.items():
        module = HANDLERS if handler != "nowhere" else "tests.engine.no_such_module"
        runtime.register(
            name,
            f"{module}.{handler}",
            memory_mb=memory_mb,
            timeout_s=timeout_s,
            environment={"STEPNET_TEST_VARIABLE": "configured"},
            label=name.title(),
        )
    yield runtime
    runtime.close()


# --- the runtime alone -----------------------------------------------------------------------


def test_an_invocation_over_its_memory_is_killed_as_lambda_reports_it(runtime) -> None:
    # Given a 256 MB function

    # When an invocation touches 400 MB
    payload, error = runtime.invoke("hold", {"mb": 400})

    # Then Lambda's out-of-memory error comes back, naming the function, its memory and the use
    assert error == "Unhandled"
    assert payload["errorType"] == "Runtime.OutOfMemory"
    message = payload["errorMessage"]
    assert message.startswith("RequestId: ")
    assert "Error: Runtime exited with error: signal: killed." in message
    assert "function hold (Hold) ran out of memory" in message
    assert "> Memory Size 256 MB" in message
    used = int(message.split("Max Memory Used ")[1].split(" MB")[0])
    assert 256 < used <= 400 + 256


def test_a_killed_sandbox_is_replaced_by_a_cold_one(runtime) -> None:
    # Given a warm sandbox of the function
    first, error = runtime.invoke("hold", {})
    assert error is None

    # When it is killed over its memory, and the function is invoked again
    runtime.invoke("hold", {"mb": 400})
    second, error = runtime.invoke("hold", {})

    # Then the next invocation runs, in another process
    assert error is None
    assert second["pid"] != first["pid"]


def test_a_peak_between_two_watchdog_checks_fails_the_invocation_too(runtime, monkeypatch) -> None:
    # Given a watchdog that looks only once per minute
    monkeypatch.setattr(workers.watchdog, "period", 60.0)

    # When an invocation touches 400 MB of its 256 and frees them before it returns
    payload, error = runtime.invoke("spike", {"mb": 400})

    # Then its peak resident set (VmHWM) fails it: Lambda would have killed it
    assert error == "Unhandled"
    assert payload["errorType"] == "Runtime.OutOfMemory"
    assert "> Memory Size 256 MB" in payload["errorMessage"]


def test_an_invocation_past_its_timeout_is_stopped_as_lambda_reports_it(runtime) -> None:
    # Given a function with a 1 s timeout

    # When an invocation would take 5 s
    with runtime.recording() as recording:
        payload, error = runtime.invoke("sleep", {"seconds": 5})

    # Then Lambda's timeout error comes back, naming the function, its timeout and the duration
    assert error == "Unhandled"
    assert payload["errorType"] == "Sandbox.Timedout"
    message = payload["errorMessage"]
    assert "Error: Task timed out after 1.00 seconds." in message
    assert "function sleep (Sleep) was stopped at its timeout" in message
    assert ">= Timeout 1 s" in message
    # and it was stopped at the timeout, not when the handler would have ended
    assert 1.0 <= recording.functions()["sleep"].max_duration_s < 3.0


def test_usage_is_the_whole_sandbox_and_the_longest_invocation(runtime) -> None:
    # Given a 1024 MB function

    # When one invocation holds 100 MB and another nothing
    with runtime.recording() as recording:
        held, _ = runtime.invoke("roomy", {"mb": 100})
        runtime.invoke("roomy", {})

    # Then Max Memory Used counts the interpreter and imports too, and the data
    usage = recording.functions()["roomy"]
    assert (usage.invocations, usage.memory_mb, usage.timeout_s) == (2, 1024, 30)
    assert usage.max_memory_used_mb is not None
    assert 100 + 30 < usage.max_memory_used_mb < 100 + 400
    assert usage.max_duration_s is not None and 0 < usage.max_duration_s < 30
    # and the handler saw its configuration
    assert held["memory_limit_in_mb"] == 1024
    assert 0 < held["remaining_ms"] <= 30_000


def test_the_host_runs_a_few_invocations_at_once_and_the_wait_is_not_their_duration() -> None:
    # Given a host that runs 2 invocations at once, and a function with a 1 s timeout
    runtime = LambdaRuntime(transport=_no_account)
    runtime.host = workers.Host(running=2, idle=4)
    runtime.register("span", f"{HANDLERS}.span", memory_mb=512, timeout_s=1)
    try:
        # When 6 invocations of 0.4 s each are made at once (a Map's iterations)
        with ThreadPoolExecutor(6) as pool:
            outcomes = list(pool.map(lambda _: runtime.invoke("span", {"seconds": 0.4}), range(6)))
    finally:
        runtime.close()

    # Then all succeed, though the last started after more than their timeout, 2 at most at once
    assert [error for _, error in outcomes] == [None] * 6
    spans = sorted((payload["started"], payload["ended"]) for payload, _ in outcomes)
    overlapping = max(sum(s <= start < e for s, e in spans) for start, _ in spans)
    assert overlapping <= 2 and spans[-1][0] - spans[0][0] > 0.8


def test_the_host_keeps_a_few_idle_sandboxes_the_least_recently_used_stop_first() -> None:
    # Given a host that keeps 2 idle sandboxes, and 4 functions
    runtime = LambdaRuntime(transport=_no_account)
    runtime.host = workers.Host(running=4, idle=2)
    for name in ("a", "b", "c", "d"):
        runtime.register(name, f"{HANDLERS}.hold", memory_mb=256, timeout_s=30)
    try:
        # When each is invoked once, in turn
        pids = {name: runtime.invoke(name, {})[0]["pid"] for name in ("a", "b", "c", "d")}

        # Then the last two stay warm (their next invocation is the same process)
        again = {name: runtime.invoke(name, {})[0]["pid"] for name in ("d", "c")}
        cold = runtime.invoke("a", {})[0]["pid"]
        assert again == {"d": pids["d"], "c": pids["c"]} and cold != pids["a"]
        assert runtime.host.idle == 2
        # and the first ones' processes are gone
        assert not Path(f"/proc/{pids['b']}").exists()
    finally:
        runtime.close()


def test_a_sandbox_has_its_functions_environment_and_nothing_of_the_callers(
    runtime, monkeypatch
) -> None:
    # Given a caller whose environment names an AWS profile
    monkeypatch.setenv("AWS_PROFILE", "someone-elses")
    spec = SandboxSpec("roomy", f"{HANDLERS}.hold", 1024, 30, {"STEPNET_TEST_VARIABLE": "x"})

    # When a sandbox's environment is made, and a sandbox reports its own
    environment = sandbox_environment(spec, {"AWS_DEFAULT_REGION": "us-east-1"})
    held, _ = runtime.invoke("roomy", {})

    # Then it has the function's variables and Lambda's reserved ones, not the caller's others
    assert "AWS_PROFILE" not in environment
    assert environment["STEPNET_TEST_VARIABLE"] == "x"
    assert held["environment"] == {
        "_HANDLER": f"{HANDLERS}.hold",
        "AWS_LAMBDA_FUNCTION_NAME": "roomy",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
        "OPENBLAS_NUM_THREADS": str(blas_threads(1024)),
        "AWS_PROFILE": None,
        "STEPNET_TEST_VARIABLE": "configured",
    }


def test_blas_threads_follow_the_cpus_a_lambda_of_that_memory_sees() -> None:
    # Given / When / Then: two CPUs up to 3008 MB, six at 10,240 MB
    assert [visible_cpus(mb) for mb in (128, 1769, 3008, 3009, 5308, 8846, 10240)] == [
        2, 2, 2, 3, 4, 6, 6
    ]  # fmt: skip
    assert 1 <= blas_threads(128) <= 2


@pytest.mark.parametrize(
    ("function", "event", "error_type", "message"),
    [
        ("exit", {"status": 3}, "Runtime.ExitError", "Error: Runtime exited with error: exit status 3"),
        ("fail", {"x": 7}, "ValueError", "bad input: 7"),
        ("unserializable", {}, "Runtime.MarshalError", "Unable to marshal response"),
        ("missing", {}, "Runtime.ImportModuleError", "Unable to import module 'tests.engine.no_such_module'"),
    ],
)  # fmt: skip
def test_other_failures_come_back_as_lambda_reports_them(
    runtime, function: str, event: dict[str, Any], error_type: str, message: str
) -> None:
    # When
    payload, error = runtime.invoke(function, event)

    # Then
    assert error == "Unhandled"
    assert payload["errorType"] == error_type
    assert message in payload["errorMessage"]


# --- whole runs ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def large_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8,000 × 1,000 float64 (64 MB): EvaluateShards holds about 170 MB of it."""
    X, y = synthetic_classification(n=8_000, d=1_000, k=3, seed=1)
    return write_npz(tmp_path_factory.mktemp("limits") / "large.npz", X, y)


def _config_file(folder: Path, document: dict[str, Any]) -> Path:
    path = folder / f"{document['run_id']}.json"
    path.write_text(json.dumps(document))
    return path


def test_a_function_pushed_over_its_memory_fails_the_run_naming_it(
    large_npz: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    # Given a run whose EvaluateShards is sized at 128 MB for this run only, and a memory
    # formula that misjudges it (patched to accept every config: the engine is the backstop)
    monkeypatch.setattr(memory, "check", lambda *args, **kwargs: None)
    document = {
        "run_id": "too-small",
        "dataset": {"source": str(large_npz)},
        "model": {"layers": [{"units": 8, "activation": "relu"}, {"units": 3, "activation": "softmax"}]},
        "loss": "cross_entropy",
        "optimizer": {"name": "sgd", "learning_rate": 0.1},
        "epochs": 1, "batch_size": 2000, "workers": 2, "mode": "fused",
    }  # fmt: skip
    config, out = _config_file(tmp_path, document), tmp_path / "out"

    # When
    flags = ["--function-memory", "EvaluateShards=128"]
    code = main(["local", str(config), "--out", str(out), *flags])

    # Then the run failed with Lambda's error, naming the function, its memory and the use
    printed = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert code == 1
    assert "run too-small FAILED: Runtime.OutOfMemory: RequestId:" in printed
    assert "function stepnet-EvaluateShards (EvaluateShards) ran out of memory:" in printed
    assert "> Memory Size 128 MB" in printed
    assert "--function-memory NAME=MB" in printed
    # and usage.json says so too
    usage = json.loads((out / "usage.json").read_text())
    assert usage["EvaluateShards"]["memory_mb"] == 128
    assert usage["EvaluateShards"]["invocations"] == 1
    assert usage["EvaluateShards"]["max_memory_used_mb"] > 128
    # and the error is not one the workflow retries: one attempt, caught into the epoch's Fail
    epoch = json.loads((out / "executions" / "too-small-epoch-001.json").read_text())
    failed = [e["taskFailedEventDetails"]["error"] for e in epoch if e["type"] == "TaskFailed"]
    assert failed == ["Runtime.OutOfMemory"]


def test_a_tiny_memory_is_refused_before_anything_runs(tmp_path: Path, capsys) -> None:
    # Given a memory the formula of docs/data.md says no function can run in
    config = _config_file(tmp_path, digits_config(run_id="refused", epochs=1))

    # When
    code = main(
        ["local", str(config), "--out", str(tmp_path / "out"), "--function-memory", "Plan=128"]
    )

    # Then it is refused with the function, its memory and the flag that sizes it
    printed = " ".join(capsys.readouterr().out.split())
    assert code == 2
    assert "Plan needs about" in printed and "but has 128 MB" in printed
    assert "--function-memory Plan=" in printed
    assert not (tmp_path / "out").exists()


def test_a_function_pushed_past_its_timeout_fails_the_run_naming_it(tmp_path: Path) -> None:
    # Given a run whose Plan has a 1 s timeout and spends 3 s in a slow dependency
    config = parse_config(digits_config(run_id="too-slow", epochs=1, mode="fused"))
    with LocalAccount(timeout_s={"Plan": 1}) as account:
        account.runtime.inject_delay(f"{account.stack_name}-Plan", 3.0)

        # When
        run = run_local(config, tmp_path, account=account)

    # Then it failed with Lambda's error, naming the function, its timeout and the duration
    assert run.description["status"] == "FAILED"
    cause = readable_cause(run.description)
    assert cause.startswith("Sandbox.Timedout: RequestId: ")
    assert "Error: Task timed out after 1.00 seconds." in cause
    assert "function stepnet-Plan (Plan) was stopped at its timeout" in cause
    assert ">= Timeout 1 s" in cause
    assert run.usage["Plan"]["timeout_s"] == 1
    assert 1.0 <= run.usage["Plan"]["max_duration_s"] < 3.0


def test_usage_json_of_a_run_has_every_function_and_plausible_values(
    tmp_path: Path, capsys
) -> None:
    # Given one fused epoch of digits
    config = _config_file(tmp_path, digits_config(run_id="usage", epochs=1, mode="fused"))
    out = tmp_path / "out"

    # When
    code = main(["local", str(config), "--out", str(out), "--function-timeout", "Evaluate=60"])

    # Then it is printed and written, one row per function of the stack
    assert code == 0
    printed = capsys.readouterr().out
    assert "max memory" in printed and str(out / "usage.json") in " ".join(printed.split())
    usage = json.loads((out / "usage.json").read_text())
    assert list(usage) == list(FUNCTIONS)
    for name, row in usage.items():
        assert set(row) == {
            "invocations", "memory_mb", "max_memory_used_mb", "timeout_s", "max_duration_s"
        }  # fmt: skip
        assert row["memory_mb"] == FUNCTIONS[name].memory_mb
        expected_timeout = 60 if name == "Evaluate" else FUNCTIONS[name].timeout_s
        assert row["timeout_s"] == expected_timeout
        if row["invocations"] == 0:  # not in this run (per-layer functions, the API's, …)
            assert (row["max_memory_used_mb"], row["max_duration_s"]) == (None, None)
            continue
        assert 30 <= row["max_memory_used_mb"] < row["memory_mb"]
        assert 0 < row["max_duration_s"] < row["timeout_s"]
    assert usage["Gradients"]["invocations"] > 0 and usage["Forward"]["invocations"] == 0


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--function-memory", "Plann=512"], "--function-memory: unknown function 'Plann'; known: ["),
        (["--function-memory", "Plan=64"], "--function-memory: Plan must be an integer in [128, 10240] (MB), got 64"),
        (["--function-memory", "Plan=lots"], "got 'lots'"),
        (["--function-timeout", "Plan=901"], "--function-timeout: Plan must be an integer in [1, 900] (seconds), got 901"),
        (["--function-timeout", "Plan"], "--function-timeout: expected NAME=S, got 'Plan'"),
        (["--function-memory", "Plan=256", "--function-memory", "Plan=512"], "Plan is given twice"),
    ],
)  # fmt: skip
def test_size_overrides_are_checked_before_anything_runs(
    tmp_path: Path, capsys, flags: list[str], message: str
) -> None:
    # Given
    config = _config_file(tmp_path, digits_config(run_id="never"))

    # When
    code = main(["local", str(config), "--out", str(tmp_path / "out"), *flags])

    # Then
    assert code == 2
    assert message in " ".join(capsys.readouterr().out.split())
    assert not (tmp_path / "out").exists()


def test_overrides_size_the_emulated_functions_as_the_stack_would() -> None:
    # Given / When
    with LocalAccount(memory_mb={"Plan": 256}, timeout_s={"Plan": 7}) as account:
        configuration = account.client("lambda").get_function(
            FunctionName=f"{account.stack_name}-Plan"
        )["Configuration"]
        runtime = account.runtime.configuration(f"{account.stack_name}-Plan")

    # Then the Lambda API and the runtime both have them
    assert (configuration["MemorySize"], configuration["Timeout"]) == (256, 7)
    assert (runtime.memory_mb, runtime.timeout_s) == (256, 7)


def test_threads_isolation_measures_only_durations(tmp_path: Path) -> None:
    # Given one fused epoch of digits with the handlers in this process
    config = _config_file(tmp_path, digits_config(run_id="threads", epochs=1, mode="fused"))
    out = tmp_path / "out"

    # When
    code = main(["local", str(config), "--out", str(out), "--isolation", "threads"])

    # Then it trained, and usage.json has durations but no Max Memory Used
    assert code == 0
    usage = json.loads((out / "usage.json").read_text())
    assert usage["Gradients"]["invocations"] > 0
    assert usage["Gradients"]["max_duration_s"] > 0
    assert all(row["max_memory_used_mb"] is None for row in usage.values())
