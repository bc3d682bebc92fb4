"""A checker of CloudWatch's Embedded Metric Format (EMF) specification, for the documents the
functions write (docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/
CloudWatch_Embedded_Metric_Format_Specification.html):

* the root is a JSON object with ``_aws``: ``Timestamp`` (epoch milliseconds, a number) and
  ``CloudWatchMetrics``, an array of metric directives;
* a directive has ``Namespace`` (1-255 characters), ``Dimensions`` (an array of dimension sets:
  arrays of at most 30 strings) and ``Metrics`` (at most 100 definitions: ``Name`` 1-255
  characters, an optional ``Unit`` among CloudWatch's units, an optional ``StorageResolution``
  of 1 or 60);
* every referenced dimension is a root member whose value is a string (at most 1,024
  characters); every metric is a root member whose value is a number or an array of at most
  100 numbers.
"""

from __future__ import annotations

import json
from typing import Any, Final

UNITS: Final = frozenset(
    {
        "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes",
        "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
        "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second",
        "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second",
        "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
    }
)  # fmt: skip


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def problems(line: str) -> list[str]:
    """What makes ``line`` (one log event) not a valid EMF document; [] if it is one."""
    try:
        root = json.loads(line)
    except ValueError as error:
        return [f"not JSON: {error}"]
    if not isinstance(root, dict) or not isinstance(root.get("_aws"), dict):
        return ["the root must be an object with an _aws object"]
    meta = root["_aws"]
    found: list[str] = []
    if not _number(meta.get("Timestamp")):
        found.append("_aws.Timestamp must be a number (epoch milliseconds)")
    directives = meta.get("CloudWatchMetrics")
    if not isinstance(directives, list) or not directives:
        return [*found, "_aws.CloudWatchMetrics must be a non-empty array"]
    for d in directives:
        namespace = d.get("Namespace")
        if not isinstance(namespace, str) or not 1 <= len(namespace) <= 255:
            found.append(f"Namespace {namespace!r} must be 1-255 characters")
        for dimension_set in d.get("Dimensions", []):
            if not isinstance(dimension_set, list) or len(dimension_set) > 30:
                found.append(f"dimension set {dimension_set!r}: an array of at most 30 names")
                continue
            for name in dimension_set:
                value = root.get(name)
                if not isinstance(value, str) or len(value) > 1024:
                    found.append(f"dimension {name!r} must be a root member holding a string")
        metrics = d.get("Metrics")
        if not isinstance(metrics, list) or len(metrics) > 100:
            found.append("Metrics must be an array of at most 100 definitions")
            continue
        for metric in metrics:
            name = metric.get("Name")
            if not isinstance(name, str) or not 1 <= len(name) <= 255:
                found.append(f"metric name {name!r} must be 1-255 characters")
                continue
            if "Unit" in metric and metric["Unit"] not in UNITS:
                found.append(f"{name}: unit {metric['Unit']!r} is not a CloudWatch unit")
            if metric.get("StorageResolution", 60) not in (1, 60):
                found.append(f"{name}: StorageResolution must be 1 or 60")
            value = root.get(name)
            values = value if isinstance(value, list) else [value]
            if not values or len(values) > 100 or not all(_number(v) for v in values):
                found.append(f"{name} must be a root member holding a number or up to 100")
    return found


def documents(output: str) -> list[dict[str, Any]]:
    """The EMF documents among ``output``'s lines (those with an ``_aws`` member)."""
    found = []
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            found.append(json.loads(line))
    return found
