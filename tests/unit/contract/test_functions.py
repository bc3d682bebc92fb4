"""The function table is complete and consistent: one spec per handler module, sized within
Lambda's limits, each in its loop, each granted a plausible minimum (what the handlers really
call is checked against the stack in tests/engine/test_engine_matches_stack.py)."""

import importlib
from pathlib import Path

import pytest

from trainer.contract import functions, names
from trainer.contract.functions import (
    FUNCTIONS,
    GET_ITEM,
    GET_OBJECT,
    LAMBDA_PYTHON_VERSION,
    LAMBDA_RUNTIME,
    MEMORY_LIMITS_MB,
    TIMEOUT_LIMITS_S,
    FunctionSpec,
    Grants,
    Scope,
    functions_in,
    functions_of,
    handler_module,
    in_workflow,
    key_matches,
)
from trainer.contract.statemachines import STATE_MACHINES
from trainer.contract.storage import TABLES

HANDLERS_DIR = Path(__file__).resolve().parents[3] / "lambdas" / "trainer" / "handlers"


def test_every_handler_module_has_exactly_one_function() -> None:
    # Given the trainer's handler modules on disk
    modules = {path.stem for path in HANDLERS_DIR.glob("[!_]*.py")}

    # When
    named = [handler_module(logical).rsplit(".", 1)[1] for logical in functions_of("trainer")]

    # Then
    assert sorted(named) == sorted(modules)


@pytest.mark.parametrize("logical", list(FUNCTIONS))
def test_each_handler_path_names_a_callable(logical: str) -> None:
    # Given
    module, attribute = FUNCTIONS[logical].handler.rsplit(".", 1)

    # When
    handler = getattr(importlib.import_module(module), attribute)

    # Then
    assert callable(handler)


def test_sizes_are_within_lambdas_limits_and_out_of_range_sizes_are_refused() -> None:
    # Given / When / Then
    for spec in FUNCTIONS.values():
        assert MEMORY_LIMITS_MB[0] <= spec.memory_mb <= MEMORY_LIMITS_MB[1]
        assert TIMEOUT_LIMITS_S[0] <= spec.timeout_s <= TIMEOUT_LIMITS_S[1]
    with pytest.raises(ValueError, match="memory_mb 64"):
        FunctionSpec("m.h", memory_mb=64, timeout_s=1, scope=functions.RUN, grants=Grants())
    with pytest.raises(ValueError, match="timeout_s 901"):
        FunctionSpec("m.h", memory_mb=128, timeout_s=901, scope=functions.RUN, grants=Grants())


def test_functions_by_scope_cover_the_workflow_once() -> None:
    # Given / When
    run = functions_in("run")
    epoch = functions_in("epoch")
    per_layer = functions_in("microbatch", "per_layer")
    fused = functions_in("microbatch", "fused")

    request = functions_in("request")
    trigger = functions_in("trigger")

    # Then
    assert run == (
        "Initialize", "CheckShards", "PrepareShards", "Start", "Resume", "Finalize", "Register",
        "Promote", "MarkFailed",
    )  # fmt: skip
    assert epoch == ("Plan", "Update", "EvaluateShards", "Evaluate")
    assert per_layer == ("Forward", "Loss", "Backward")
    assert fused == ("Gradients",)
    assert request == ("Api", "Predict", "PredictBatch")
    assert trigger == ("Retrain",)
    assert functions_in("microbatch") == per_layer + fused
    assert sorted(run + epoch + per_layer + fused + request + trigger) == sorted(FUNCTIONS)
    assert sorted(f for f in FUNCTIONS if not in_workflow(f)) == sorted(request + trigger)


def test_a_mode_belongs_to_micro_batch_functions_only() -> None:
    # Given / When / Then
    with pytest.raises(ValueError, match="micro-batch"):
        Scope("epoch", "fused")
    with pytest.raises(ValueError, match="micro-batch"):
        Scope("microbatch")


def test_the_runtime_is_one_python_version() -> None:
    # Given / When / Then
    assert LAMBDA_RUNTIME.removeprefix("python") == LAMBDA_PYTHON_VERSION
    assert tuple(int(part) for part in LAMBDA_PYTHON_VERSION.split(".")) >= (3, 12)


