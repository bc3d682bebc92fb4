"""Line charts as inline SVG, written from the data: the learning curves of a report.

Hand-written rather than matplotlib: a curve is a ``<polyline>`` of ~epochs points, so a few
dozen lines give crisp, searchable, resizable charts (the page's tests read their points
from the DOM) while ``stepnet`` keeps matplotlib out of its runtime dependencies (it stays a
benchmark extra) and the report needs no rendering backend or fonts at run time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Final

WIDTH: Final = 520
HEIGHT: Final = 280
LEFT, RIGHT, TOP, BOTTOM = 58, 16, 30, 42
COLORS: Final = ("#2563eb", "#dc2626", "#059669", "#d97706")

Series = Sequence[tuple[float, float]]
"""(x, y) points, in x order."""


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round values spanning [low, high]: steps of 1, 2 or 5 × 10^k."""
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0]
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 12))
    return ticks


def _format(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000 or abs(value) < 0.01:
        return f"{value:.2g}"
    return f"{value:.3g}"


def line_chart(
    name: str, title: str, series: Mapping[str, Series], x_label: str, y_label: str
) -> str:
    """An ``<svg>`` with one polyline (and its points) per series, axes with round ticks, and
    a legend; ``name`` goes to ``data-chart`` for the page's tests."""
    points = [(x, y) for values in series.values() for x, y in values if math.isfinite(y)]
    if not points:
        return f'<p class="empty" data-chart="{escape(name)}">{escape(title)}: no data yet</p>'
    xs = nice_ticks(min(p[0] for p in points), max(p[0] for p in points), 6)
    xs = [x for x in xs if float(x).is_integer()] or xs  # epochs are whole
    ys = nice_ticks(min(p[1] for p in points), max(p[1] for p in points), 5)
    x0, x1, y0, y1 = xs[0], xs[-1], ys[0], ys[-1]
    if x1 == x0:
        x1 = x0 + 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        return TOP + plot_h - (y - y0) / ((y1 - y0) or 1) * plot_h

    parts = [
        f'<svg class="chart" data-chart="{escape(name)}" xmlns="http://www.w3.org/2000/svg" '
        f'width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}">',
        f'<text x="{LEFT}" y="18" class="title">{escape(title)}</text>',
    ]
    for y in ys:
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{py(y):.1f}" '
            f'y2="{py(y):.1f}"/><text class="tick" x="{LEFT - 6}" y="{py(y) + 4:.1f}" '
            f'text-anchor="end">{_format(y)}</text>'
        )
    for x in xs:
        parts.append(
            f'<text class="tick" x="{px(x):.1f}" y="{TOP + plot_h + 16}" '
            f'text-anchor="middle">{_format(x)}</text>'
        )
    parts.append(
        f'<rect class="frame" x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}"/>'
        f'<text class="axis" x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" '
        f'text-anchor="middle">{escape(x_label)}</text>'
        f'<text class="axis" transform="translate(14,{TOP + plot_h / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle">{escape(y_label)}</text>'
    )
    legend_x = LEFT + 8.0
    for index, (label, values) in enumerate(series.items()):
        color = COLORS[index % len(COLORS)]
        finite = [(x, y) for x, y in values if math.isfinite(y)]
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in finite)
        parts.append(
            f'<polyline class="series" data-series="{escape(label)}" fill="none" '
            f'stroke="{color}" stroke-width="2" points="{coords}"/>'
        )
        parts += [
            f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" fill="{color}">'
            f"<title>{escape(label)} epoch {x:g}: {y:.4f}</title></circle>"
            for x, y in finite
        ]
        parts.append(
            f'<line x1="{legend_x}" x2="{legend_x + 16}" y1="{TOP + 10}" y2="{TOP + 10}" '
            f'stroke="{color}" stroke-width="2"/><text class="legend" x="{legend_x + 20}" '
            f'y="{TOP + 14}">{escape(label)}</text>'
        )
        legend_x += 28 + 7 * len(label)
    parts.append("</svg>")
    return "".join(parts)
