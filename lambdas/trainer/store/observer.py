"""What a tensor store tells an observer: every bundle written and every read asked for.

:class:`~trainer.store.tensors.TensorStore` calls its observers from the thread that made the
call (``put`` after the write succeeded; ``get``/``get_many`` before the in-process cache is
consulted, so a read is reported whether or not it reaches DynamoDB). The billing code
implements the protocol twice: ``stepnet.billing.meter.Meter`` (on the real store, in the local
engine) and ``stepnet.billing.dryrun`` (on a store of shapes), so both charge the same events by
the same rules. Observers must be cheap and thread-safe, and never raise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

Item = dict[str, Any]  # a DynamoDB item in the low-level client's typed form ({"S": ...}, ...)


class StoreObserver(Protocol):
    def on_put(
        self, key: str, item: Item, *, encoded_bytes: int, spilled: bool, scratch: bool
    ) -> None:
        """A bundle was written under ``key``: ``item`` is the tensors-table item exactly as
        written (an inline item carries the ``encoded_bytes`` of the bundle as its payload; a
        spilled item points to the S3 object that holds them instead); ``scratch``: it expires."""

    def on_get(self, keys: Sequence[str], *, batch: bool) -> None:
        """Bundles were asked for: one ``get`` (``batch=False``) or one ``get_many``
        (``batch=True``, keys in the order asked, duplicates included)."""
