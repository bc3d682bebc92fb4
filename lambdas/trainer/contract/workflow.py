"""The workflow's paths: which states a training enters, per micro-batch, step, epoch and run.

One description of the walk through ``statemachine/epoch.asl.json``, ``steps.asl.json`` and
``training.asl.json``
(``tests/unit/contract/test_workflow.py`` walks the real files and checks it), from which both
counts are derived:

* **history events** (:func:`events_per_step`): what one step adds to an Epoch execution's
  history, so that a long epoch continues in a new execution before the 25,000-event limit
  (``trainer.training.schedule.steps_per_execution``, the run config's validation);
* **state transitions** (``StateEntered`` events: :func:`transitions_per_microbatch`,
  :func:`epoch_transitions`, :data:`TRAINING_TRANSITIONS_PER_EPOCH`, ...), which Step Functions
  Standard bills, and the Lambda functions each path invokes (``stepnet.billing``).

The paths, for ``L`` layers:

* per micro-batch (one iteration of the Map "Train step"'s ItemProcessor), ``per_layer``:
  the mode Choice, L × (Forward Task, its Choice), the loss Task, L × (Backward Task, its
  Choice), the Succeed: ``4L + 3`` states; ``fused``: the mode Choice and one Task (2 states);
* per step, in an Express chunk (steps.asl.json): the Map, the Update Task and the
  "Chunk done?" Choice (3 states); per chunk its Succeed;
* per epoch, in the Standard Epoch execution (epoch.asl.json): the Plan Task, per chunk the
  Task that starts and awaits it and the "More steps?" Choice, then the evaluation: the Map
  "Evaluate shards" with one Task per group of shards, the Evaluate Task and the Succeed
  (``1 + 2P + G + 2`` states for ``P`` chunks and ``G`` groups);
* per epoch in the Training execution: Train epoch, More epochs? (2 states); per run:
  the Choice "New or resumed?", Initialize run, the Maps "Check shards" and "Prepare shards"
  (one Task per group each), Start run, Export model, Register model, Promote if better,
  Promoted? and one of Promoted / Not promoted (``2G + 10`` states). A resumed run takes
  "Resume run" instead of everything from Initialize run to Start run.

History events per state (no retries): a Lambda Task 5 (entered, scheduled, started, succeeded,
exited), a Choice or Succeed 2 (entered, exited), the Map 4 (entered, started, succeeded,
exited), plus 2 per Map iteration (started, succeeded). So a step adds
``W × (2 + Σ events of the micro-batch path) + 4 + 5 + 2`` events: ``W(14L + 11) + 11`` per
layer, ``9W + 11`` fused; an epoch's evaluation ``4 + 7G + 5``.
``tests/engine/test_history_limit.py`` checks it on real histories.

Pure data and arithmetic: this module ships to Lambda (the config validation uses it), so it
reads no ASL file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

StateType = Literal["Task", "Choice", "Succeed", "Map"]
MODES: Final = ("per_layer", "fused")


@dataclass(frozen=True)
class State:
    """One state of a path: its name in the ASL, its type and, for a Task that invokes a Lambda
    function, the function's logical name (``trainer.contract.functions.FUNCTIONS``)."""

    name: str
    type: StateType
    function: str | None = None


# --- epoch.asl.json: one iteration of the Map "Train step" (its ItemProcessor) -------------------
MODE_CHOICE: Final = State("Fused or per layer?", "Choice")
FORWARD: Final = State("Forward layer", "Task", "Forward")
FORWARD_DONE: Final = State("Forward done?", "Choice")
LOSS: Final = State("Compute loss", "Task", "Loss")
BACKWARD: Final = State("Backward layer", "Task", "Backward")
BACKWARD_DONE: Final = State("Backward done?", "Choice")
MICROBATCH_DONE: Final = State("Micro-batch done", "Succeed")
GRADIENTS: Final = State("Compute gradients", "Task", "Gradients")

