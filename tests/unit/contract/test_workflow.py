"""trainer.contract.workflow describes the real ASL: its paths are walked through the files."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from trainer.contract import workflow
from trainer.contract.functions import functions_in
from trainer.contract.statemachines import definition_text
from trainer.contract.workflow import State

FUNCTION_ARN = re.compile(r"^\$\{(\w+)FunctionArn\}$")

# What each micro-batch function does to the task's ``layer`` (trainer.messages.MicroBatchTask:
# each handler returns the task for the next state), which the ItemProcessor's Choices read.
LAYER_AFTER = {
    "Forward": lambda task: task["layer"] + 1,
    "Loss": lambda task: task["layers"],
    "Backward": lambda task: task["layer"] - 1,
    "Gradients": lambda task: 0,
}


def _machine(logical: str) -> dict[str, Any]:
    """A state machine's ASL (trainer.contract.statemachines), placeholders unfilled."""
    document: dict[str, Any] = json.loads(definition_text(logical))
    return document


def _item_processor() -> dict[str, Any]:
    processor: dict[str, Any] = _machine("Steps")["States"]["Train step"]["ItemProcessor"]
    return processor


def _state(name: str, definition: dict[str, Any]) -> State:
    """A state of the ASL as the workflow module spells it (Lambda Tasks name their function)."""
    target = definition.get("Parameters", {}).get("FunctionName", "")
    match = FUNCTION_ARN.match(target) if isinstance(target, str) else None
    return State(name, definition["Type"], match.group(1) if match else None)


def _matches(rule: dict[str, Any], data: dict[str, Any]) -> bool:
    """The Choice rules the ItemProcessor uses (a Variable and one comparison)."""
    value = data[rule["Variable"].removeprefix("$.")]
    if "StringEquals" in rule:
        return bool(value == rule["StringEquals"])
    if "NumericLessThanEqualsPath" in rule:
        return bool(value <= data[rule["NumericLessThanEqualsPath"].removeprefix("$.")])
    if "NumericGreaterThanEquals" in rule:
        return bool(value >= rule["NumericGreaterThanEquals"])
    raise AssertionError(f"a Choice rule this walk does not know: {rule}")


def _walk_item_processor(mode: str, layers: int) -> list[State]:
    """The states one Map item enters, following Next, Choices and End as Step Functions does."""
    processor = _item_processor()
    task = {"mode": mode, "layer": 1, "layers": layers}
    name: str | None = processor["StartAt"]
    path = []
    while name is not None:
        definition = processor["States"][name]
        state = _state(name, definition)
        path.append(state)
        assert len(path) < 1000, "the walk does not end"
        if definition["Type"] == "Choice":
            chosen = [c["Next"] for c in definition["Choices"] if _matches(c, task)]
            name = chosen[0] if chosen else definition["Default"]
            continue
        if definition["Type"] == "Task":
            assert state.function is not None, name
            task["layer"] = LAYER_AFTER[state.function](task)
        name = (
            None if definition.get("End") or definition["Type"] == "Succeed" else definition["Next"]
        )
    return path


@pytest.mark.parametrize("layers", [1, 2, 3, 5])
@pytest.mark.parametrize("mode", workflow.MODES)
def test_the_microbatch_path_is_the_item_processors_walk(mode: str, layers: int) -> None:
    # Given the Map's ItemProcessor in steps.asl.json, When walked for one micro-batch
    walked = _walk_item_processor(mode, layers)

    # Then the workflow module names the same states, types and functions, in order
    assert list(workflow.microbatch_path(mode, layers)) == walked
    assert workflow.transitions_per_microbatch(mode, layers) == len(walked)
    assert workflow.microbatch_functions(mode, layers) == [s.function for s in walked if s.function]


def test_every_state_of_the_item_processor_is_on_a_path() -> None:
    # Given the states both modes enter
    entered = {s.name for mode in workflow.MODES for s in _walk_item_processor(mode, 2)}

    # Then none of the ItemProcessor's states is left out
    assert entered == set(_item_processor()["States"])


def test_the_step_path_loops_through_the_map_update_and_choice() -> None:
    # Given steps.asl.json (an Express chunk)
    machine = _machine("Steps")
    states = machine["States"]
    map_state, update, more = workflow.STEP_PATH
    (done,) = workflow.CHUNK_END

    # Then each step state is there, with its type and function, and they form the loop, which
    # the chunk leaves for its Succeed when the epoch is done or the chunk full
    assert machine["StartAt"] == map_state.name
    for state in (*workflow.STEP_PATH, done):
        assert _state(state.name, states[state.name]) == state
    assert states[map_state.name]["Next"] == update.name
    assert states[update.name]["Next"] == more.name
    assert states[more.name]["Default"] == map_state.name
    assert {c["Next"] for c in states[more.name]["Choices"]} == {done.name}
    assert {c["Variable"] for c in states[more.name]["Choices"]} == {
        "$.cursor.done", "$.cursor.chunk_full"
    }  # fmt: skip
    assert states[map_state.name]["ItemProcessor"]["ProcessorConfig"]["Mode"] == "INLINE"


