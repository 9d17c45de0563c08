// The live explorer: expands neighbours through the API on click, within a node budget.
(function () {
  "use strict";
  var holder = document.getElementById("explorer");
  var config = JSON.parse(document.getElementById("explorer-config").textContent);
  var form = document.getElementById("explorer-controls");
  var status = document.getElementById("explorer-status");
  var nodes = new vis.DataSet([]);
  var edges = new vis.DataSet([]);
  var shapes = { Account: "dot", Stream: "square", Product: "triangle", Order: "diamond", Identifier: "hexagon" };
  var network = new vis.Network(holder, { nodes: nodes, edges: edges }, {
    physics: { stabilization: { iterations: 120 }, barnesHut: { springLength: 90 } },
    interaction: { hover: true },
    edges: { smooth: false, arrows: { to: { scaleFactor: 0.4 } } },
    nodes: { size: 10, font: { size: 11 } }
  });
  var expanded = {};
  var state = { busy: 0 };

  function say(text) { status.textContent = text; }

  function short(text) { return text.length > 24 ? text.slice(0, 23) + "\u2026" : text; }

  function params() {
    var q = new URLSearchParams();
    form.querySelectorAll("input[name=rel]:checked").forEach(function (c) { q.append("rel", c.value); });
    var start = form.elements.start.value, end = form.elements.end.value;
    if (start) { q.set("start", start); }
    if (end) { q.set("end", end); }
    q.set("limit", form.elements.limit.value || "60");
    return q;
  }

  function describe(n) {
    var lines = [n.ref];
    Object.keys(n.props).sort().slice(0, 8).forEach(function (k) { lines.push(k + ": " + n.props[k]); });
    return lines.join("\n");  // vis-network shows string titles as text
  }

  function add(graph) {
    var newNodes = graph.nodes.filter(function (n) { return !nodes.get(n.ref); }).map(function (n) {
      return {
        id: n.ref, label: n.label === "Order" ? "" : short(n.id), title: describe(n),
        color: n.ref === config.ref ? "#e03131" : (config.labels[n.label] || "#ced4da"),
        shape: shapes[n.label] || "dot", size: n.ref === config.ref ? 18 : 10
      };
    });
    nodes.add(newNodes);
    var newEdges = graph.edges.map(function (e) {
      return { id: e.source + "|" + e.type + "|" + e.target, from: e.source, to: e.target,
               title: e.type, color: config.edges[e.type] || "#adb5bd" };
    }).filter(function (e) { return !edges.get(e.id); });
    edges.add(newEdges);
    return newNodes.length;
  }

  function fetchJson(url) {
    state.busy += 1;
    return fetch(url, { headers: { Accept: "application/json" } }).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) { throw new Error(body.detail || r.statusText); }
        return body;
      });
    }).finally(function () { state.busy -= 1; });
  }

  function expand(ref) {
    say("Expanding " + ref + "\u2026");
    var url = "/api/entities/" + encodeURIComponent(ref) + "/neighbourhood?hops=1&" + params();
    return fetchJson(url).then(function (g) {
      expanded[ref] = true;
      var added = add(g);
      say(ref + ": " + added + " new node(s)" + (g.truncated ? " (budget reached)" : "") +
          ". " + nodes.length + " nodes shown.");
    }).catch(function (e) { say("Could not expand " + ref + ": " + e.message); });
  }

  function reload() {
    nodes.clear(); edges.clear(); expanded = {};
    return expand(config.ref);
  }

  function findPath() {
    var target = form.elements.target.value.trim();
    if (!target) { say("Enter a node as Label:id, e.g. Account:a1."); return; }
    var q = new URLSearchParams({ a: config.ref, b: target });
    form.querySelectorAll("input[name=rel]:checked").forEach(function (c) { q.append("rel", c.value); });
    say("Looking for a path to " + target + "\u2026");
    fetchJson("/api/path?" + q).then(function (p) {
      if (!p.found) { say("No path to " + target + " within 6 steps."); return; }
      add({ nodes: p.nodes, edges: p.edges });
      var ids = p.nodes.map(function (n) { return n.ref; });
      network.selectNodes(ids);
      say("Path of " + p.length + " step(s): " + ids.join(" \u2192 "));
    }).catch(function (e) { say("No path: " + e.message); });
  }

  network.on("click", function (ev) {
    if (ev.nodes.length === 1 && !expanded[ev.nodes[0]]) { expand(ev.nodes[0]); }
  });
  network.on("doubleClick", function (ev) {
    if (ev.nodes.length === 1) { window.location.href = "/entities/" + encodeURIComponent(ev.nodes[0]); }
  });
  form.addEventListener("submit", function (ev) { ev.preventDefault(); });
  document.getElementById("reload").addEventListener("click", reload);
  document.getElementById("find-path").addEventListener("click", findPath);
  window.rsExplorer = { network: network, nodes: nodes, edges: edges, expand: expand, state: state };
  reload();
})();
