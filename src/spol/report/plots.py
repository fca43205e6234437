"""Line charts as inline SVG, so that the report stays one self-contained file without a plotting library.

Written by hand because the charts are a few polylines with axes and a legend: matplotlib would be a
large dependency for that, and its SVG output embeds fonts and grows the report.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f")
"""Series colours, in order."""


@dataclass
class Series:
    """One line: its legend label, points, and an optional dash pattern (e.g. ``"4 3"``)."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    dash: str | None = None
    colour: str | None = None


@dataclass
class Chart:
    """A line chart: title, axis labels and ranges, series, and vertical marks ``(x, label)``."""

    title: str
    x_label: str
    y_label: str
    series: list[Series]
    x_range: tuple[float, float] = (0.0, 1.0)
    y_range: tuple[float, float] = (0.0, 100.0)
    marks: list[tuple[float, str]] = field(default_factory=list)


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    step = (high - low) / count
    return [low + i * step for i in range(count + 1)]


def render_svg(chart: Chart, *, width: int = 440, height: int = 280) -> str:
    """The chart as an ``<svg>`` element (about 1-3 kB per series)."""
    left, right, top, bottom = 48, 12, 26, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    (x0, x1), (y0, y1) = chart.x_range, chart.y_range

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0 or 1) * plot_w

    def py(y: float) -> float:
        return top + plot_h - (min(max(y, y0), y1) - y0) / (y1 - y0 or 1) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{html.escape(chart.title)}" font-family="sans-serif" font-size="11">',
        f'<text x="{left}" y="15" font-size="12" font-weight="bold">{html.escape(chart.title)}</text>',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>',
    ]
    for value in _ticks(x0, x1):
        parts.append(
            f'<line x1="{px(value):.1f}" y1="{top + plot_h}" x2="{px(value):.1f}" y2="{top + plot_h + 4}" '
            'stroke="#999"/>'
        )
        parts.append(f'<text x="{px(value):.1f}" y="{top + plot_h + 15}" text-anchor="middle">{value:.3g}</text>')
    for value in _ticks(y0, y1):
        parts.append(
            f'<line x1="{left}" y1="{py(value):.1f}" x2="{left + plot_w}" y2="{py(value):.1f}" stroke="#eee"/>'
        )
        parts.append(f'<text x="{left - 4}" y="{py(value) + 4:.1f}" text-anchor="end">{value:.3g}</text>')
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle">{html.escape(chart.x_label)}</text>'
    )
    parts.append(
        f'<text x="12" y="{top + plot_h / 2}" text-anchor="middle" transform="rotate(-90 12 {top + plot_h / 2})">'
        f"{html.escape(chart.y_label)}</text>"
    )
    for x, label in chart.marks:
        parts.append(
            f'<line x1="{px(x):.1f}" y1="{top}" x2="{px(x):.1f}" y2="{top + plot_h}" '
            'stroke="#555" stroke-dasharray="2 2"/>'
        )
        parts.append(f'<text x="{px(x) + 3:.1f}" y="{top + 11}" fill="#555">{html.escape(label)}</text>')
    for index, series in enumerate(chart.series):
        colour = series.colour or PALETTE[index % len(PALETTE)]
        points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(series.x, series.y, strict=True))
        dash = f' stroke-dasharray="{series.dash}"' if series.dash else ""
        if len(series.x) == 1:  # one epoch: a dot, not an invisible line
            parts.append(f'<circle cx="{px(series.x[0]):.1f}" cy="{py(series.y[0]):.1f}" r="3" fill="{colour}"/>')
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.6"{dash}/>')
        legend_y = top + 14 + 13 * index
        parts.append(
            f'<line x1="{left + plot_w - 118}" y1="{legend_y - 4}" x2="{left + plot_w - 100}" y2="{legend_y - 4}" '
            f'stroke="{colour}" stroke-width="2"{dash}/>'
        )
        parts.append(f'<text x="{left + plot_w - 96}" y="{legend_y}">{html.escape(series.label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


__all__ = ["PALETTE", "Chart", "Series", "render_svg"]
