"""The cluster graph as a view: finding + subgraph -> view model -> pyvis network -> vis data.

Rendering is a pure view. The analysis graph never reaches pyvis: a
:class:`GraphView` is built from the finding and the store's subgraph, laid out
on the server with igraph, and only then handed to a pyvis ``Network``
(node by node). pyvis's own HTML template is not used (it links CDNs and does
not escape): the page template embeds ``vis_data()`` as JSON through Jinja's
``tojson`` and loads vis-network from the files pyvis bundles, served by the app.
vis-network draws labels on a canvas and shows string tooltips as text.

It draws what it is given: for a viewer or a redacted case file, data already redacted
(``ringscope.api.redact``), so that shortening a label cannot show a piece of a value.
"""

from __future__ import annotations

import json
import math
import random
import threading
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import igraph as ig
import numpy as np
from pyvis.edge import Edge as VisEdge
from pyvis.network import Network

from ringscope.model import Finding, NodeRef, Subgraph

#: Largest graph drawn node by node; above it the page offers the collapsed view.
MAX_NODES = 2000
#: Above this many nodes physics is off and the server's layout is final.
PHYSICS_MAX_NODES = 150

ROLE_COLOURS = {
    "beneficiary": "#e03131",
    "creator": "#f76707",
    "seller": "#c2255c",
    "buyer": "#1c7ed6",
    "engager": "#1098ad",
    "member": "#1c7ed6",
}
LABEL_COLOURS = {
    "Account": "#a5d8ff",
    "Stream": "#69db7c",
    "Product": "#ffd43b",
    "Order": "#ced4da",
    "Identifier": "#b197fc",
    "Group": "#1c7ed6",
}
EDGE_COLOURS = {
    "HOSTED": "#2f9e44",
    "ENGAGED": "#74c0fc",
    "FOLLOWS": "#adb5bd",
    "PLACED": "#1c7ed6",
    "FOR": "#fab005",
    "SELLS": "#c2255c",
    "ATTRIBUTED_TO": "#f76707",
    "IN_STREAM": "#40c057",
    "AFFILIATE_OF": "#e03131",
    "USES": "#7048e8",
    "MEMBERS": "#868e96",
}
SHAPES = {
    "Account": "dot",
    "Stream": "square",
    "Product": "triangle",
    "Order": "diamond",
    "Identifier": "hexagon",
    "Group": "dot",
}


@dataclass(frozen=True, slots=True)
class NodeView:
    id: str
    label: str
    title: str
    kind: str  # member role, "beneficiary", or the node label for context nodes
    color: str
    size: float
    shape: str
    x: float = 0.0
    y: float = 0.0


@dataclass(frozen=True, slots=True)
class EdgeView:
    source: str
    target: str
    type: str
    color: str
    title: str


@dataclass(frozen=True, slots=True)
class GraphView:
    nodes: tuple[NodeView, ...]
    edges: tuple[EdgeView, ...]
    collapsed: bool = False
    truncated: bool = False

    @property
    def physics(self) -> bool:
        return len(self.nodes) <= PHYSICS_MAX_NODES


def _short(text: str, n: int = 24) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _props_text(props: dict[str, Any], keep: int = 6) -> str:
    items = [f"{k}: {v}" for k, v in sorted(props.items())][:keep]
    return "\n".join(items)


def cluster_graph(finding: Finding, sub: Subgraph) -> GraphView:
    """Members coloured by role and sized by member score, beneficiaries in red,
    context nodes (streams, orders, products, identifiers, other accounts) small."""
    members = {m.account_id: m for m in finding.members}
    beneficiaries = {b.account_id: b for b in finding.beneficiaries}
    nodes = []
    for n in sub.nodes:
        key = str(n.ref)
        ref = n.ref
        if ref.label == "Account" and ref.id in beneficiaries:
            b = beneficiaries[ref.id]
            nodes.append(
                NodeView(
                    key,
                    _short(ref.id),
                    f"{key}\nbeneficiary ({b.role})\n{_props_text(n.props)}",
                    "beneficiary",
                    ROLE_COLOURS["beneficiary"],
                    28.0,
                    "star",
                )
            )
        elif ref.label == "Account" and ref.id in members:
            m = members[ref.id]
            nodes.append(
                NodeView(
                    key,
                    _short(ref.id),
                    f"{key}\nmember: {m.role}, score {m.score:.2f}\n{_props_text(n.props)}",
                    m.role,
                    ROLE_COLOURS.get(m.role, ROLE_COLOURS["member"]),
                    10.0 + 18.0 * float(m.score),
                    "dot",
                )
            )
        else:
            nodes.append(
                NodeView(
                    key,
                    _short(ref.id, 16) if ref.label != "Order" else "",
                    f"{key}\n{_props_text(n.props)}",
                    ref.label,
                    LABEL_COLOURS.get(ref.label, "#ced4da"),
                    7.0,
                    SHAPES.get(ref.label, "dot"),
                )
            )
    edges = tuple(
        EdgeView(
            str(e.source),
            str(e.target),
            e.type,
            EDGE_COLOURS.get(e.type, "#adb5bd"),
            f"{e.type}\n{_props_text(e.props)}".strip(),
        )
        for e in sub.edges
    )
    return GraphView(tuple(nodes), edges, truncated=sub.truncated)