# --- steps.asl.json (Express): per step, per chunk ---------------------------------------------
TRAIN_STEP: Final = State("Train step", "Map")
UPDATE: Final = State("Update weights", "Task", "Update")
MORE_STEPS: Final = State("Chunk done?", "Choice")
STEP_PATH: Final = (TRAIN_STEP, UPDATE, MORE_STEPS)
CHUNK_END: Final = (State("Chunk trained", "Succeed"),)  # ends every chunk

# --- epoch.asl.json (Standard): per epoch, per chunk --------------------------------------------
EPOCH_START: Final = (State("Plan epoch", "Task", "Plan"),)
CHUNK_PATH: Final = (
    State("Train steps", "Task"),  # starts and awaits one Steps chunk (no Lambda)
    State("More steps?", "Choice"),
)
EPOCH_TRAINED: Final = State("Epoch trained", "Succeed")
EVALUATE: Final = State("Evaluate epoch", "Task", "Evaluate")


@dataclass(frozen=True)
class ShardMap:
    """An inline Map over groups of consecutive shards whose iteration is one Task."""

    map: State
    task: State

    def path(self, groups: int) -> tuple[State, ...]:
        """The states it enters for ``groups`` groups: the Map, then its Task once per group."""
        if groups < 1:
            raise ValueError(f"a dataset has at least one group of shards, got {groups}")
        return (self.map, *(self.task,) * groups)

    def events(self, groups: int) -> int:
        """Its history events: the Map's 4, and per group an iteration's 2 and its Task's."""
        return EVENTS_PER_STATE["Map"] + groups * (
            EVENTS_PER_MAP_ITERATION + EVENTS_PER_STATE[self.task.type]
        )


CHECK_SHARDS: Final = ShardMap(
    State("Check shards", "Map"), State("Check a group of shards", "Task", "CheckShards")
)
PREPARE_SHARDS: Final = ShardMap(
    State("Prepare shards", "Map"), State("Prepare a group of shards", "Task", "PrepareShards")
)
EVALUATE_SHARDS: Final = ShardMap(
    State("Evaluate shards", "Map"), State("Evaluate a group of shards", "Task", "EvaluateShards")
)


def execution_end(groups: int) -> tuple[State, ...]:
    """The states that end an epoch's last execution: its evaluation over ``groups`` groups of
    shards (the Map and its Tasks, then the Evaluate Task) and the Succeed."""
    return (*EVALUATE_SHARDS.path(groups), EVALUATE, EPOCH_TRAINED)


# --- training.asl.json ---------------------------------------------------------------------------
NEW_OR_RESUMED: Final = State("New or resumed?", "Choice")
INITIALIZE: Final = State("Initialize run", "Task", "Initialize")
RESUME: Final = State("Resume run", "Task", "Resume")  # instead of the run's start: stepnet resume
START: Final = State("Start run", "Task", "Start")
EPOCH_PATH: Final = (
    State("Train epoch", "Task"),  # starts the Epoch execution, which evaluates too (no Lambda)
    State("More epochs?", "Choice"),
)
EXPORT: Final = State("Export model", "Task", "Finalize")
# After Export, the registry: register the model, promote it or not, and end on the outcome.
REGISTER: Final = State("Register model", "Task", "Register")
PROMOTE: Final = State("Promote if better", "Task", "Promote")
PROMOTED_CHOICE: Final = State("Promoted?", "Choice")
PROMOTED: Final = State("Promoted", "Succeed")
NOT_PROMOTED: Final = State("Not promoted", "Succeed")
REGISTRY_PATH: Final = (REGISTER, PROMOTE, PROMOTED_CHOICE)
OUTCOMES: Final = (PROMOTED, NOT_PROMOTED)  # one of them ends every run: the same count either way
RUN_END: Final = (EXPORT, *REGISTRY_PATH, PROMOTED)
# A failed run (any Catch of the Training machine): mark it FAILED, then, if the divergence guard
# stopped it, export its last good weights; it ends in "Run diverged" or "Run failed" (Fail
# states). Not on a successful run's path: the cost model counts none of it.
MARK_FAILED: Final = State("Mark run failed", "Task", "MarkFailed")
DIVERGED_CHOICE: Final = State("Diverged?", "Choice")
EXPORT_LAST_GOOD: Final = State("Export last good model", "Task", "Finalize")
FAILURE_PATH: Final = (MARK_FAILED, DIVERGED_CHOICE, EXPORT_LAST_GOOD)