def _shard_map(states: dict[str, Any], shard_map: workflow.ShardMap) -> dict[str, Any]:
    """A Map over groups of shards: its state, checked to be an inline Map of one Task."""
    definition = states[shard_map.map.name]
    assert _state(shard_map.map.name, definition) == shard_map.map
    processor = definition["ItemProcessor"]
    assert processor["ProcessorConfig"]["Mode"] == "INLINE"
    assert processor["StartAt"] == shard_map.task.name
    assert list(processor["States"]) == [shard_map.task.name]
    task = processor["States"][shard_map.task.name]
    assert _state(shard_map.task.name, task) == shard_map.task
    assert task["End"] is True
    return dict(definition)


def test_an_epoch_execution_plans_runs_chunks_and_ends_as_described() -> None:
    # Given epoch.asl.json
    machine = _machine("Epoch")
    states = machine["States"]
    (plan,) = workflow.EPOCH_START
    chunk, more = workflow.CHUNK_PATH
    finished = workflow.execution_end(1)

    # Then it plans, then starts and awaits Steps chunks until the epoch is done
    assert machine["StartAt"] == plan.name
    for state in (plan, chunk, more, workflow.EPOCH_TRAINED):
        assert _state(state.name, states[state.name]) == state
    assert states[plan.name]["Next"] == chunk.name
    assert states[chunk.name]["Resource"].endswith("startExecution.sync:2")
    assert states[chunk.name]["Parameters"]["StateMachineArn"] == "${StepsStateMachineArn}"
    assert states[chunk.name]["Next"] == more.name
    assert states[more.name]["Default"] == chunk.name
    # and "More steps?" evaluates the epoch and ends the execution once the epoch is done
    assert [c["Next"] for c in states[more.name]["Choices"]] == [finished[0].name]
    evaluate_shards = _shard_map(states, workflow.EVALUATE_SHARDS)
    assert evaluate_shards["Next"] == workflow.EVALUATE.name
    assert _state(workflow.EVALUATE.name, states[workflow.EVALUATE.name]) == workflow.EVALUATE
    assert states[workflow.EVALUATE.name]["Next"] == workflow.EPOCH_TRAINED.name
    assert [s.name for s in finished] == [
        workflow.EVALUATE_SHARDS.map.name, workflow.EVALUATE_SHARDS.task.name,
        workflow.EVALUATE.name, workflow.EPOCH_TRAINED.name,
    ]  # fmt: skip


def test_the_training_execution_is_initialize_shards_epochs_export_and_the_registry() -> None:
    # Given training.asl.json
    machine = _machine("Training")
    states = machine["States"]
    initialize, start = workflow.INITIALIZE, workflow.START
    export, register, promote, promoted_choice, promoted = workflow.RUN_END
    train, more = workflow.EPOCH_PATH

    # Then a new run starts with Initialize, checks and prepares the shards, starts, loops over
    # the epoch states and ends with Export; a resumed one goes from Resume to the epochs' loop
    choice, resume = workflow.RESUMED_START
    assert machine["StartAt"] == choice.name
    assert states[choice.name]["Default"] == initialize.name
    assert [c["Next"] for c in states[choice.name]["Choices"]] == [resume.name]
    assert states[resume.name]["Next"] == more.name
    assert workflow.run_start(3)[:2] == (choice, initialize)
    for state in (
        choice, initialize, start, resume, *workflow.EPOCH_PATH, *workflow.RUN_END,
        *workflow.OUTCOMES,
    ):  # fmt: skip
        assert _state(state.name, states[state.name]) == state
    check = _shard_map(states, workflow.CHECK_SHARDS)
    prepare = _shard_map(states, workflow.PREPARE_SHARDS)
    assert states[initialize.name]["Next"] == workflow.CHECK_SHARDS.map.name
    assert check["Next"] == workflow.PREPARE_SHARDS.map.name
    assert prepare["Next"] == start.name
    assert states[start.name]["Next"] == train.name
    assert states[train.name]["Next"] == more.name
    assert states[more.name]["Default"] == train.name
    assert [c["Next"] for c in states[more.name]["Choices"]] == [export.name]
    # then registers the model, promotes it or not, and ends on either outcome
    assert states[export.name]["Next"] == register.name
    assert states[register.name]["Next"] == promote.name
    assert states[promote.name]["Next"] == promoted_choice.name
    assert [c["Next"] for c in states[promoted_choice.name]["Choices"]] == [promoted.name]
    assert states[promoted_choice.name]["Default"] == workflow.NOT_PROMOTED.name
    assert (promoted, workflow.NOT_PROMOTED) == workflow.OUTCOMES
    assert all(states[s.name]["Type"] == "Succeed" for s in workflow.OUTCOMES)
    assert workflow.TRAINING_TRANSITIONS_PER_EPOCH == 2
    assert workflow.training_transitions_per_run(3) == 2 * 3 + 10


