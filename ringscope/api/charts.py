"""Small SVG charts drawn on the server: no script, no request, readable at a glance.

Each function returns an escaped ``<svg>`` element (a :class:`markupsafe.Markup`).
Colours and text styles come from presentation attributes and the app's
stylesheet (classes ``chart``, ``axis``, ``label``), so a strict
Content-Security-Policy (no inline styles) holds. Every chart carries a
``<title>`` and ``<desc>`` for screen readers, and its numbers are also
offered as CSV next to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from markupsafe import Markup, escape

#: Series colours, in order (colour-blind safe, Okabe-Ito).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
WIDTH, HEIGHT = 640, 220
PAD_L, PAD_R, PAD_T, PAD_B = 56, 150, 12, 40


def _fmt(value: float) -> str:
    if abs(value) >= 1e6:
        return f"{value / 1e6:.1f}M"
    if abs(value) >= 1e3:
        return f"{value / 1e3:.1f}k"
    if value == int(value):
        return str(int(value))
    return f"{value:.2f}"


def _frame(title: str, desc: str, body: list[str], top: float, xlabels: Sequence[str]) -> Markup:
    plot_w = WIDTH - PAD_L - PAD_R
    plot_h = HEIGHT - PAD_T - PAD_B
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title><desc>{escape(desc)}</desc>",
        f'<line class="axis" x1="{PAD_L}" y1="{PAD_T + plot_h}" x2="{PAD_L + plot_w}" '
        f'y2="{PAD_T + plot_h}" stroke="#888"/>',
        f'<line class="axis" x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{PAD_T + plot_h}" '
        'stroke="#888"/>',
    ]
    for frac in (0.0, 0.5, 1.0):
        y = PAD_T + plot_h * (1 - frac)
        parts.append(
            f'<text class="label" x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end" '
            f'font-size="11">{escape(_fmt(top * frac))}</text>'
        )
    n = max(1, len(xlabels))
    step = plot_w / n
    every = max(1, n // 8)
    for i, label in enumerate(xlabels):
        if i % every == 0 or i == n - 1:
            x = PAD_L + step * (i + 0.5)
            parts.append(
                f'<text class="label" x="{x:.1f}" y="{HEIGHT - PAD_B + 16}" text-anchor="middle" '
                f'font-size="10">{escape(label)}</text>'
            )
    parts += body
    parts.append("</svg>")
    return Markup("".join(parts))


def _legend(names: Sequence[str]) -> list[str]:
    out = []
    for i, name in enumerate(names):
        y = PAD_T + 14 * i + 8
        x = WIDTH - PAD_R + 12
        colour = PALETTE[i % len(PALETTE)]
        out.append(f'<rect x="{x}" y="{y - 8}" width="10" height="10" fill="{colour}"/>')
        out.append(
            f'<text class="label" x="{x + 14}" y="{y + 1}" font-size="11">{escape(name)}</text>'
        )
    return out


def stacked_bars(
    title: str, xlabels: Sequence[str], series: Mapping[str, Sequence[float]]
) -> Markup:
    """One bar per x label, stacked by series (e.g. findings by kind per run)."""
    names = list(series)
    totals = [sum(series[s][i] for s in names) for i in range(len(xlabels))]
    top = max(totals, default=0.0) or 1.0
    plot_w, plot_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B
    step = plot_w / max(1, len(xlabels))
    body = []
    for i in range(len(xlabels)):
        y = float(PAD_T + plot_h)
        for k, name in enumerate(names):
            v = series[name][i]
            h = plot_h * v / top
            if h <= 0:
                continue
            y -= h
            body.append(
                f'<rect x="{PAD_L + step * i + step * 0.15:.1f}" y="{y:.1f}" '
                f'width="{step * 0.7:.1f}" height="{h:.1f}" fill="{PALETTE[k % len(PALETTE)]}">'
                f"<title>{escape(xlabels[i])}: {escape(name)} {escape(_fmt(v))}</title></rect>"
            )
    desc = "; ".join(f"{x}: {_fmt(t)}" for x, t in zip(xlabels, totals, strict=True))
    return _frame(title, desc, body + _legend(names), top, xlabels)


def lines(title: str, xlabels: Sequence[str], series: Mapping[str, Sequence[float]]) -> Markup:
    """One line per series over the x labels (e.g. shares from flagged accounts per run)."""
    names = list(series)
    top = max((v for s in series.values() for v in s), default=0.0) or 1.0
    plot_w, plot_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B
    step = plot_w / max(1, len(xlabels))
    body = []
    for k, name in enumerate(names):
        pts = [
            (PAD_L + step * (i + 0.5), PAD_T + plot_h * (1 - v / top))
            for i, v in enumerate(series[name])
        ]
        colour = PALETTE[k % len(PALETTE)]
        if len(pts) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            body.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>'
            )
        for (x, y), v, label in zip(pts, series[name], xlabels, strict=True):
            body.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}">'
                f"<title>{escape(label)}: {escape(name)} {escape(_fmt(v))}</title></circle>"
            )
    desc = "; ".join(f"{name}: " + ", ".join(_fmt(v) for v in series[name]) for name in names)
    return _frame(title, desc, body + _legend(names), top, xlabels)