def member_refs(finding: Finding) -> list[NodeRef]:
    ids = {m.account_id for m in finding.members} | {b.account_id for b in finding.beneficiaries}
    return [NodeRef("Account", a) for a in sorted(ids)]


def grouped_graph(finding: Finding) -> GraphView:
    """The collapsed view of a very large cluster: one node per member role, the
    beneficiaries, and an edge from each role group to each beneficiary."""
    roles = Counter(m.role for m in finding.members)
    nodes = [
        NodeView(
            f"Group:{role}",
            f"{count} {role}s",
            f"{count} member accounts with role {role}",
            role,
            ROLE_COLOURS.get(role, ROLE_COLOURS["member"]),
            12.0 + 6.0 * math.log10(1 + count),
            "dot",
        )
        for role, count in sorted(roles.items())
    ]
    edges: list[EdgeView] = []
    for b in finding.beneficiaries:
        key = f"Account:{b.account_id}"
        nodes.append(
            NodeView(
                key,
                _short(b.account_id),
                f"{key}\nbeneficiary ({b.role})",
                "beneficiary",
                ROLE_COLOURS["beneficiary"],
                28.0,
                "star",
            )
        )
        edges.extend(
            EdgeView(f"Group:{role}", key, "MEMBERS", EDGE_COLOURS["MEMBERS"], "benefits")
            for role in sorted(roles)
        )
    return GraphView(tuple(nodes), tuple(edges), collapsed=True)


#: Positions of a view's nodes, in the view's order.
Positions = tuple[tuple[float, float], ...]


def with_layout(view: GraphView) -> GraphView:
    """Positions from igraph (Fruchterman-Reingold, deterministic start), in pixels."""
    return placed(view, layout(view))


def layout(view: GraphView) -> Positions:
    """The positions :func:`with_layout` gives: they depend only on the number of nodes and
    on which nodes the edges join, so a view of the same graph with other labels (a
    redacted one) gets the same picture from the same positions."""
    n = len(view.nodes)
    if n == 0:
        return ()
    index = {v.id: i for i, v in enumerate(view.nodes)}
    pairs = np.array(
        [(index[e.source], index[e.target]) for e in view.edges if e.source != e.target],
        dtype=np.int64,
    ).reshape(-1, 2)
    g = ig.Graph(n=n, edges=pairs)
    g.simplify()
    angle = np.linspace(0, 2 * math.pi, n, endpoint=False)
    start = np.column_stack([np.cos(angle), np.sin(angle)]) * math.sqrt(n)
    niter = 300 if n <= 500 else 120
    coords = np.array(_fruchterman_reingold(g, niter, start.tolist()), dtype=float).reshape(n, 2)
    coords -= coords.mean(axis=0)
    spread = float(np.abs(coords).max()) or 1.0
    coords *= (45.0 * math.sqrt(n) + 60.0) / spread
    return tuple((round(float(x), 1), round(float(y), 1)) for x, y in coords)


def placed(view: GraphView, positions: Positions) -> GraphView:
    """``view`` with its nodes at ``positions`` (one per node, in order)."""
    if len(positions) != len(view.nodes):
        raise ValueError(f"{len(positions)} positions for {len(view.nodes)} nodes")
    nodes = tuple(replace(v, x=x, y=y) for v, (x, y) in zip(view.nodes, positions, strict=True))
    return replace(view, nodes=nodes)


_LAYOUT_LOCK = threading.Lock()