def test_every_lambda_task_of_the_machines_is_on_a_path() -> None:
    # Given every Task that invokes a function, in both files (and in their Maps)
    tasks = set()
    for logical in ("Steps", "Epoch", "Training"):
        for state_name, definition in _machine(logical)["States"].items():
            inner = definition.get("ItemProcessor", {}).get("States", {})
            for name, each in [(state_name, definition), *inner.items()]:
                state = _state(name, each)
                if state.function is not None:
                    tasks.add(state.function)

    # Then the workflow's functions are exactly those, per epoch and per run
    assert (
        set(workflow.EPOCH_FUNCTIONS)
        | set(workflow.RUN_FUNCTIONS)
        | set(workflow.RESUME_FUNCTIONS)
        | set(workflow.FAILURE_FUNCTIONS)
        == tasks
    )
    assert workflow.EPOCH_FUNCTIONS == (
        "Plan", "Forward", "Loss", "Backward", "Gradients", "Update", "EvaluateShards",
        "Evaluate",
    )  # fmt: skip
    assert workflow.RUN_FUNCTIONS == (
        "Initialize", "CheckShards", "PrepareShards", "Start", "Finalize", "Register", "Promote",
    )  # fmt: skip
    assert workflow.RESUME_FUNCTIONS == ("Resume",)
    assert workflow.FAILURE_FUNCTIONS == ("MarkFailed",)


def test_the_paths_agree_with_each_functions_scope() -> None:
    # Given the contract's function table (each function's loop and mode)
    per_epoch = workflow.EPOCH_START + workflow.STEP_PATH + workflow.execution_end(2)

    # Then the micro-batch path of each mode invokes that mode's functions, the epoch and step
    # paths the epoch functions, the run's ends the run functions
    for mode in workflow.MODES:
        assert set(workflow.microbatch_functions(mode, 3)) == set(functions_in("microbatch", mode))
    assert set(workflow.functions(per_epoch)) == set(functions_in("epoch"))
    assert set(workflow.RUN_FUNCTIONS) | set(workflow.RESUME_FUNCTIONS) | set(
        workflow.FAILURE_FUNCTIONS
    ) == set(functions_in("run"))


@pytest.mark.parametrize(("layers", "workers"), [(1, 1), (2, 4), (9, 3)])
def test_history_events_follow_from_the_paths(layers: int, workers: int) -> None:
    # Given a step of `workers` micro-batches through `layers` layers
    per_layer = workflow.events_per_step(workers=workers, layers=layers, mode="per_layer")
    fused = workflow.events_per_step(workers=workers, layers=layers, mode="fused")

    # Then: 2 per Map iteration, 5 per Lambda Task, 2 per Choice or Succeed; 11 per step
    assert per_layer == workers * (14 * layers + 11) + 11
    assert fused == workers * 9 + 11
    states = workflow.transitions_per_microbatch("per_layer", layers)
    tasks = len(workflow.microbatch_functions("per_layer", layers))
    assert workflow.events_per_microbatch("per_layer", layers) == 2 + 5 * tasks + 2 * (
        states - tasks
    )


@pytest.mark.parametrize("executions", [1, 2, 5])
def test_an_epoch_enters_its_states_in_standard_and_its_steps_in_express(executions: int) -> None:
    # Given an epoch of 12 steps and 45 micro-batches in `executions` chunks
    counts = {"steps": 12, "microbatches": 45, "executions": executions}

    # When
    standard = workflow.standard_epoch_transitions(groups=4, **counts)
    fused = workflow.express_epoch_transitions(mode="fused", layers=2, **counts)
    per_layer = workflow.express_epoch_transitions(mode="per_layer", layers=2, **counts)

    # Then Standard: Plan, 2 per chunk, the evaluation of 4 groups of shards (the Map, its 4
    # Tasks, Evaluate) and the Succeed; Express: 3 per step, the micro-batch paths, a Succeed
    # per chunk; an epoch's transitions are both
    assert standard == 1 + 2 * executions + 4 + 3
    assert fused == 3 * 12 + 2 * 45 + executions
    assert per_layer == 3 * 12 + 11 * 45 + executions
    total = workflow.epoch_transitions(mode="fused", layers=2, groups=4, **counts)
    assert total == standard + fused


def test_unknown_modes_and_empty_networks_are_refused() -> None:
    # When / Then
    with pytest.raises(ValueError, match="mode"):
        workflow.microbatch_path("layerwise", 2)
    with pytest.raises(ValueError, match="one layer"):
        workflow.microbatch_path("fused", 0)
    with pytest.raises(ValueError, match="chunks"):
        workflow.epoch_transitions(mode="fused", layers=1, steps=1, microbatches=1, executions=2)
    with pytest.raises(ValueError, match="group"):
        workflow.execution_end(0)


def test_the_evaluation_events_are_the_maps_and_the_tasks() -> None:
    # When / Then: the Map 4, per group 2 + 5, the Evaluate Task 5
    assert workflow.evaluation_events(1) == 4 + 7 + 5
    assert workflow.evaluation_events(40) == 4 + 7 * 40 + 5
