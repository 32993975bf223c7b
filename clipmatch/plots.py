"""Server-rendered SVG charts: no JavaScript, no chart framework, escaped labels."""

from __future__ import annotations

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

SERIES_COLOURS = {
    "pass": "#1a7f37",
    "review": "#bf8700",
    "hold": "#cf222e",
    "match": "#1a7f37",
    "mismatch": "#cf222e",
}
LINE_COLOURS = {"pass": "#1a7f37", "hold": "#cf222e"}


def histogram_svg(
    series: dict[str, list[float]],
    *,
    lines: dict[str, float] | None = None,
    bins: int = 30,
    width: int = 640,
    height: int = 220,
    x_label: str = "similarity",
) -> SafeString:
    """Stacked histograms of several series on one axis, with vertical lines.

    ``series`` maps a label to its values, ``lines`` a label to an x position
    (thresholds). Returns an inline <svg> element.
    """
    values = [v for vs in series.values() for v in vs]
    marks = list((lines or {}).values())
    if not values:
        return mark_safe(
            f'<svg class="chart" width="{width}" height="40" role="img">'
            '<text x="8" y="24" fill="#57606a">No scores yet.</text></svg>'
        )
    low = min(values + marks)
    high = max(values + marks)
    if high - low < 1e-6:
        low, high = low - 0.05, high + 0.05
    pad = (high - low) * 0.03
    low, high = low - pad, high + pad
    step = (high - low) / bins
    counts = {label: [0] * bins for label in series}
    for label, vs in series.items():
        for v in vs:
            counts[label][min(int((v - low) / step), bins - 1)] += 1
    tallest = max(sum(counts[label][i] for label in series) for i in range(bins))
    left, right, top, bottom = 40, 12, 22, 34
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(value: float) -> float:
        return left + (value - low) / (high - low) * plot_w

    def y(count: float) -> float:
        return top + plot_h - count / tallest * plot_h

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" xmlns="http://www.w3.org/2000/svg" '
        'font-family="system-ui,sans-serif" font-size="11">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" '
        f'y2="{top + plot_h}" stroke="#8c959f"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" fill="#57606a">'
        f"{tallest}</text>",
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" '
        'fill="#57606a">0</text>',
    ]
    for tick in range(6):
        value = low + (high - low) * tick / 5
        parts.append(
            f'<text x="{x(value):.1f}" y="{top + plot_h + 14}" text-anchor="middle" '
            f'fill="#57606a">{value:.2f}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle" '
        f'fill="#57606a">{escape(x_label)}</text>'
    )
    bar_w = plot_w / bins
    for i in range(bins):
        base = 0
        for label in series:
            n = counts[label][i]
            if not n:
                continue
            colour = SERIES_COLOURS.get(label, "#6e7781")
            parts.append(
                f'<rect x="{left + i * bar_w + 0.5:.1f}" y="{y(base + n):.1f}" '
                f'width="{max(bar_w - 1, 1):.1f}" height="{y(base) - y(base + n):.1f}" '
                f'fill="{colour}" opacity="0.75"><title>{escape(label)}: {n}</title>'
                "</rect>"
            )
            base += n
    for label, value in (lines or {}).items():
        colour = LINE_COLOURS.get(label, "#24292f")
        parts.append(
            f'<line x1="{x(value):.1f}" y1="{top - 4}" x2="{x(value):.1f}" '
            f'y2="{top + plot_h}" stroke="{colour}" stroke-width="2" '
            'stroke-dasharray="4 3"/>'
            f'<text x="{x(value):.1f}" y="{top - 8}" text-anchor="middle" '
            f'fill="{colour}">{escape(label)} {value:.3f}</text>'
        )
    legend_x = left + 8
    for label in series:
        colour = SERIES_COLOURS.get(label, "#6e7781")
        parts.append(
            f'<rect x="{legend_x}" y="{top + 2}" width="10" height="10" '
            f'fill="{colour}" opacity="0.75"/><text x="{legend_x + 14}" '
            f'y="{top + 11}" fill="#24292f">{escape(label)} ({len(series[label])})'
            "</text>"
        )
        legend_x += 14 + 8 * (len(label) + 6)
    parts.append("</svg>")
    return mark_safe("".join(parts))


def bars_svg(
    rows: list[tuple[str, float]], *, width: int = 420, bar_height: int = 18
) -> SafeString:
    """Horizontal bars, one per (label, value in 0..1)."""
    height = max(len(rows), 1) * (bar_height + 6) + 6
    label_w = 130
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" xmlns="http://www.w3.org/2000/svg" '
        'font-family="system-ui,sans-serif" font-size="11">'
    ]
    for i, (label, value) in enumerate(rows):
        top = 6 + i * (bar_height + 6)
        length = max(value, 0.0) * (width - label_w - 50)
        parts.append(
            f'<text x="{label_w - 6}" y="{top + bar_height - 5}" text-anchor="end" '
            f'fill="#24292f">{escape(label)}</text>'
            f'<rect x="{label_w}" y="{top}" width="{length:.1f}" '
            f'height="{bar_height}" fill="#8250df" opacity="0.8"/>'
            f'<text x="{label_w + length + 4:.1f}" y="{top + bar_height - 5}" '
            f'fill="#57606a">{value:.0%}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))
