"""A local run's life in a home: who runs it, whether it may start, how it ended.

``stepnet local`` records its process as the run's owner (pid and host, ``HomeRuns.set_owner``)
when it starts the run, refuses a run id the home holds already (:func:`check_new_run`), and
records a failed run's cause (:func:`record_failure`). A run recorded RUNNING whose owner is gone
was killed: :func:`run_state` says ``INTERRUPTED``.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Mapping
from typing import Any

from stepnet.home import Home
from trainer.store import RunNotFoundError

INTERRUPTED = "INTERRUPTED"


class RunInHomeError(Exception):
    """A run id that the home holds already (``stepnet local`` refuses to start it again)."""

    def __init__(self, run_id: str, message: str) -> None:
        self.run_id = run_id
        super().__init__(message)


def check_new_run(home: Home, run_id: str) -> None:
    """Refuse a run id the home holds already, naming its state and what to do: a finished
    run is reported (``stepnet show``), another one replaced with ``--replace``."""
    if run_id not in home.runs.list_runs():
        return
    state = run_state(home, run_id)
    if state == "RUNNING":
        owner = home.runs.owner(run_id) or {}
        raise RunInHomeError(
            run_id,
            f"run {run_id!r} is running (process {owner.get('pid')} on {owner.get('host')}); "
            "wait for it, or choose another run_id",
        )
    raise RunInHomeError(
        run_id,
        f"run {run_id!r} exists in {home.path} ({state}); see it with `stepnet show {run_id}`, "
        "or train it again from the start with --replace",
    )


def check_resumable(home: Home, run_id: str) -> None:
    """Refuse to resume a run that a live process runs (another ``stepnet local`` or
    ``stepnet resume``); the rest is the client's to judge (``StepnetClient.resume``)."""
    if run_id in home.runs.list_runs() and run_state(home, run_id) == "RUNNING":
        owner = home.runs.owner(run_id)
        if owner is not None:
            raise RunInHomeError(
                run_id,
                f"run {run_id!r} is running (process {owner['pid']} on {owner['host']}); "
                "wait for it, or stop that process before resuming",
            )


def run_state(home: Home, run_id: str) -> str:
    """The run's status as recorded (``RUNNING``, ``SUCCEEDED``, ``FAILED``…; ``CREATED``
    before its dataset is prepared), and ``INTERRUPTED`` for a run recorded RUNNING whose owning
    process, on this host, is gone (killed: it can only be replaced, or resumed)."""
    try:
        status = str(home.runs.get_status(run_id)["status"])
    except RunNotFoundError:
        status = "CREATED"
    if status in ("RUNNING", "CREATED"):
        owner = home.runs.owner(run_id)
        if owner is not None and owner["host"] == socket.gethostname() and not alive(owner):
            return INTERRUPTED
    return status


def claim(home: Home, run_id: str) -> None:
    """Record this process as the run's owner (``HomeRuns.set_owner``)."""
    pid = os.getpid()
    home.runs.set_owner(run_id, pid, socket.gethostname(), process_start(pid))


def process_start(pid: int) -> str | None:
    """When process ``pid`` started, in clock ticks since boot (``/proc/PID/stat``, field 22),
    or None where there is no /proc or no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    return stat.rpartition(b")")[2].split()[19].decode()  # fields 3… follow the command name


def alive(owner: Mapping[str, Any]) -> bool:
    """Whether the owner process (on this host) still runs: its pid exists and, where the start
    time was recorded, started then (a pid is reused once its process is gone)."""
    pid = int(owner["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    recorded = owner.get("process_start")
    return recorded is None or process_start(pid) in (None, recorded)


def record_failure(home: Home, run_id: str, description: Mapping[str, Any]) -> None:
    """A run whose Training execution did not succeed: FAILED, with the execution's cause
    (unless its workflow recorded its failure itself)."""
    from trainer.executions import readable_cause

    try:
        current = home.runs.get_status(run_id)
    except RunNotFoundError:
        current = {}
    if current.get("status") not in (None, "RUNNING"):
        return
    kept = {k: v for k, v in current.items() if k not in ("status", "updated_at")}  # attempt…
    with contextlib.suppress(RunNotFoundError):
        home.runs.get_config_json(run_id)
        home.runs.set_status(
            run_id, "FAILED", **kept | {"cause": readable_cause(dict(description)),
            "execution_status": str(description["status"])},
        )  # fmt: skip