RESUMED_START: Final = (NEW_OR_RESUMED, RESUME)  # a resumed run, before its next epoch


def run_start(groups: int) -> tuple[State, ...]:
    """The states a run enters before its first epoch, for ``groups`` groups of shards."""
    return (
        NEW_OR_RESUMED, INITIALIZE, *CHECK_SHARDS.path(groups), *PREPARE_SHARDS.path(groups),
        START,
    )  # fmt: skip


# --- history events (no retries) ----------------------------------------------------------------
EVENTS_PER_STATE: Final[dict[StateType, int]] = {"Task": 5, "Choice": 2, "Succeed": 2, "Map": 4}
EVENTS_PER_MAP_ITERATION: Final = 2  # MapIterationStarted, MapIterationSucceeded

TRANSITIONS_PER_STEP: Final = len(STEP_PATH)
TRAINING_TRANSITIONS_PER_EPOCH: Final = len(EPOCH_PATH)


def training_transitions_per_run(groups: int) -> int:
    """``StateEntered`` events of a run's fixed part in the Training execution: ``2G + 10``."""
    return len(run_start(groups)) + len(RUN_END)


EVENTS_PER_CHUNK: Final = 6 + 2  # the awaited start (entered, scheduled, started, submitted,
# succeeded, exited) and the "More steps?" Choice


def standard_epoch_events(*, executions: int, groups: int) -> int:
    """History events of an epoch's Standard execution (no retries): its start and end (2),
    Plan (5), per chunk :data:`EVENTS_PER_CHUNK`, the evaluation and the Succeed (2)."""
    return 2 + 5 + executions * EVENTS_PER_CHUNK + evaluation_events(groups) + 2


def express_epoch_events(
    *, mode: str, layers: int, steps: int, microbatches: int, executions: int
) -> int:
    """History events of an epoch's Express chunks (no retries; on AWS, their log events at
    level ALL): per step the Map, Update and Choice (11), per micro-batch an iteration's
    events, per chunk its start and end and its Succeed (4)."""
    _check_chunks(steps, microbatches, executions)
    return (
        steps * history_events(STEP_PATH)
        + microbatches * events_per_microbatch(mode, layers)
        + executions * (2 + history_events(CHUNK_END))
    )


TRAINING_EVENTS_PER_EPOCH: Final = 6 + 2  # "Train epoch" (an awaited start) and its Choice


def evaluation_events(groups: int) -> int:
    """History events of an epoch's evaluation in its last execution: ``4 + 7G + 5``."""
    return EVALUATE_SHARDS.events(groups) + EVENTS_PER_STATE[EVALUATE.type]


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def microbatch_path(mode: str, layers: int) -> tuple[State, ...]:
    """The states one micro-batch enters, in order: ``4L + 3`` per layer, 2 fused."""
    _check_mode(mode)
    if layers < 1:
        raise ValueError(f"a network has at least one layer, got {layers}")
    if mode == "fused":
        return (MODE_CHOICE, GRADIENTS)
    forward = (FORWARD, FORWARD_DONE) * layers
    backward = (BACKWARD, BACKWARD_DONE) * layers
    return (MODE_CHOICE, *forward, LOSS, *backward, MICROBATCH_DONE)


def functions(path: tuple[State, ...]) -> list[str]:
    """The Lambda functions a path invokes, in order (one invocation per Task state)."""
    return [state.function for state in path if state.function is not None]


def microbatch_functions(mode: str, layers: int) -> list[str]:
    """``Forward × L, Loss, Backward × L`` per layer; ``Gradients`` fused."""
    return functions(microbatch_path(mode, layers))


def history_events(path: tuple[State, ...]) -> int:
    """History events of the states of ``path`` (each entered once, no retries)."""
    return sum(EVENTS_PER_STATE[state.type] for state in path)


