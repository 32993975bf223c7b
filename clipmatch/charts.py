"""Server-rendered SVG of a model's match and mismatch score distributions."""

from __future__ import annotations

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH, HEIGHT = 560, 220
LEFT, RIGHT, TOP, BOTTOM = 40, 10, 24, 30
MATCH, MISMATCH = "#1a7f37", "#cf222e"
CUTS = {"hold": "#cf222e", "pass": "#1a7f37"}


def distribution_svg(histogram: dict, cuts: dict) -> SafeString:
    """Two overlaid histograms (share of each class per bin) on shared bins, with
    the pass and hold thresholds drawn as vertical lines."""
    edges = [float(e) for e in histogram["edges"]]
    series = {
        "match": [int(c) for c in histogram["match"]],
        "mismatch": [int(c) for c in histogram["mismatch"]],
    }
    values = [float(v) for k, v in cuts.items() if k in CUTS]
    lo, hi = min([edges[0], *values]), max([edges[-1], *values])
    if hi <= lo:
        hi = lo + 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(value: float) -> float:
        return LEFT + (value - lo) / (hi - lo) * plot_w

    tallest = max(
        (c / max(1, sum(counts)) for counts in series.values() for c in counts),
        default=0,
    )
    tallest = tallest or 1.0
    bars = []
    for name, colour in (("mismatch", MISMATCH), ("match", MATCH)):
        total = max(1, sum(series[name]))
        for i, count in enumerate(series[name]):
            if not count:
                continue
            height = count / total / tallest * plot_h
            left, right = x(edges[i]), x(edges[i + 1])
            bars.append(
                (
                    f"{left:.1f}",
                    f"{TOP + plot_h - height:.1f}",
                    f"{max(0.5, right - left - 0.5):.1f}",
                    f"{height:.1f}",
                    colour,
                )
            )
    lines = []
    for name, value in sorted(cuts.items()):
        if name not in CUTS:
            continue
        at = f"{x(float(value)):.1f}"
        label = f"{name} {float(value):.3f}"
        lines.append((at, TOP, at, TOP + plot_h, CUTS[name], at, label))
    ticks = [lo + (hi - lo) * k / 4 for k in range(5)]
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        'viewBox="0 0 {w} {h}" role="img" font-family="sans-serif" font-size="11">'
        "<title>Raw cosine similarity of matching and mismatched pairs</title>"
        '<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#f6f8fa"/>'
        "{bars}{lines}{ticks}"
        '<text x="{left}" y="14" fill="{match}">■ matches ({n_match})</text>'
        '<text x="{mx}" y="14" fill="{mismatch}">■ mismatches ({n_mismatch})</text>'
        "</svg>",
        w=WIDTH,
        h=HEIGHT,
        left=LEFT,
        top=TOP,
        pw=plot_w,
        ph=plot_h,
        bars=format_html_join(
            "",
            '<rect x="{}" y="{}" width="{}" height="{}" fill="{}" '
            'fill-opacity="0.55"/>',
            bars,
        ),
        lines=format_html_join(
            "",
            '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="2" '
            'stroke-dasharray="4 3"/><text x="{}" y="{}" dy="-2">{}</text>',
            ((*line[:6], TOP + 10 + 12 * n, line[6]) for n, line in enumerate(lines)),
        ),
        ticks=format_html_join(
            "",
            '<text x="{}" y="{}" text-anchor="middle">{}</text>',
            ((f"{x(t):.1f}", HEIGHT - 10, f"{t:.2f}") for t in ticks),
        ),
        match=MATCH,
        mismatch=MISMATCH,
        mx=LEFT + 140,
        n_match=sum(series["match"]),
        n_mismatch=sum(series["mismatch"]),
    )
