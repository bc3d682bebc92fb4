"""Tune the deployment's limits for one test, the way a deployment does: through the functions'
environment (``trainer.contract.environment``), never by patching module constants."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from trainer import settings
from trainer.contract.environment import VARIABLES


@contextmanager
def tuned_limits(**limits: int) -> Iterator[None]:
    """Set ``history_event_budget=…``, ``inline_limit_bytes=…`` (any ``Limits`` field) in the
    environment; handlers see them from their next store or limits lookup, until the block ends."""
    with pytest.MonkeyPatch.context() as patch:
        for field, value in limits.items():
            patch.setenv(VARIABLES[field], str(value))
        settings.install(None)
        try:
            yield
        finally:
            settings.install(None)
