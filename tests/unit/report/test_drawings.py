"""The report's drawings: a state machine's layered graph from any ASL, and the line charts."""

from __future__ import annotations

import re
from typing import Any

from stepnet.report.charts import line_chart, nice_ticks
from stepnet.report.graph import Edge, edges_of, ranks, svg
from stepnet.report.history import StateStats
from stepnet.report.summary import definitions, states_of

LOOP: dict[str, Any] = {
    "StartAt": "Plan",
    "States": {
        "Plan": {"Type": "Task", "Next": "Work", "Catch": [{"Next": "Failed"}]},
        "Work": {
            "Type": "Map",
            "Next": "Again?",
            "ItemProcessor": {
                "StartAt": "Inner",
                "States": {"Inner": {"Type": "Pass", "End": True}},
            },
        },
        "Again?": {"Type": "Choice", "Choices": [{"Next": "Work"}], "Default": "Done"},
        "Done": {"Type": "Succeed"},
        "Failed": {"Type": "Fail"},
    },
}


def test_rows_follow_the_longest_path_once_loops_are_cut() -> None:
    # Given a loop back from a Choice, and a catch
    states = LOOP["States"]

    # When
    edges = edges_of(states)
    row, back = ranks("Plan", states, edges)

    # Then every named transition is an edge, the loop is the one edge going back
    assert Edge("Plan", "Failed", "catch") in edges and Edge("Again?", "Done", "default") in edges
    assert back == {Edge("Again?", "Work", "choice")}
    assert row == {"Plan": 0, "Work": 1, "Again?": 2, "Done": 3, "Failed": 1}


def test_the_graph_draws_every_state_nested_ones_too_with_their_counts() -> None:
    # Given stats for some states
    stats = {"Work": StateStats(3, 1.5), "Inner": StateStats(12, 0.02)}

    # When
    drawn = svg("Loop", LOOP, stats)

    # Then each state is a group, the Map's inner one too
    assert sorted(re.findall(r'data-state="([^"]+)"', drawn)) == sorted(
        ["Plan", "Work", "Inner", "Again?", "Done", "Failed"]
    )
    assert "×3 · 1.5 s" in drawn and "×12 · 20 ms" in drawn and "not run" in drawn
    assert drawn.count('class="edge catch"') == 1
    assert drawn.count('marker-end="url(#arrow-Loop)"') == len(edges_of(LOOP["States"])) + len(
        edges_of(LOOP["States"]["Work"]["ItemProcessor"]["States"])
    )


def test_every_machine_of_the_contract_is_drawn_whole() -> None:
    # Given the contract's ASL files, whatever they are
    for logical, definition in definitions().items():
        # When
        drawn = svg(logical, definition, {})

        # Then every state, nested ones included, is drawn once
        assert sorted(re.findall(r'data-state="([^"]+)"', drawn)) == sorted(
            name for name, _ in states_of(definition)
        )


def test_ticks_are_round_and_span_the_data() -> None:
    # Given / When / Then
    assert nice_ticks(0.23, 0.81) == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(1, 20, 6) == [0, 5, 10, 15, 20]
    assert nice_ticks(3, 3) == [3, 4, 5, 6]  # one value still spans something


def test_a_chart_has_a_polyline_point_per_value_and_says_when_it_has_none() -> None:
    # Given / When
    drawn = line_chart("loss", "Loss", {"a": [(1, 0.5), (2, 0.25), (3, 0.2)], "b": []}, "x", "y")
    empty = line_chart("loss", "Loss", {"a": []}, "x", "y")

    # Then
    (points,) = re.findall(r'data-series="a"[^>]*points="([^"]*)"', drawn)
    assert len(points.split()) == 3
    assert "no data yet" in empty and "<svg" not in empty
