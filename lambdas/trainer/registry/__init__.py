"""The model registry: pipelines, model versions and promotion.

A run names a ``pipeline`` (config field; default: its run id). When it finishes, the Training
workflow's last stage registers its model in that pipeline (**Register model**) and promotes it
if its run's rule says so (**Promote if better**: ``promote_if``, a metric and a margin), which
replaces the pipeline's production record and the production pointer the inference function
serves (``models/<pipeline>/production.json``, ``inference.pointer``). People promote a run
or roll a pipeline back with ``stepnet promote`` / ``stepnet rollback``, through the same code.

* :mod:`~trainer.registry.records`: the records as values and the rules that read them (pure);
* :mod:`~trainer.registry.service`: registering, deciding, promoting, rolling back, on a store
  (every store call through ``trainer.dal``).

Where the records live: ``trainer.store.registry`` (the runs table, one partition per pipeline).
This package imports nothing at import time, so that ``trainer.dal`` can import the records.
"""