def events_per_microbatch(mode: str, layers: int) -> int:
    """One Map iteration's events: ``14L + 11`` per layer, ``9`` fused."""
    return EVENTS_PER_MAP_ITERATION + history_events(microbatch_path(mode, layers))


def events_per_step(*, workers: int, layers: int, mode: str) -> int:
    """The history events one training step with ``workers`` micro-batches adds to an Epoch
    execution (no retries): ``workers × events_per_microbatch + 11`` (the Map, Update, the
    loop Choice). Retries add events, hence the budget's headroom below 25,000."""
    return workers * events_per_microbatch(mode, layers) + history_events(STEP_PATH)


def transitions_per_microbatch(mode: str, layers: int) -> int:
    """``StateEntered`` events of one Map iteration: ``4L + 3`` per layer, 2 fused."""
    return len(microbatch_path(mode, layers))


def _check_chunks(steps: int, microbatches: int, executions: int) -> None:
    if executions < 1 or steps < executions or microbatches < steps:
        raise ValueError(
            f"an epoch of {steps} steps and {microbatches} micro-batches cannot take "
            f"{executions} chunks"
        )


def standard_epoch_transitions(
    *, steps: int, microbatches: int, executions: int, groups: int = 1
) -> int:
    """``StateEntered`` events of one epoch's Standard Epoch execution (billed per transition):
    Plan, per chunk its Task and the "More steps?" Choice, and the evaluation over ``groups``
    groups of shards, then the Succeed: ``1 + 2·P + G + 2``."""
    _check_chunks(steps, microbatches, executions)
    return len(EPOCH_START) + executions * len(CHUNK_PATH) + len(execution_end(groups))


def express_epoch_transitions(
    *, mode: str, layers: int, steps: int, microbatches: int, executions: int
) -> int:
    """``StateEntered`` events of one epoch's Express chunks (billed per request and
    GB-second, not per transition): 3 per step, ``transitions_per_microbatch`` per
    micro-batch, and each chunk's Succeed: ``3·S + M·t_mb + P``."""
    _check_chunks(steps, microbatches, executions)
    return (
        steps * TRANSITIONS_PER_STEP
        + microbatches * transitions_per_microbatch(mode, layers)
        + executions * len(CHUNK_END)
    )


def epoch_transitions(
    *, mode: str, layers: int, steps: int, microbatches: int, executions: int, groups: int = 1
) -> int:
    """``StateEntered`` events of one epoch, its Standard execution and its ``executions``
    Express chunks together (what the epoch would be billed on Standard alone):
    ``1 + 3·P + G + 2 + 3·S + M·t_mb``."""
    return standard_epoch_transitions(
        steps=steps, microbatches=microbatches, executions=executions, groups=groups
    ) + express_epoch_transitions(
        mode=mode, layers=layers, steps=steps, microbatches=microbatches, executions=executions
    )


def epoch_functions() -> tuple[str, ...]:
    """Every function an epoch invokes, in workflow order: Plan, the micro-batch functions of
    both modes, Update, then EvaluateShards and Evaluate."""
    found = functions(EPOCH_START)
    for mode in MODES:
        found += [f for f in microbatch_functions(mode, 1) if f not in found]
    found += functions(STEP_PATH) + functions(execution_end(1))
    return tuple(found)


def run_functions() -> tuple[str, ...]:
    """The functions a run invokes before and after its epochs: Initialize, CheckShards and
    PrepareShards (once per group of shards), Start, Finalize, Register, Promote."""
    return tuple(functions(run_start(1)) + functions(RUN_END))


def failure_functions() -> tuple[str, ...]:
    """The functions only a failed run invokes: MarkFailed (Finalize, for a diverged run's last
    good model, is a run function already)."""
    return tuple(f for f in functions(FAILURE_PATH) if f not in run_functions())


EPOCH_FUNCTIONS: Final = epoch_functions()
RUN_FUNCTIONS: Final = run_functions()
FAILURE_FUNCTIONS: Final = failure_functions()
RESUME_FUNCTIONS: Final = tuple(functions(RESUMED_START))  # a stopped run's resume: Resume
