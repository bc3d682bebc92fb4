"""stepnet's inference function: a trained model's predictions, online and for files in S3.

Numpy only. It reuses :mod:`trainer.nn` for the forward pass (so the math has one spelling) and
nothing else of ``trainer``: the Lambda bundle is numpy + ``trainer/__init__.py`` +
``trainer/nn/`` + ``inference/`` (boto3 comes with the Lambda runtime). ``stepnet predict`` runs
the same code on a local model folder.

Modules: :mod:`~inference.model` (a model from ``model.npz`` + ``model.json``, its forward pass),
:mod:`~inference.rows` (inputs: JSON rows, CSV, ``.npz``, and their limits),
:mod:`~inference.output` (the prediction CSV and JSON), :mod:`~inference.pointer` (the
production-model pointer), :mod:`~inference.cache` (the loaded model, per container),
:mod:`~inference.settings` (the function's environment), :mod:`~inference.handlers` (the
Lambda entry points ``online`` and ``batch``).
"""
