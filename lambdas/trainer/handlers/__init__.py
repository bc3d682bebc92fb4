"""Thin Lambda handlers: each is ``run(store, message) -> message`` behind :func:`lambda_edge`.

``run`` holds the logic (load tensors, call the math, store, return keys) and takes any
:class:`~trainer.store.Store`, so tests, the local engine and the cost model call it directly.
"""
