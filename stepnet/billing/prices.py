"""AWS prices the cost model uses: one place, each with its source; a price change is one edit.

As collected in aws-facts.md (the project's reference notes, from AWS pricing pages and
2025–2026 write-ups), us-east-1. Prices move: confirm them on the AWS pricing pages before
quoting a number to anyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

REGION: Final = "us-east-1"
SOURCE: Final = "as collected in aws-facts.md, 2025–2026 write-ups, us-east-1"
RECORDED: Final = "2026-11-23"


@dataclass(frozen=True)
class Price:
    """``usd`` per ``per`` units of ``unit``."""

    usd: float
    per: int
    unit: str
    source: str

    @property
    def each(self) -> float:
        """Dollars per single unit."""
        return self.usd / self.per


PRICES: Final[dict[str, Price]] = {
    "stepfunctions_standard_transition": Price(
        0.025, 1_000, "state transitions (retries count)", "Step Functions Standard"
    ),
    "stepfunctions_express_request": Price(
        1.00, 1_000_000, "Express executions (requests)", "Step Functions Express"
    ),
    "stepfunctions_express_gb_second": Price(
        0.00001667,
        1,
        "GB-second of Express duration (64 MB, 100 ms granularity)",
        "Step Functions Express",
    ),
    "lambda_request": Price(0.20, 1_000_000, "Lambda requests", "Lambda"),
    "lambda_gb_second_arm64": Price(0.0000133334, 1, "Lambda GB-second, arm64", "Lambda"),
    "lambda_gb_second_x86_64": Price(0.0000166667, 1, "Lambda GB-second, x86_64", "Lambda"),
    "dynamodb_write_request_unit": Price(
        0.625,
        1_000_000,
        "DynamoDB on-demand WRU (1 per 1 KB per item written)",
        "DynamoDB on-demand",
    ),
    "dynamodb_read_request_unit": Price(
        0.125,
        1_000_000,
        "DynamoDB on-demand RRU (1 per 4 KB per item, strongly consistent)",
        "DynamoDB on-demand",
    ),
    "s3_put_request": Price(0.005, 1_000, "S3 Standard PUT/COPY/POST/LIST requests", "S3"),
    "s3_get_request": Price(0.0004, 1_000, "S3 Standard GET/HEAD requests", "S3"),
    "cloudwatch_logs_ingested_gb": Price(
        0.50,
        1,
        "GB of log events ingested (Standard log class; vended Step Functions logs start at it)",
        "CloudWatch Logs pricing, us-east-1 (write-ups of 2026)",
    ),
    "xray_trace_recorded": Price(
        5.00, 1_000_000, "X-Ray traces recorded (one per traced request)", "X-Ray pricing page"
    ),
    "sns_publish": Price(0.50, 1_000_000, "SNS publishes", "SNS (as given in the issue)"),
    "ec2_m5_large_hour": Price(0.096, 1, "m5.large on-demand hour, Linux", "EC2 on-demand"),
}


def each(name: str) -> float:
    """Dollars per single unit of the named price."""
    return PRICES[name].each


def as_table() -> list[dict[str, object]]:
    """The prices as rows (for JSON reports and docs)."""
    return [
        {"name": name, "usd": p.usd, "per": p.per, "unit": p.unit, "source": p.source}
        for name, p in PRICES.items()
    ]
