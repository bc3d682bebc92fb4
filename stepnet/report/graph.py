"""A state machine's graph as inline SVG, drawn from its ASL definition, each state labelled with
how often it ran and how long it took.

Nothing here knows a state by name: the graph is the definition's ``States`` with their edges
(``Next``, ``Default``, ``Choices[].Next``, ``Catch[].Next``), and a Map's ``ItemProcessor`` (or
``Iterator``) or a Parallel's ``Branches`` drawn as a box inside its state.

Layout (a small layered drawing, top to bottom): a depth-first walk from ``StartAt`` marks the
edges that go back (loops); without them the graph is acyclic and a state's row is its longest
path from the start. Rows stack downwards, each centred; forward edges are straight lines,
loops curve on the right, catches are dashed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from html import escape
from typing import Any, Final

from stepnet.report.history import StateStats

CHAR_PX: Final = 7.0  # a 12 px sans-serif character, generously
ROW_GAP: Final = 34
COLUMN_GAP: Final = 22
PAD: Final = 12  # inside a Map's box
HEADER: Final = 40  # a Map's name and counts above its box
NODE_HEIGHT: Final = 40
FILL: Final = {
    "Task": "#dbeafe",
    "Choice": "#fef3c7",
    "Map": "#ede9fe",
    "Parallel": "#ede9fe",
    "Succeed": "#dcfce7",
    "Fail": "#fee2e2",
    "Pass": "#f1f5f9",
    "Wait": "#f1f5f9",
}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: str  # "next", "choice", "default", "catch"


def edges_of(states: Mapping[str, Any]) -> list[Edge]:
    """Every transition a scope's states name, in definition order."""
    found = []
    for name, state in states.items():
        if "Next" in state:
            found.append(Edge(name, state["Next"], "next"))
        for choice in state.get("Choices", []):
            found.append(Edge(name, choice["Next"], "choice"))
        if "Default" in state:
            found.append(Edge(name, state["Default"], "default"))
        for catch in state.get("Catch", []):
            found.append(Edge(name, catch["Next"], "catch"))
    return [edge for edge in found if edge.target in states]


def ranks(
    start: str, states: Mapping[str, Any], edges: list[Edge]
) -> tuple[dict[str, int], set[Edge]]:
    """Each state's row (its longest path from ``start`` once loops are cut) and the loop
    edges (those a depth-first walk from ``start`` finds going back to a state on its path)."""
    outgoing: dict[str, list[Edge]] = {name: [] for name in states}
    for edge in edges:
        outgoing[edge.source].append(edge)
    back: set[Edge] = set()
    order: list[str] = []  # finishing order
    on_path: set[str] = set()
    seen: set[str] = set()

    def visit(name: str) -> None:
        seen.add(name)
        on_path.add(name)
        for edge in outgoing[name]:
            if edge.target in on_path:
                back.add(edge)
            elif edge.target not in seen:
                visit(edge.target)
        on_path.discard(name)
        order.append(name)

    for root in [start, *states]:  # unreachable states start their own walk
        if root in states and root not in seen:
            visit(root)
    row = dict.fromkeys(states, 0)
    for name in reversed(order):  # a topological order of the graph without its loops
        for edge in outgoing[name]:
            if edge not in back:
                row[edge.target] = max(row[edge.target], row[name] + 1)
    return row, back


@dataclass
class Box:
    """A drawn scope or state: its size and its SVG, in its own coordinates (top left 0, 0)."""

    width: float
    height: float
    svg: list[str] = field(default_factory=list)


def _label(stats: StateStats | None) -> str:
    if stats is None or stats.entered == 0:
        return "not run"
    return f"×{stats.entered:,} · {_duration(stats.seconds)}"


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def _node(name: str, state: Mapping[str, Any], stats: Mapping[str, StateStats]) -> Box:
    kind = str(state.get("Type", "Task"))
    ran = stats.get(name)
    label = _label(ran)
    title = f"{name} ({kind}): {label}"
    if ran is not None and ran.entered:
        title += f"; {ran.seconds / ran.entered * 1000:.1f} ms each on average"
    if state.get("Comment"):
        title += f"\n{state['Comment']}"
    inner = state.get("ItemProcessor") or state.get("Iterator")
    branches = [inner] if inner else list(state.get("Branches", []))
    text_width = CHAR_PX * max(len(name), len(label)) + 24
    if not branches:
        box = Box(max(text_width, 90), NODE_HEIGHT)
        box.svg.append(_rect(0, 0, box.width, box.height, kind, ran))
        box.svg.append(_texts(box.width / 2, 16, name, label))
    else:
        scopes = [layout(branch, stats) for branch in branches]
        width = max(text_width, sum(s.width for s in scopes) + COLUMN_GAP * (len(scopes) - 1))
        box = Box(width + 2 * PAD, HEADER + max(s.height for s in scopes) + PAD)
        box.svg.append(_rect(0, 0, box.width, box.height, kind, ran))
        box.svg.append(_texts(box.width / 2, 16, name, label))
        x = PAD + (width - sum(s.width for s in scopes) - COLUMN_GAP * (len(scopes) - 1)) / 2
        for scope in scopes:
            box.svg.append(
                f'<g transform="translate({x:.1f},{HEADER})">'
                f'<rect class="scope" width="{scope.width:.1f}" height="{scope.height:.1f}" '
                f'rx="6"/>{"".join(scope.svg)}</g>'
            )
            x += scope.width + COLUMN_GAP
    box.svg.insert(0, f"<title>{escape(title)}</title>")
    box.svg = [
        f'<g class="state" data-state="{escape(name)}" data-type="{escape(kind)}">',
        *box.svg,
        "</g>",
    ]
    return box


