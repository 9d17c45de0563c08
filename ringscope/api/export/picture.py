"""The case file's pictures of the cluster graph: ``graph.html`` (interactive, with
vis-network inlined so that it opens from disk with no network) and ``graph.png`` (a
static drawing, encoded here: 8-bit RGB, no filter, fixed compression, so that the same
graph gives the same bytes). Both use one layout, seeded (:func:`seeded_layout`)."""

from __future__ import annotations

import json
import random
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pyvis
from markupsafe import Markup
from markupsafe import escape as mescape

from ringscope.api.viz import GraphView, with_layout

#: vis-network as bundled by pyvis (the same files the app serves).
VIS_DIR = Path(pyvis.__file__).parent / "templates" / "lib" / "vis-9.1.2"


def _vis_assets() -> tuple[str, str]:
    """vis-network's JS and CSS for inlining, unchanged.

    Only a ``</script`` or ``</style`` inside them could end the element early;
    the bundled files hold neither (checked here, so a new pyvis cannot slip one in).
    The URLs in the library's text are strings it never fetches: the page loads
    nothing (a browser test opens it from disk with the network blocked).
    """
    js = (VIS_DIR / "vis-network.min.js").read_text("utf-8")
    css = (VIS_DIR / "vis-network.css").read_text("utf-8")
    if "</script" in js.lower() or "</style" in css.lower():
        raise RuntimeError(f"the vis-network files in {VIS_DIR} cannot be inlined safely")
    return js, css


_GRAPH_JS = """
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("graph-data").textContent);
  var holder = document.getElementById("graph");
  var nodes = new vis.DataSet(data.nodes);
  var edges = new vis.DataSet(data.edges);
  var network = new vis.Network(holder, {nodes: nodes, edges: edges}, data.options);
  window.rsGraph = {network: network, nodes: nodes, edges: edges};
})();
"""


def graph_html(title: str, data: dict[str, Any]) -> bytes:
    js, css = _vis_assets()
    payload = json.dumps(data, sort_keys=True, ensure_ascii=False)
    payload = payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    payload = payload.replace("'", "\\u0027")
    page = (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        f"<title>{mescape(title)}</title>\n"
        f"<style>{css}</style>\n"
        "<style>body{font-family:sans-serif;margin:1em}"
        "#graph{width:100%;height:90vh;border:1px solid #ccc}</style>\n"
        "</head><body>\n"
        f"<h1>{mescape(title)}</h1>\n"
        '<div id="graph"></div>\n'
        f'<script type="application/json" id="graph-data">{Markup(payload)}</script>\n'
        f"<script>{js}</script>\n"
        f"<script>{_GRAPH_JS}</script>\n"
        "</body></html>\n"
    )
    return page.encode()


def _hex(colour: str) -> tuple[int, int, int]:
    c = colour.lstrip("#")
    if len(c) != 6:
        return (134, 142, 150)
    return (int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16))


def _png(pixels: np.ndarray) -> bytes:
    """An RGB image as PNG bytes (8 bits per channel, no filter, fixed compression)."""
    h, w, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def graph_png(view: GraphView, size: int = 1000) -> bytes:
    """The laid-out graph drawn as edges (lines) and nodes (discs in their colours)."""
    img = np.full((size, size, 3), 255, dtype=np.uint8)
    if not view.nodes:
        return _png(img)
    xs = np.array([v.x for v in view.nodes], dtype=float)
    ys = np.array([v.y for v in view.nodes], dtype=float)
    margin = 40.0
    span = max(float(xs.max() - xs.min()), float(ys.max() - ys.min()), 1.0)
    scale = (size - 2 * margin) / span
    px = np.rint((xs - xs.min()) * scale + margin + (size - 2 * margin - (np.ptp(xs) * scale)) / 2)
    py = np.rint((ys - ys.min()) * scale + margin + (size - 2 * margin - (np.ptp(ys) * scale)) / 2)
    index = {v.id: i for i, v in enumerate(view.nodes)}
    ends = [(index.get(e.source), index.get(e.target), e.color) for e in view.edges]
    lines = [(a, b, c) for a, b, c in ends if a is not None and b is not None]
    if lines:
        # every edge's pixels at once: the points of np.linspace(start, stop, n) per edge,
        # drawn in edge order (a later edge paints over an earlier one)
        ea = np.array([a for a, _b, _c in lines], dtype=np.int64)
        eb = np.array([b for _a, b, _c in lines], dtype=np.int64)
        colour = np.array([_hex(c) for _a, _b, c in lines], dtype=np.uint8)
        n = np.maximum(np.abs(px[eb] - px[ea]), np.abs(py[eb] - py[ea])).astype(np.int64) + 1
        edge = np.repeat(np.arange(len(lines)), n)
        step_no = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        last = np.cumsum(n)[n > 1] - 1

        def points(start: np.ndarray, stop: np.ndarray) -> np.ndarray:
            step = (stop - start) / np.maximum(n - 1, 1)
            y = step_no * step[edge] + start[edge]
            y[last] = stop[n > 1]
            return np.rint(y).astype(int).clip(0, size - 1)

        img[points(py[ea], py[eb]), points(px[ea], px[eb])] = colour[edge]
    yy, xx = np.mgrid[0:size, 0:size]
    order = sorted(range(len(view.nodes)), key=lambda i: (view.nodes[i].size, view.nodes[i].id))
    for i in order:
        v = view.nodes[i]
        r = max(3.0, v.size * 0.5)
        x0, y0 = int(px[i]), int(py[i])
        lo_y, hi_y = max(0, int(y0 - r - 2)), min(size, int(y0 + r + 3))
        lo_x, hi_x = max(0, int(x0 - r - 2)), min(size, int(x0 + r + 3))
        d2 = (xx[lo_y:hi_y, lo_x:hi_x] - x0) ** 2 + (yy[lo_y:hi_y, lo_x:hi_x] - y0) ** 2
        block = img[lo_y:hi_y, lo_x:hi_x]
        block[d2 <= (r + 1) ** 2] = (52, 58, 64)
        block[d2 <= r**2] = _hex(v.color)
    return _png(img)


def seeded_layout(view: GraphView) -> GraphView:
    """The server layout with igraph's random numbers (Python's ``random``) seeded, so that
    the same graph gets the same positions; the caller's random state is restored."""
    state = random.getstate()
    try:
        random.seed(0)
        return with_layout(view)
    finally:
        random.setstate(state)
