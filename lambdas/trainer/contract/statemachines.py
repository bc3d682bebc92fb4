"""The state machines: which ASL files, what each one names, and how its placeholders are filled.

The ASL files in ``statemachine/`` are the source of truth, shipped as the package data of
``trainer.contract.statemachine``. Every ARN in them is a ``${Name}`` placeholder:
``${<Logical>FunctionArn}`` for a function of :data:`trainer.contract.functions.FUNCTIONS`,
``${<Logical>StateMachineArn}`` for another machine of :data:`STATE_MACHINES` (a machine names
itself with ``$$.StateMachine.Id``: its own ARN would be a circular reference in CloudFormation).

The stack (``infra/workflow.py``, which also derives each machine's IAM from
:func:`read_references`) and the local engine (``stepnet/engine/account.py``) read the same
definitions, create the machines in the same :func:`creation_order` and fill the placeholders
with the same :func:`substitutions`; the engine renders them with :func:`render`, CloudFormation
with ``DefinitionSubstitutions``.

Pure (stdlib only): importable without CDK.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from importlib import resources
from typing import Any, Final, Literal

from trainer.contract.functions import FUNCTIONS

PACKAGE: Final = "trainer.contract.statemachine"  # statemachine/, mapped in pyproject.toml

MachineType = Literal["STANDARD", "EXPRESS"]
LogLevel = Literal["ALL", "ERROR", "FATAL", "OFF"]  # Step Functions' LoggingConfiguration.level


@dataclass(frozen=True)
class StateMachineSpec:
    """One state machine: its ASL file (in :data:`PACKAGE`), its type, and what it logs to
    CloudWatch Logs (``log_level``: which history events; ``log_execution_data``: with their
    inputs, outputs, errors and causes).

    Standard machines keep their whole history in Step Functions, where the console shows it
    (90 days), so they log only failures (``ERROR``: a failed execution's cause is in the log
    too). Express machines keep no history: the console shows an Express execution only from
    its log, so the Steps machine logs every event (``ALL``; at ``ERROR`` a chunk that
    succeeded would show nothing of its steps) with execution data (without it, no step's
    input and output: which step, which weights version, its losses)."""

    file: str
    type: MachineType = "STANDARD"
    log_level: LogLevel = "ERROR"
    log_execution_data: bool = True


# Their order here means nothing: machines are created in creation_order().
STATE_MACHINES: Final[Mapping[str, StateMachineSpec]] = {
    # initialize, then one Epoch child execution per epoch, evaluate it; export the model
    "Training": StateMachineSpec("training.asl.json"),
    # one execution per epoch, <run_id>-epoch-NNN: plans, runs its steps in chunks, evaluates
    "Epoch": StateMachineSpec("epoch.asl.json"),
    # one chunk of an epoch's steps, <run_id>-epoch-NNN-part-MM: Express (billed per request
    # and GB-second, not per transition), sized to stay far below its 5-minute limit; logged in
    # full, which is how the console shows it
    "Steps": StateMachineSpec("steps.asl.json", "EXPRESS", log_level="ALL"),
    # retrain a pipeline on an uploaded dataset (or on a schedule): one run at a time per
    # pipeline, each a Training execution (trainer.registry.retrain)
    "Retrain": StateMachineSpec("retrain.asl.json"),
}

PLACEHOLDER: Final = re.compile(r"\$\{(\w+)\}")
FUNCTION_ARN: Final = "FunctionArn"
STATE_MACHINE_ARN: Final = "StateMachineArn"
START_EXECUTION: Final = "arn:aws:states:::states:startExecution"
# How a definition names the machine it runs in: JSONPath, and JSONata.
OWN_ARN: Final = re.compile(
    r"^(\$\$\.StateMachine\.Id|\{%\s*\$states\.context\.StateMachine\.Id\s*%\})$"
)


def function_placeholder(logical: str) -> str:
    """The placeholder a definition names a function by, e.g. ``ForwardFunctionArn``."""
    return f"{logical}{FUNCTION_ARN}"


def machine_placeholder(logical: str) -> str:
    """The placeholder a definition names another machine by, e.g. ``EpochStateMachineArn``."""
    return f"{logical}{STATE_MACHINE_ARN}"


def definition_text(logical: str) -> str:
    """A machine's ASL file, as shipped (placeholders unfilled)."""
    file = STATE_MACHINES[logical].file
    return resources.files(PACKAGE).joinpath(file).read_text(encoding="utf-8")


@dataclass(frozen=True)
class References:
    """What one ASL file needs from the rest of the stack."""

    functions: frozenset[str]  # ${<Logical>FunctionArn}
    machines: frozenset[str]  # ${<Logical>StateMachineArn}
    started: frozenset[str]  # machines its startExecution tasks start, itself included
    awaited: frozenset[str]  # those of them it waits for (.sync, .sync:2)

    def placeholders(self) -> frozenset[str]:
        """Every placeholder of the file."""
        return frozenset(
            {function_placeholder(f) for f in self.functions}
            | {machine_placeholder(m) for m in self.machines}
        )


def _named(placeholder: str, suffix: str, known: Mapping[str, object]) -> str | None:
    """The logical name in `<Logical><suffix>`, if it is one of `known`."""
    logical = placeholder.removesuffix(suffix)
    return logical if placeholder.endswith(suffix) and logical in known else None


