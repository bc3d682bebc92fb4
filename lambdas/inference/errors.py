"""What can go wrong when predicting, as exceptions whose message is the reason to show.

* :class:`InputError`: the caller's rows cannot be used (an HTTP 400, or an ``.error.json`` file
  beside the batch output); the message names the row / column and the fix.
* :class:`NoModelError`: the pipeline has no production model (an HTTP 404).
* :class:`ModelError`: the production model's files are missing or inconsistent (a deployment or
  registry mistake: an HTTP 500 / an error file, never the caller's fault).
"""

from __future__ import annotations


class InputError(ValueError):
    """Rows that cannot be predicted; the message says what is wrong, where, and the fix."""


class NoModelError(LookupError):
    """No production model is recorded for the pipeline."""


class ModelError(RuntimeError):
    """A model's files are missing, unreadable or disagree with each other."""
