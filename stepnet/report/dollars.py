"""The one seam between the report and the cost model (:mod:`stepnet.billing`).

A report knows, from the execution histories, the state transitions and the Lambda tasks (each
task's function and duration); :func:`bill` turns them into dollars with the billing package's
own prices and rules (``standard_bill``: the stack as built, Standard machines). If the billing
API changes, this module is the one edit.

Store requests (DynamoDB, S3) are not in the histories: :data:`NOT_COUNTED` says so on the page.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from stepnet.billing.bills import standard_bill
from stepnet.billing.report import usd
from stepnet.billing.usage import FunctionUsage, Usage
from stepnet.report.history import billed_ms

NOT_COUNTED: Final = (
    "DynamoDB and S3 requests are not in the execution histories and are not counted here "
    "(`stepnet cost CONFIG` estimates them). Lambda durations are as the histories have them "
    "(task started to ended, each rounded up to 1 ms): on AWS an upper bound of Lambda's billed "
    "duration; on the local engine, this machine's durations, not Lambda's."
)


@dataclass(frozen=True)
class Dollars:
    """A bill: its items (name -> $) and their total."""

    items: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.items.values())

    def text(self) -> str:
        """``$0.0012``, as ``stepnet cost`` prints dollars."""
        return usd(self.total)


def bill(
    transitions: int,
    tasks: Iterable[tuple[str, float]],
    memory_mb: Mapping[str, int],
) -> Dollars:
    """Standard state transitions, plus per Lambda task ``(logical function, seconds)`` its
    request and its GB-seconds (``billed ms × memory``), priced by :mod:`stepnet.billing`;
    items that cost nothing here (the store's) are left out."""
    functions: dict[str, FunctionUsage] = {}
    for function, duration in tasks:
        one = functions.setdefault(function, FunctionUsage())
        one.invocations += 1
        one.billed_ms += billed_ms(duration)
    usage = Usage(transitions=float(transitions), functions=functions)
    items = standard_bill(usage, "measured", dict(memory_mb)).items
    return Dollars({name: value for name, value in items.items() if value > 0})
