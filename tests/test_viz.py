"""The cluster graph's view: the same cluster gets the same picture in any process, and
the packed data the page gets unpacks to what vis-network is given."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from typing import Any

from ringscope.api.viz import EdgeView, GraphView, NodeView, packed, vis_data, with_layout

#: Builds a view (two dense groups joined by a bridge, 120 nodes) and prints its layout.
SCRIPT = """
import json, random, sys
from ringscope.api.viz import EdgeView, GraphView, NodeView, with_layout
random.seed(int(sys.argv[1]))  # whatever else the process drew before
random.random()
nodes = tuple(NodeView(f"Account:a{i}", f"a{i}", "", "member", "#000", 10.0, "dot")
              for i in range(120))
edges = tuple(EdgeView(f"Account:a{i}", f"Account:a{j}", "FOLLOWS", "#000", "")
              for i in range(120) for j in range(i + 1, 120)
              if (i < 60) == (j < 60) and (i * 7 + j * 13) % 5 == 0)
edges += (EdgeView("Account:a0", "Account:a119", "FOLLOWS", "#000", ""),)
print(json.dumps([(n.x, n.y) for n in with_layout(GraphView(nodes, edges)).nodes]))
"""


def _layout_in_a_process(draws: int, hash_seed: str) -> list[list[float]]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(draws)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    positions: list[list[float]] = json.loads(out.stdout)
    return positions


def test_the_same_cluster_is_laid_out_alike_in_every_process() -> None:
    first = _layout_in_a_process(1, "1")
    assert len(first) == 120 and len({tuple(p) for p in first}) == 120
    assert _layout_in_a_process(2, "2") == first
    assert _layout_in_a_process(3, "3") == first


def test_a_layout_leaves_the_process_random_generator_alone() -> None:
    nodes = tuple(
        NodeView(f"Stream:s{i}", "", "", "Stream", "#000", 7.0, "square") for i in range(8)
    )
    edges = tuple(
        EdgeView(f"Stream:s{i}", f"Stream:s{(i + 1) % 8}", "HOSTED", "#000", "") for i in range(8)
    )
    random.seed(5)
    expected = [random.random() for _ in range(3)]
    random.seed(5)
    one = with_layout(GraphView(nodes, edges))
    assert [random.random() for _ in range(3)] == expected
    random.seed(99)
    assert with_layout(GraphView(nodes, edges)) == one


def _unpack(data: dict[str, Any]) -> dict[str, Any]:
    """What ``static/cluster.js`` does with packed data, in Python."""
    nodes = []
    for r in data["nodes"]:
        n = dict(data["nodeStyles"][r[0]])
        n.update({k: v for k, v in zip(data["nodeFields"], r[1:], strict=True) if v is not None})
        nodes.append(n)
    edges = []
    for r in data["edges"]:
        e = dict(data["edgeStyles"][r[2]])
        e["from"], e["to"] = (nodes[x]["id"] if isinstance(x, int) else x for x in r[:2])
        e.update({k: v for k, v in zip(data["edgeFields"], r[3:], strict=True) if v is not None})
        edges.append(e)
    return {"nodes": nodes, "edges": edges, "options": data["options"]}


def test_packed_vis_data_unpacks_to_the_same_and_is_smaller() -> None:
    ip = "Identifier:ip:10.0.0.1"
    nodes = [
        NodeView(
            f"Account:a{i}",
            f"a{i}",
            f"Account:a{i}\ncountry: TH",
            "buyer" if i % 3 else "seller",
            "#1c7ed6" if i % 3 else "#c2255c",
            10.0 + i,
            "dot",
        )
        for i in range(40)
    ]
    nodes.append(NodeView(ip, "10.0.0.1", "ip", "Identifier", "#b197fc", 7.0, "hexagon"))
    edges = [EdgeView(f"Account:a{i}", ip, "USES", "#7048e8", f"USES\nn: {i}") for i in range(40)]
    edges += [
        EdgeView(f"Account:a{i}", f"Account:a{i + 1}", "FOLLOWS", "#adb5bd", "FOLLOWS")
        for i in range(39)
    ]
    data = vis_data(with_layout(GraphView(tuple(nodes), tuple(edges))))
    small = packed(data)
    assert _unpack(json.loads(json.dumps(small))) == data
    assert len(small["nodeStyles"]) == 3 and len(small["edgeStyles"]) == 2
    assert len(json.dumps(small)) < 0.6 * len(json.dumps(data))
    # an edge whose end is not drawn keeps its id
    data["edges"].append({**data["edges"][0], "to": "Stream:s-gone"})
    assert _unpack(packed(data)) == data
