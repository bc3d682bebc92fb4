"""A run record summed up: per epoch its executions, transitions, Lambda tasks, time and dollars;
per state machine how often each state ran and for how long.

The machines are the contract's (:data:`trainer.contract.statemachines.STATE_MACHINES`, their
ASL files read as package data), whatever they are: an execution belongs to the machine whose
definition has every state its history entered.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stepnet.report.dollars import Dollars, bill
from stepnet.report.history import (
    HistoryEvent,
    LambdaTask,
    StateStats,
    lambda_tasks,
    logical_function,
    state_name,
    state_stats,
    wall_seconds,
)
from stepnet.report.record import RunRecord
from trainer.contract.statemachines import STATE_MACHINES, definition_text

if TYPE_CHECKING:
    from stepnet.client import MetricsRow


def definitions() -> dict[str, dict[str, Any]]:
    """Every state machine of the contract: logical name -> its ASL definition."""
    return {logical: json.loads(definition_text(logical)) for logical in STATE_MACHINES}


def states_of(definition: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every state (name, state) of a definition, inside Maps (``ItemProcessor`` or
    ``Iterator``) and Parallels (``Branches``) too."""
    for name, state in definition.get("States", {}).items():
        yield name, state
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from states_of(processor)
        for branch in state.get("Branches", []):
            yield from states_of(branch)


def machine_of(events: Sequence[HistoryEvent], machines: Mapping[str, Mapping[str, Any]]) -> str:
    """The machine whose definition has every state the history entered (the smallest such),
    or ``""`` if none has (or the history entered no state)."""
    entered = {name for event in events if (name := state_name(event)) is not None}
    if not entered:
        return ""
    fitting = [
        (len(names), logical)
        for logical, definition in machines.items()
        if entered <= (names := {name for name, _ in states_of(definition)})
    ]
    return min(fitting)[1] if fitting else ""


@dataclass(frozen=True)
class Counts:
    """What some executions did: transitions (states entered), Lambda tasks, time, dollars."""

    executions: int
    transitions: int
    tasks: list[LambdaTask]
    seconds: float  # wall time, summed over the executions
    dollars: Dollars

    @property
    def lambda_tasks(self) -> int:
        return len(self.tasks)


def counts(histories: Sequence[Sequence[HistoryEvent]], memory_mb: Mapping[str, int]) -> Counts:
    """:class:`Counts` of the given histories; their Lambda tasks priced at ``memory_mb``."""
    transitions = sum(
        1 for events in histories for event in events if event["type"].endswith("StateEntered")
    )
    tasks = [task for events in histories for task in lambda_tasks(events)]
    priced = [(logical_function(task.function, memory_mb), task.seconds) for task in tasks]
    return Counts(
        executions=len(histories),
        transitions=transitions,
        tasks=tasks,
        seconds=sum(wall_seconds(events) for events in histories),
        dollars=bill(transitions, priced, memory_mb),
    )


@dataclass(frozen=True)
class EpochRow:
    """One epoch: its metrics (if it was evaluated) and what its executions did."""

    epoch: int
    metrics: MetricsRow | None
    counts: Counts


@dataclass(frozen=True)
class MachineStats:
    """One state machine: its definition, its executions in the run, per state the stats."""

    logical: str
    definition: dict[str, Any]
    executions: int = 0
    states: dict[str, StateStats] = field(default_factory=dict)


@dataclass(frozen=True)
class Summary:
    record: RunRecord
    epochs: list[EpochRow]  # every epoch with an execution or a metrics row, in order
    run: Counts  # the Training execution's own (its states, the Lambdas around the epochs)
    machines: list[MachineStats]

    @property
    def total(self) -> Dollars:
        items: dict[str, float] = {}
        for part in (self.run, *(row.counts for row in self.epochs)):
            for name, value in part.dollars.items.items():
                items[name] = items.get(name, 0.0) + value
        return Dollars(items)


def summarize(record: RunRecord) -> Summary:
    """The record's numbers, per epoch, for the run, and per state machine and state."""
    by_epoch: dict[int, list[list[HistoryEvent]]] = {}
    for name, events in record.histories.items():
        epoch = record.epoch_of(name)
        if epoch is not None:
            by_epoch.setdefault(epoch, []).append(events)
    metrics = {int(row["epoch"]): row for row in record.metrics}
    epochs = [
        EpochRow(epoch, metrics.get(epoch), counts(by_epoch.get(epoch, []), record.memory_mb))
        for epoch in sorted(set(by_epoch) | set(metrics))
    ]
    machines = definitions()
    stats = {logical: MachineStats(logical, definition) for logical, definition in machines.items()}
    for events in record.histories.values():
        logical = machine_of(events, machines)
        if not logical:
            continue
        found = stats[logical]
        merged = dict(found.states)
        for state, value in state_stats(events).items():
            merged[state] = merged.get(state, StateStats()) + value
        stats[logical] = MachineStats(logical, found.definition, found.executions + 1, merged)
    return Summary(
        record=record,
        epochs=epochs,
        run=counts([record.training] if record.training else [], record.memory_mb),
        machines=list(stats.values()),
    )