@pytest.mark.parametrize("logical", list(FUNCTIONS))
def test_grants_name_known_tables_and_prefixes_of_the_bucket(logical: str) -> None:
    # Given
    grants = FUNCTIONS[logical].grants
    prefixes = {
        "",
        names.S3_DATASETS_PREFIX,
        names.S3_RUNS_PREFIX,
        names.S3_TENSORS_PREFIX,
        names.S3_SCRATCH_PREFIX,
        functions.MODELS,
        functions.RUN_MODELS,
        functions.INFERENCE_IN,
        functions.INFERENCE_OUT,
    }

    # When / Then
    assert set(grants.tables) <= set(TABLES)
    assert set(grants.objects) <= prefixes
    assert set(grants.machines) <= set(STATE_MACHINES)
    assert all(grants.table_actions().values()) and all(grants.object_actions().values())


def test_every_function_reads_run_records_and_object_readers_list_the_bucket() -> None:
    # Given / When
    reading_config = {
        logical
        for logical, spec in FUNCTIONS.items()
        if GET_ITEM in spec.grants.tables.get("runs", frozenset())
    }
    listing = {logical for logical, spec in FUNCTIONS.items() if spec.grants.lists_bucket}
    reading_objects = {
        logical
        for logical, spec in FUNCTIONS.items()
        if any(GET_OBJECT in actions for actions in spec.grants.objects.values())
    }

    # Then (the config, or for PrepareShards its own write-once records again on a retry; the
    # functions that run before the run is recorded get the config in their input; the
    # prediction functions read objects only)
    assert reading_config == set(functions_of("trainer")) - {"Initialize", "CheckShards"}
    assert listing == reading_objects


def test_each_function_is_bundled_from_the_package_of_its_handler() -> None:
    # Given / When
    packages = {logical: spec.package for logical, spec in FUNCTIONS.items()}

    # Then the prediction functions run the inference package, the rest the trainer
    assert functions_of("inference") == ("Predict", "PredictBatch")
    assert set(functions_of("trainer")) == set(FUNCTIONS) - {"Predict", "PredictBatch"}
    assert all(FUNCTIONS[f].handler.startswith(f"{packages[f]}.") for f in FUNCTIONS)
    with pytest.raises(ValueError, match="not a handler of package 'inference'"):
        FunctionSpec(
            "trainer.handlers.api.handler", memory_mb=128, timeout_s=1,
            scope=functions.REQUEST, grants=Grants(), package="inference",
        )  # fmt: skip


def test_only_the_api_may_start_runs_and_only_batch_inference_may_delete() -> None:
    # Given / When
    starting = {f for f, spec in FUNCTIONS.items() if spec.grants.machines}
    deleting = {
        (f, prefix)
        for f, spec in FUNCTIONS.items()
        for prefix, actions in spec.grants.objects.items()
        if functions.DELETE_OBJECT in actions
    }

    # Then
    assert starting == {"Api"}
    assert FUNCTIONS["Api"].grants.machine_actions() == {
        "Training": ("states:DescribeExecution", "states:ListExecutions", "states:StartExecution")
    }
    assert deleting == {("PredictBatch", functions.INFERENCE_OUT)}


@pytest.mark.parametrize(
    ("prefix", "key", "covered"),
    [
        ("runs/", "runs/r-1/model/model.npz", True),
        ("runs/", "run/x", False),
        ("", "anything", True),
        ("inference/*/in/", "inference/digits/in/day1.csv", True),
        ("inference/*/in/", "inference/digits/in/sub/day1.npz", True),
        ("inference/*/in/", "inference/digits/out/day1.csv", False),
        ("inference/*/out/", "inference/digits/out/day1.error.json", True),
        ("models/", "models/digits/production.json", True),
    ],
)
def test_a_prefix_covers_keys_as_iam_matches_its_wildcard(
    prefix: str, key: str, covered: bool
) -> None:
    # When / Then
    assert key_matches(prefix, key) is covered