def _rect(x: float, y: float, w: float, h: float, kind: str, ran: StateStats | None) -> str:
    fill = FILL.get(kind, "#f1f5f9")
    idle = ' stroke-dasharray="4 3" opacity="0.6"' if ran is None or ran.entered == 0 else ""
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="8" '
        f'fill="{fill}" stroke="#475569"{idle}/>'
    )


def _texts(cx: float, y: float, name: str, label: str) -> str:
    return (
        f'<text x="{cx:.1f}" y="{y}" class="name">{escape(name)}</text>'
        f'<text x="{cx:.1f}" y="{y + 16}" class="count">{escape(label)}</text>'
    )


def layout(definition: Mapping[str, Any], stats: Mapping[str, StateStats]) -> Box:
    """A scope (``StartAt`` and ``States``) drawn: states in rows, then the edges."""
    states: Mapping[str, Any] = definition["States"]
    edges = edges_of(states)
    row, back = ranks(definition["StartAt"], states, edges)
    nodes = {name: _node(name, state, stats) for name, state in states.items()}
    caught = {e.target for e in edges if e.kind == "catch"} - {
        e.target for e in edges if e.kind != "catch"
    }  # reached by catches only: first in their row, where the catches come in from the left
    rows: dict[int, list[str]] = {}
    for name in sorted(states, key=lambda n: n not in caught):  # else definition order
        rows.setdefault(row[name], []).append(name)
    width = max(
        sum(nodes[n].width for n in names) + COLUMN_GAP * (len(names) - 1)
        for names in rows.values()
    )
    loops = sum(1 for edge in back if edge.kind != "catch")
    right = 16 + 14 * min(loops, 4)  # room on the right for the loops' curves
    left = 28 if any(edge.kind == "catch" for edge in edges) else 0  # … on the left for catches
    where: dict[str, tuple[float, float]] = {}  # each node's top left
    y = float(PAD)
    for index in sorted(rows):
        names = rows[index]
        used = sum(nodes[n].width for n in names) + COLUMN_GAP * (len(names) - 1)
        x = left + PAD + (width - used) / 2
        for name in names:
            where[name] = (x, y)
            x += nodes[name].width + COLUMN_GAP
        y += max(nodes[n].height for n in names) + ROW_GAP
    box = Box(left + width + 2 * PAD + right, y - ROW_GAP + PAD)
    for edge in edges:
        box.svg.append(_edge(edge, where, nodes, edge in back))
    for name, (x, top) in where.items():
        box.svg.append(
            f'<g transform="translate({x:.1f},{top:.1f})">{"".join(nodes[name].svg)}</g>'
        )
    return box


def _edge(
    edge: Edge, where: Mapping[str, tuple[float, float]], nodes: Mapping[str, Box], loop: bool
) -> str:
    (sx, sy), (tx, ty) = where[edge.source], where[edge.target]
    source, target = nodes[edge.source], nodes[edge.target]
    if edge.kind == "catch":
        # out of the source's left side, down the left margin, into the target's left side
        x1, y1 = sx, sy + source.height / 2
        x2, y2 = tx, ty + target.height / 2
        bend = 4.0
        path = f"M{x1:.1f},{y1:.1f} C{bend:.1f},{y1:.1f} {bend:.1f},{y2:.1f} {x2 - 2:.1f},{y2:.1f}"
        return (
            f'<path class="edge catch" data-from="{escape(edge.source)}" '
            f'data-to="{escape(edge.target)}" d="{path}" marker-end="url(#arrow)"/>'
        )
    style = "edge"
    if loop or (ty <= sy and edge.source != edge.target):
        # leave from the source's right side, come back into the target's right side
        x1, y1 = sx + source.width, sy + source.height / 2
        x2, y2 = tx + target.width, ty + target.height / 2
        bulge = max(x1, x2) + 40
        path = (
            f"M{x1:.1f},{y1:.1f} C{bulge:.1f},{y1:.1f} {bulge:.1f},{y2:.1f} {x2 + 2:.1f},{y2:.1f}"
        )
    elif edge.source == edge.target:
        x1, y1 = sx + source.width, sy + source.height / 3
        y2 = sy + 2 * source.height / 3
        path = f"M{x1:.1f},{y1:.1f} C{x1 + 36:.1f},{y1:.1f} {x1 + 36:.1f},{y2:.1f} {x1 + 2:.1f},{y2:.1f}"
    else:
        x1, y1 = sx + source.width / 2, sy + source.height
        x2, y2 = tx + target.width / 2, ty - 2
        path = f"M{x1:.1f},{y1:.1f} L{x2:.1f},{y2:.1f}"
    return (
        f'<path class="{style}" data-from="{escape(edge.source)}" data-to="{escape(edge.target)}" '
        f'd="{path}" marker-end="url(#arrow)"/>'
    )


def svg(logical: str, definition: Mapping[str, Any], stats: Mapping[str, StateStats]) -> str:
    """The machine's graph as one ``<svg>`` element (sized to its drawing)."""
    box = layout(definition, stats)
    arrow = f"arrow-{escape(logical)}"
    return (
        f'<svg class="graph" data-machine="{escape(logical)}" xmlns="http://www.w3.org/2000/svg" '
        f'width="{box.width:.0f}" height="{box.height:.0f}" '
        f'viewBox="0 0 {box.width:.1f} {box.height:.1f}" role="img" '
        f'aria-label="{escape(logical)} state machine">'
        f'<defs><marker id="{arrow}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#475569"/></marker></defs>'
        + "".join(box.svg).replace("url(#arrow)", f"url(#{arrow})")
        + "</svg>"
    )
