"""Where batch inference reads and writes in the bucket: the one spelling of its keys.

::

    inference/<pipeline>/in/<name>.csv | .npz     uploaded rows (the S3 trigger's prefix)
    inference/<pipeline>/out/<name>.csv           their predictions (inference.output)
    inference/<pipeline>/out/<name>.error.json    or why there are none

``<name>`` may contain ``/`` (sub-folders under ``in/`` are mirrored under ``out/``). An input
with another suffix gets ``out/<name with its suffix>.error.json``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

INFERENCE_PREFIX = "inference/"
IN, OUT = "in/", "out/"
ERROR_SUFFIX = ".error.json"
SUFFIXES = (".csv", ".npz")
_INPUT = re.compile(r"^inference/(?P<pipeline>[A-Za-z0-9_-]{1,64})/in/(?P<name>.*[^/])$")


@dataclass(frozen=True)
class BatchInput:
    """An uploaded input file: ``inference/<pipeline>/in/<name>``."""

    pipeline: str
    name: str  # the file name under in/, with its suffix

    @property
    def key(self) -> str:
        return f"{INFERENCE_PREFIX}{self.pipeline}/{IN}{self.name}"

    @property
    def stem(self) -> str:
        """``name`` without a ``.csv``/``.npz`` suffix (any other suffix is kept)."""
        lower = self.name.lower()
        for suffix in SUFFIXES:
            if lower.endswith(suffix):
                return self.name[: -len(suffix)]
        return self.name

    @property
    def output_key(self) -> str:
        return f"{INFERENCE_PREFIX}{self.pipeline}/{OUT}{self.stem}.csv"

    @property
    def error_key(self) -> str:
        return f"{INFERENCE_PREFIX}{self.pipeline}/{OUT}{self.stem}{ERROR_SUFFIX}"


def batch_input(key: str) -> BatchInput | None:
    """The input a bucket key names, or None if the key is not under ``inference/<p>/in/``."""
    match = _INPUT.match(key)
    if match is None:
        return None
    return BatchInput(pipeline=match["pipeline"], name=match["name"])