def _fruchterman_reingold(g: ig.Graph, niter: int, start: list[list[float]]) -> list[list[float]]:
    """igraph's Fruchterman-Reingold, from ``start``, with random numbers of its own.

    igraph draws from one generator per process, Python's ``random`` by default, so
    the same cluster was laid out differently in another app process, or after any
    other draw: two investigators (or a page and its case file) saw other pictures.
    Each layout gets a generator seeded alike, under a lock (the generator is
    process-wide)."""
    with _LAYOUT_LOCK:
        ig.set_random_number_generator(random.Random(0))
        try:
            coords: list[list[float]] = g.layout_fruchterman_reingold(
                niter=niter, seed=start
            ).coords
        finally:
            ig.set_random_number_generator(random)
    return coords


def to_pyvis(view: GraphView) -> Network:
    """A pyvis network of the view (drawing options included, physics off when big)."""
    net = Network(height="640px", width="100%", directed=True, cdn_resources="local")
    for v in view.nodes:
        net.add_node(
            v.id,
            label=v.label or " ",
            title=v.title,
            color=v.color,
            size=v.size,
            shape=v.shape,
            x=v.x,
            y=v.y,
            kind=v.kind,
        )
    # Node ends are known to exist: pyvis's add_edge checks are quadratic, so edges
    # are made with pyvis's Edge class directly.
    net.edges.extend(
        VisEdge(e.source, e.target, True, color=e.color, title=e.title, kind=e.type).options
        for e in view.edges
    )
    net.options = {
        "physics": {
            "enabled": view.physics,
            "stabilization": {"iterations": 150},
            "barnesHut": {"springLength": 90},
        },
        "interaction": {
            "hover": True,
            "tooltipDelay": 150,
            "hideEdgesOnDrag": len(view.nodes) > 500,
        },
        "edges": {"smooth": False, "arrows": {"to": {"scaleFactor": 0.4}}, "width": 1},
        "nodes": {"font": {"size": 11}},
        "layout": {"improvedLayout": False},
    }
    return net


def vis_data(view: GraphView) -> dict[str, Any]:
    """The nodes, edges and options that the page hands to vis-network."""
    nodes, edges, _heading, _height, _width, options = to_pyvis(view).get_network_data()
    return {"nodes": nodes, "edges": edges, "options": json.loads(options)}


#: What differs from one node to the next, sent in rows by :func:`packed`.
NODE_FIELDS = ("id", "label", "title", "size", "x", "y")
#: What differs from one edge to the next besides its ends.
EDGE_FIELDS = ("title",)


def packed(data: dict[str, Any]) -> dict[str, Any]:
    """:func:`vis_data` packed for the page, as ``cluster.js`` unpacks it.

    vis data repeats, in every node and edge, the names of its fields and what most
    share (colour, shape, kind, arrows), and names each edge's ends in full: half of
    a 500-node cluster's 0.8 MB. Packed, each distinct combination of the shared
    fields is sent once (``nodeStyles``, ``edgeStyles``), nodes as rows ``[style,
    *NODE_FIELDS]`` and edges as ``[from, to, style, *EDGE_FIELDS]`` with their ends
    as node numbers (a missing field is ``null``)."""

    def pack(
        items: list[dict[str, Any]], fields: tuple[str, ...], skip: tuple[str, ...] = ()
    ) -> tuple[list[dict[str, Any]], list[list[Any]]]:
        """The distinct styles, and a row ``[style, *fields]`` per item."""
        styles: dict[str, int] = {}
        shared: list[dict[str, Any]] = []
        rows = []
        for item in items:
            style = {k: v for k, v in item.items() if k not in fields and k not in skip}
            key = json.dumps(style, sort_keys=True)
            if key not in styles:
                styles[key] = len(shared)
                shared.append(style)
            rows.append([styles[key], *(item.get(k) for k in fields)])
        return shared, rows

    node_styles, nodes = pack(data["nodes"], NODE_FIELDS)
    edge_styles, edges = pack(data["edges"], EDGE_FIELDS, ("from", "to"))
    number = {n["id"]: i for i, n in enumerate(data["nodes"])}
    return {
        "packed": 1,
        "options": data["options"],
        "nodeFields": list(NODE_FIELDS),
        "nodeStyles": node_styles,
        "nodes": nodes,
        "edgeFields": list(EDGE_FIELDS),
        "edgeStyles": edge_styles,
        "edges": [
            [number.get(e["from"], e["from"]), number.get(e["to"], e["to"]), *row]
            for e, row in zip(data["edges"], edges, strict=True)
        ],
    }