def read_references(logical: str, text: str | None = None) -> References:
    """What machine ``logical``'s definition (``text``, else its packaged file) names: the
    functions it invokes, the machines whose ARNs it needs, and the machines it starts.

    Fails on what the stack could not fill or grant: an unknown placeholder, the machine's own
    ARN as a placeholder, a started machine it cannot identify, a Distributed Map."""
    source = STATE_MACHINES[logical].file if logical in STATE_MACHINES else logical
    if text is None:
        text = definition_text(logical)
    functions: set[str] = set()
    machines: set[str] = set()
    for name in set(PLACEHOLDER.findall(text)):
        function = _named(name, FUNCTION_ARN, FUNCTIONS)
        machine = _named(name, STATE_MACHINE_ARN, STATE_MACHINES)
        if function:
            functions.add(function)
        elif machine == logical:
            raise ValueError(
                f"{source}: ${{{name}}} is the machine's own ARN, a circular reference in "
                "CloudFormation; use $$.StateMachine.Id"
            )
        elif machine:
            machines.add(machine)
        else:
            raise ValueError(
                f"{source}: unknown placeholder ${{{name}}}; expected ${{<Logical>{FUNCTION_ARN}}} "
                f"for {sorted(FUNCTIONS)} or ${{<Logical>{STATE_MACHINE_ARN}}} for "
                f"{sorted(STATE_MACHINES)}"
            )
    started: set[str] = set()
    awaited: set[str] = set()
    for state_name, task in tasks(json.loads(text)["States"], source):
        resource = str(task.get("Resource", ""))
        if resource.startswith(START_EXECUTION):
            target = _started_machine(logical, task, f"{source}: state {state_name!r}")
            started.add(target)
            if resource.removeprefix(START_EXECUTION).startswith(".sync"):
                awaited.add(target)
    return References(
        functions=frozenset(functions),
        machines=frozenset(machines),
        started=frozenset(started),
        awaited=frozenset(awaited),
    )


def tasks(states: Mapping[str, Any], source: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every Task state (name, state) of ``states``, inside inline Maps and Parallels too."""
    for name, state in states.items():
        if state.get("Type") == "Task":
            yield name, state
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            if processor.get("ProcessorConfig", {}).get("Mode") == "DISTRIBUTED":
                raise ValueError(
                    f"{source}: state {name!r} is a Distributed Map, whose permissions "
                    "infra/workflow.py does not derive yet"
                )
            yield from tasks(processor["States"], source)
        for branch in state.get("Branches", []):
            yield from tasks(branch["States"], source)


def _started_machine(logical: str, task: Mapping[str, Any], where: str) -> str:
    parameters = task.get("Parameters") or task.get("Arguments") or {}
    arn = parameters.get("StateMachineArn", parameters.get("StateMachineArn.$", ""))
    if OWN_ARN.match(arn):
        return logical
    placeholder = PLACEHOLDER.fullmatch(arn)
    started = placeholder and _named(placeholder[1], STATE_MACHINE_ARN, STATE_MACHINES)
    if started:
        return started
    raise ValueError(
        f"{where}: cannot tell which state machine it starts from {arn!r}; use "
        f"${{<Logical>{STATE_MACHINE_ARN}}} or $$.StateMachine.Id"
    )


def all_references() -> dict[str, References]:
    """:func:`read_references` of every machine of :data:`STATE_MACHINES`."""
    return {logical: read_references(logical) for logical in STATE_MACHINES}


def creation_order(references: Mapping[str, References] | None = None) -> list[str]:
    """Children before parents, so that a parent can be given its children's ARNs
    (``references``: :func:`all_references` unless given)."""
    if references is None:
        references = all_references()
    graph = {logical: references[logical].machines for logical in sorted(references)}
    try:
        return list(TopologicalSorter(graph).static_order())
    except CycleError as error:
        raise ValueError(f"state machines name each other in a cycle: {error.args[1]}") from None


def substitutions(
    references: References, function_arns: Mapping[str, str], machine_arns: Mapping[str, str]
) -> dict[str, str]:
    """Placeholder -> ARN for exactly the placeholders of one definition, from the ARNs of the
    functions and of the machines created so far; a missing ARN fails."""
    values: dict[str, str] = {}
    for kind, needed, arns, placeholder in (
        ("function", references.functions, function_arns, function_placeholder),
        ("state machine", references.machines, machine_arns, machine_placeholder),
    ):
        missing = sorted(needed - set(arns))
        if missing:
            raise ValueError(f"no {kind} ARN for {missing} (create children first)")
        values |= {placeholder(logical): arns[logical] for logical in sorted(needed)}
    return values


def render(text: str, values: Mapping[str, str]) -> str:
    """``text`` with every ``${Name}`` placeholder replaced by ``values[Name]``, as
    CloudFormation fills ``DefinitionSubstitutions``; a placeholder without a value fails."""
    missing = sorted(set(PLACEHOLDER.findall(text)) - set(values))
    if missing:
        raise ValueError(f"no substitution for placeholders {missing}")
    return PLACEHOLDER.sub(lambda match: values[match[1]], text)
