"""A JP-per-month bar chart as inline SVG, rendered on the server (no JavaScript, no CDN)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from html import escape

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _text(value: Decimal) -> str:
    return f"{Decimal(value).normalize():f}"


def month_bars(months: Sequence[Decimal], *, title: str, width: int = 640, height: int = 220) -> str:
    """An accessible SVG bar chart of twelve monthly values.

    Args:
        months: JP per month, January first (twelve values).
        title: the chart's title (read by screen readers, shown as a tooltip).
        width: the SVG's width in pixels.
        height: the SVG's height in pixels.

    Returns:
        The ``<svg>`` element as markup (values escaped).
    """
    values = list(months)[:12] + [Decimal(0)] * max(0, 12 - len(months))
    top = max([*values, Decimal(1)])
    left, bottom, upper = 8, 28, 18
    plot = height - bottom - upper
    slot = (width - 2 * left) / 12
    bar = slot * 0.6
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-labelledby="chart-title"><title id="chart-title">'
        f"{escape(title)}</title>",
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - left}" y2="{height - bottom}" '
        'stroke="#888" stroke-width="1"/>',
    ]
    for index, value in enumerate(values):
        x = left + index * slot + (slot - bar) / 2
        h = float(value / top) * plot
        y = height - bottom - h
        label = f"{MONTHS[index]}: {_text(value)} JP"
        parts.append(
            f'<g class="bar" data-month="{index + 1}" data-jp="{_text(value)}"><title>{label}</title>'
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="#2b6cb0"/>'
        )
        if value:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{y - 4:.1f}" font-size="11" text-anchor="middle" '
                f'fill="#222">{_text(value)}</text>'
            )
        parts.append(
            f'<text x="{x + bar / 2:.1f}" y="{height - bottom + 16}" font-size="11" '
            f'text-anchor="middle" fill="#444">{MONTHS[index]}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)
