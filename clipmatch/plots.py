"""Server-rendered SVG charts: no JavaScript, no chart framework, escaped labels.

Text and the plot area are drawn in `currentColor`, so a chart takes the colour of the
page around it: readable in the review pages' and the admin's light and dark themes."""

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
FONT = 'font-family="system-ui,sans-serif" font-size="11"'
MUTED = 'fill="currentColor" fill-opacity="0.7"'  # secondary text, in either theme


def bin_series(
    series: dict[str, list[float]], *, bins: int = 30, extra: tuple[float, ...] = ()
) -> tuple[dict[str, list[int]], list[float]]:
    """Count each series on shared bins that also span the ``extra`` positions
    (thresholds to draw). Returns the counts per series and the bin edges."""
    values = [v for vs in series.values() for v in vs] + list(extra)
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high - low < 1e-6:
        low, high = low - 0.05, high + 0.05
    pad = (high - low) * 0.03
    low, high = low - pad, high + pad
    step = (high - low) / bins
    counts = {label: [0] * bins for label in series}
    for label, vs in series.items():
        for v in vs:
            counts[label][min(int((v - low) / step), bins - 1)] += 1
    return counts, [low + step * i for i in range(bins + 1)]


def histogram_svg(
    counts: dict[str, list[int]],
    edges: list[float],
    *,
    lines: dict[str, float] | None = None,
    share: bool = False,
    x_label: str = "similarity",
    width: int = 640,
    height: int = 220,
) -> SafeString:
    """Overlaid histograms on shared bins, with labelled vertical lines.

    ``counts`` maps a series label to its count per bin (``len(edges) - 1``);
    with ``share`` each series is drawn as its share of its own total, so that a
    small class is as visible as a large one. ``lines`` maps a label (e.g. "hold",
    "pass") to an x position.
    """
    lines = {k: float(v) for k, v in (lines or {}).items()}
    if not any(sum(c) for c in counts.values()):
        return mark_safe(
            f'<svg class="chart" width="{width}" height="40" role="img" {FONT}>'
            f'<text x="8" y="24" {MUTED}>No scores yet.</text></svg>'
        )
    low = min([edges[0], *lines.values()])
    high = max([edges[-1], *lines.values()])
    left, right, top, bottom = 40, 12, 34, 34
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(value: float) -> float:
        return left + (value - low) / (high - low) * plot_w

    def heights(label: str) -> list[float]:
        total = sum(counts[label]) if share else 1
        return [c / max(total, 1) for c in counts[label]]

    tallest = max(max(heights(label)) for label in counts) or 1.0
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" xmlns="http://www.w3.org/2000/svg" {FONT}>',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" '
        'fill="currentColor" fill-opacity="0.05"/>',
        f'<text x="{left - 6}" y="{top + 8}" text-anchor="end" {MUTED}>'
        f"{f'{tallest:.0%}' if share else int(tallest)}</text>",
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" {MUTED}>0</text>',
    ]
    for tick in range(6):
        value = low + (high - low) * tick / 5
        parts.append(
            f'<text x="{x(value):.1f}" y="{top + plot_h + 14}" text-anchor="middle" '
            f"{MUTED}>{value:.2f}</text>"
        )
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle" '
        f"{MUTED}>{escape(x_label)}</text>"
    )
    for label in counts:
        colour = SERIES_COLOURS.get(label, "#6e7781")
        for i, h in enumerate(heights(label)):
            if not counts[label][i]:
                continue
            bar = h / tallest * plot_h
            x0, x1 = x(edges[i]), x(edges[i + 1])
            parts.append(
                f'<rect x="{x0 + 0.5:.1f}" y="{top + plot_h - bar:.1f}" '
                f'width="{max(x1 - x0 - 1, 0.5):.1f}" height="{bar:.1f}" '
                f'fill="{colour}" fill-opacity="0.55"><title>{escape(label)}: '
                f"{counts[label][i]}</title></rect>"
            )
    for n, (label, value) in enumerate(sorted(lines.items())):
        colour = LINE_COLOURS.get(label, "currentColor")
        parts.append(
            f'<line x1="{x(value):.1f}" y1="{top}" x2="{x(value):.1f}" '
            f'y2="{top + plot_h}" stroke="{colour}" stroke-width="2" '
            'stroke-dasharray="4 3"/>'
            f'<text x="{x(value) + 3:.1f}" y="{top + 12 + 12 * n}" '
            f'fill="{colour}">{escape(label)} {value:.3f}</text>'
        )
    legend_x = left
    for label in counts:
        colour = SERIES_COLOURS.get(label, "#6e7781")
        text = f"{label} ({sum(counts[label])})"
        parts.append(
            f'<rect x="{legend_x}" y="8" width="10" height="10" fill="{colour}" '
            f'fill-opacity="0.55"/><text x="{legend_x + 14}" y="17" '
            f'fill="currentColor">{escape(text)}</text>'
        )
        legend_x += 24 + 7 * len(text)
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
        f'height="{height}" role="img" xmlns="http://www.w3.org/2000/svg" {FONT}>'
    ]
    for i, (label, value) in enumerate(rows):
        top = 6 + i * (bar_height + 6)
        length = max(value, 0.0) * (width - label_w - 50)
        parts.append(
            f'<text x="{label_w - 6}" y="{top + bar_height - 5}" text-anchor="end" '
            f'fill="currentColor">{escape(label)}</text>'
            f'<rect x="{label_w}" y="{top}" width="{length:.1f}" '
            f'height="{bar_height}" fill="#8250df" opacity="0.8"/>'
            f'<text x="{label_w + length + 4:.1f}" y="{top + bar_height - 5}" '
            f"{MUTED}>{value:.0%}</text>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))
