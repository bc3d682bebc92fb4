"""Retraining: what starts it, where its data lands, and its settings — one spelling for the
stack (``infra/triggers.py``), the local engine (``stepnet/engine/account.py``) and the Retrain
function (``trainer.registry.retrain``).

* **The upload rule.** The data bucket sends its events to EventBridge; the rule
  :func:`upload_pattern` matches S3's ``Object Created`` events of the bucket for
  ``datasets/*/*.csv`` and ``.npz`` and starts the ``Retrain`` state machine
  (:data:`TARGET_MACHINE`) with the event as input. A dataset for pipeline ``p`` is one file
  ``datasets/<p>/<name>.csv`` or ``.npz`` (:func:`dataset_upload`); deeper keys the wildcard also
  matches (shards in a sub-folder, the CLI's uploads of a folder) start an execution that
  ignores them after one short Lambda call.
* **Schedules.** A deployment may retrain pipelines on a schedule (CDK context
  ``retrain_schedules``: ``{"<pipeline>": "rate(7 days)" | "cron(…)"}``, checked by
  :func:`retrain_schedules`): a rule per pipeline starts the same machine with
  :func:`schedule_input`, which retrains the registered config on its own dataset.

Pure (stdlib only).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from trainer.contract import names
from trainer.contract.monitoring import SettingError

TARGET_MACHINE: Final = "Retrain"  # the state machine both kinds of rule start
UPLOAD_RULE: Final = "RetrainOnUpload"  # the rule's logical name (stack) and name suffix (engine)
DATASET_SUFFIXES: Final = (".csv", ".npz")
S3_SOURCE: Final = "aws.s3"
OBJECT_CREATED: Final = "Object Created"  # S3's detail-type in EventBridge
SCHEDULE_SOURCE: Final = "stepnet.schedule"  # the `source` field of a schedule's input
_UPLOAD = re.compile(
    rf"^{re.escape(names.S3_DATASETS_PREFIX)}(?P<pipeline>[A-Za-z0-9_-]{{1,64}})/(?P<name>[^/]+)$"
)
_SCHEDULE = re.compile(
    r"^(rate\(\s*[1-9]\d*\s+(minute|minutes|hour|hours|day|days)\s*\)|cron\(.+\))$"
)
_PIPELINE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # trainer.config.PIPELINE_PATTERN (a test checks)
RETRAIN_SCHEDULES_CONTEXT: Final = "retrain_schedules"


def rule_name(prefix: str, logical: str) -> str:
    """An EventBridge rule's name in the local engine's account, e.g. ``stepnet-RetrainOnUpload``
    (the stack lets CloudFormation name its rules)."""
    return f"{prefix}-{logical}"


def upload_pattern(bucket_name: str) -> dict[str, Any]:
    """The EventBridge event pattern of the upload rule: ``.csv`` and ``.npz`` objects created in
    ``bucket_name`` under a folder of ``datasets/``."""
    return {
        "source": [S3_SOURCE],
        "detail-type": [OBJECT_CREATED],
        "detail": {
            "bucket": {"name": [bucket_name]},
            # a wildcard's `*` matches any characters, `/` included: one folder level at least,
            # so a key without a pipeline folder never starts an execution (`stepnet start`
            # uploads under uploads/, names.S3_UPLOADS_PREFIX)
            "object": {
                "key": [
                    {"wildcard": f"{names.S3_DATASETS_PREFIX}*/*{suffix}"}
                    for suffix in DATASET_SUFFIXES
                ]
            },
        },
    }


@dataclass(frozen=True)
class DatasetUpload:
    """A dataset uploaded for a pipeline: ``datasets/<pipeline>/<name>`` (a .csv or .npz file)."""

    pipeline: str
    key: str


def dataset_upload(key: str) -> DatasetUpload | str:
    """The upload ``key`` names, or why it names none (a reason for the record)."""
    match = _UPLOAD.match(key)
    if match is None:
        return (
            f"{key!r} is not a pipeline's dataset: upload one file as "
            f"{names.S3_DATASETS_PREFIX}<pipeline>/<name>{'|'.join(DATASET_SUFFIXES)}"
        )
    if not key.endswith(DATASET_SUFFIXES):
        return f"{key!r} is neither {' nor '.join(DATASET_SUFFIXES)}: not a dataset"
    return DatasetUpload(pipeline=match["pipeline"], key=key)


def schedule_input(pipeline: str) -> dict[str, str]:
    """What a pipeline's schedule rule starts the Retrain machine with."""
    return {"source": SCHEDULE_SOURCE, "pipeline": pipeline}


def retrain_schedules(
    value: object, *, source: str = f'context "{RETRAIN_SCHEDULES_CONTEXT}"'
) -> dict[str, str]:
    """``{"<pipeline>": "rate(…)" | "cron(…)"}`` checked: pipeline names as a config's
    ``pipeline``, EventBridge schedule expressions. ``None`` is no schedule."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SettingError(
            f'{source} must map pipelines to schedules, e.g. {{"digits": "rate(7 days)"}}; '
            f"got {value!r}"
        )
    checked: dict[str, str] = {}
    for pipeline, expression in value.items():
        if not isinstance(pipeline, str) or not _PIPELINE.match(pipeline):
            raise SettingError(
                f"{source}: {pipeline!r} is not a pipeline name (1-64 of A-Z a-z 0-9 - _)"
            )
        if not isinstance(expression, str) or not _SCHEDULE.match(expression.strip()):
            raise SettingError(
                f"{source}: {pipeline}: {expression!r} is not an EventBridge schedule; "
                "use rate(<n> minutes|hours|days) or cron(<6 fields>)"
            )
        checked[pipeline] = expression.strip()
    return checked
