"""Charts as inline SVG, rendered on the server (no JavaScript, no CDN).

Each chart has a ``viewBox`` and no fixed size: the stylesheet lets it take the width it
is given (a phone's 390 px as well as a desk screen). Every text is escaped here; the
callers pass labels already in the page's language.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from html import escape

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _text(value: Decimal) -> str:
    return f"{Decimal(value).normalize():f}"


def month_bars(
    months: Sequence[Decimal],
    *,
    title: str,
    labels: Sequence[str] = MONTHS,
    target: int | None = None,
    target_label: str = "",
    cumulative_label: str = "",
    number: Sequence[str] | None = None,
    width: int = 480,
    height: int = 220,
) -> str:
    """An accessible SVG chart of twelve monthly values, their running total and the target.

    Args:
        months: JP per month, January first (twelve values).
        title: the chart's title (read by screen readers, shown as a tooltip).
        labels: the twelve month names to write under the bars.
        target: the yearly target, drawn as a dashed line (None: no line, no running total).
        target_label: the text beside the target line.
        cumulative_label: the tooltip of the running-total line.
        number: the twelve values as the page writes them (default: plain decimals).
        width: the drawing's width in viewBox units.
        height: the drawing's height in viewBox units.

    Returns:
        The ``<svg>`` element as markup (texts escaped).
    """
    values = list(months)[:12] + [Decimal(0)] * max(0, 12 - len(months))
    shown = list(number) if number is not None else [_text(v) for v in values]
    running, total = [], Decimal(0)
    for value in values:
        total += value
        running.append(total)
    top = max([*values, Decimal(1)])
    if target is not None:
        top = max(top, Decimal(target), total) * Decimal("1.08")
    left, bottom, upper = 8, 30, 20
    plot = height - bottom - upper
    slot = (width - 2 * left) / 12
    bar = slot * 0.6

    def y_of(value: Decimal) -> float:
        return height - bottom - float(value / top) * plot

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'preserveAspectRatio="xMidYMid meet" aria-labelledby="chart-title"><title id="chart-title">'
        f"{escape(title)}</title>",
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - left}" y2="{height - bottom}" '
        'stroke="#888" stroke-width="1"/>',
    ]
    for index, value in enumerate(values):
        x = left + index * slot + (slot - bar) / 2
        y = y_of(value)
        h = height - bottom - y
        label = f"{escape(labels[index])}: {escape(shown[index])} JP"
        parts.append(
            f'<g class="bar" data-month="{index + 1}" data-jp="{_text(value)}"><title>{label}</title>'
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="#2b6cb0"/>'
        )
        if value:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{y - 4:.1f}" font-size="14" text-anchor="middle" '
                f'fill="#222">{escape(shown[index])}</text>'
            )
        parts.append(
            f'<text x="{x + bar / 2:.1f}" y="{height - bottom + 19}" font-size="14" '
            f'text-anchor="middle" fill="#444">{escape(labels[index])}</text></g>'
        )
    if target is not None:
        points = " ".join(
            f"{left + index * slot + slot / 2:.1f},{y_of(value):.1f}" for index, value in enumerate(running)
        )
        parts.append(
            f'<polyline class="cumulative" points="{points}" fill="none" stroke="#1a7f37" stroke-width="2">'
            f"<title>{escape(cumulative_label)}</title></polyline>"
        )
        ty = y_of(Decimal(target))
        parts.append(
            f'<g class="target" data-target="{target}"><line x1="{left}" y1="{ty:.1f}" x2="{width - left}" '
            f'y2="{ty:.1f}" stroke="#b42318" stroke-width="1.5" stroke-dasharray="6 4"/>'
            f'<text x="{width - left}" y="{ty - 5:.1f}" font-size="14" text-anchor="end" fill="#b42318">'
            f"{escape(target_label)}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def band_bars(
    counts: Sequence[int], labels: Sequence[str], *, title: str, highlight_last: bool = True, width: int = 380
) -> str:
    """A horizontal bar chart of people per JP band (one bar per band, its count at the end).

    Args:
        counts: people per band.
        labels: the band names (already formatted for the page's language).
        title: the chart's title (read by screen readers).
        highlight_last: colour the last band (the target met) green.
        width: the drawing's width in viewBox units.
    """
    row, label_width, gap = 28, 165, 4
    height = row * len(counts) + gap
    top = max([*counts, 1])
    plot = width - label_width - 36
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart bands" role="img" viewBox="0 0 {width} {height}" '
        f'aria-labelledby="bands-title"><title id="bands-title">{escape(title)}</title>'
    ]
    for index, (count, label) in enumerate(zip(counts, labels, strict=True)):
        y = gap + index * row
        length = plot * count / top
        colour = "#1a7f37" if highlight_last and index == len(counts) - 1 else "#2b6cb0"
        parts.append(
            f'<g class="band" data-band="{index}" data-people="{count}">'
            f'<text x="{label_width - 8}" y="{y + row / 2 + 5:.1f}" font-size="13" text-anchor="end" '
            f'fill="#222">{escape(label)}</text>'
            f'<rect x="{label_width}" y="{y}" width="{length:.1f}" height="{row - 8}" fill="{colour}"/>'
            f'<text x="{label_width + length + 6:.1f}" y="{y + row / 2 + 5:.1f}" font-size="13" '
            f'fill="#222">{count}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)
