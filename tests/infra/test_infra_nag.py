"""cdk-nag's AwsSolutions pack: nothing unacknowledged, and every acknowledgment says why.

cdk-nag v3 is a policy-validation plugin (app.py: `Validations.of(app).add_plugins(...)`): it
reports through the synth's validation report, not through annotations, and fails the synth on
any error or warning it was not told about through `Validations.of(construct).acknowledge`.
"""

import re
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Annotations, Match
from cdk_nag import AwsSolutionsChecks

pytestmark = pytest.mark.infra


def _findings(scope: Any) -> list[str]:
    report = AwsSolutionsChecks(verbose=True).validate_scope(scope)
    return [
        f"{v.severity} {v.rule_name} at {[r.construct_path for r in v.violating_resources]}: "
        f"{v.description}"
        for v in report.violations
    ]


def test_no_unacknowledged_aws_solutions_error_or_warning(stack: Any) -> None:
    # Given the stack as app.py builds it
    # When
    findings = _findings(stack)

    # Then
    assert findings == []
    annotations = Annotations.from_stack(stack)
    aws_solutions = Match.string_like_regexp("AwsSolutions-.*")
    assert annotations.find_error("*", aws_solutions) == []
    assert annotations.find_warning("*", aws_solutions) == []


def test_the_checks_do_report_an_unacknowledged_finding() -> None:
    # Given a bucket that neither logs its access nor enforces TLS
    stack = cdk.Stack(cdk.App(), "Bare")
    s3.Bucket(stack, "Plain")

    # When
    findings = _findings(stack)

    # Then
    assert any("AwsSolutions-S1 " in finding for finding in findings), findings
    assert any("AwsSolutions-S10 " in finding for finding in findings), findings


def test_every_acknowledgment_is_precise_and_says_why(stack: Any) -> None:
    # Given every acknowledgment recorded in the construct tree
    key = cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    acknowledgments = {
        (construct.node.path, rule): reason
        for construct in stack.node.find_all()
        for entry in construct.node.metadata
        if entry.type == key
        for rule, reason in entry.data.items()
    }

    # When / Then
    assert acknowledgments
    for (path, rule), reason in acknowledgments.items():
        assert path != stack.node.path, f"{rule}: acknowledged for the whole stack"
        assert re.search(r"AwsSolutions-[A-Z]+\d+", rule), rule
        if "AwsSolutions-IAM5" in rule:
            assert "[" in rule, f"{path}: {rule} acknowledges every wildcard, not one finding"
        assert len(reason) >= 40, f"{path}: {rule}: the reason is too short to say why"
