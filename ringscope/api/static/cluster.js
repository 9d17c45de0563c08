// The cluster graph: nodes, edges and options prepared on the server (pyvis view model).
(function () {
  "use strict";
  // legend colours come as data attributes: the page's CSP allows no inline style
  document.querySelectorAll("i[data-colour]").forEach(function (i) {
    i.style.background = i.getAttribute("data-colour");
  });
  var holder = document.getElementById("graph");
  var raw = document.getElementById("graph-data");
  if (!holder || !raw || typeof vis === "undefined") { return; }
  // The graph comes packed (ringscope.api.viz.packed): what nodes or edges share
  // (colour, shape, kind, arrows) once per combination, the rest in rows, edge ends
  // as node numbers.
  function unpack(data) {
    if (!data.packed) { return data; }
    var nodes = data.nodes.map(function (r) {
      var n = Object.assign({}, data.nodeStyles[r[0]]);
      data.nodeFields.forEach(function (k, i) {
        if (r[i + 1] !== null) { n[k] = r[i + 1]; }
      });
      return n;
    });
    function end(x) { return typeof x === "number" ? nodes[x].id : x; }
    var edges = data.edges.map(function (r) {
      var e = Object.assign({}, data.edgeStyles[r[2]]);
      e.from = end(r[0]);
      e.to = end(r[1]);
      data.edgeFields.forEach(function (k, i) {
        if (r[i + 3] !== null) { e[k] = r[i + 3]; }
      });
      return e;
    });
    return { nodes: nodes, edges: edges, options: data.options };
  }
  var data = unpack(JSON.parse(raw.textContent));
  var nodes = new vis.DataSet(data.nodes);
  var edges = new vis.DataSet(data.edges);
  var network = new vis.Network(holder, { nodes: nodes, edges: edges }, data.options);
  network.on("doubleClick", function (params) {
    if (params.nodes.length === 1) {
      window.location.href = "/entities/" + encodeURIComponent(params.nodes[0]);
    }
  });
  network.once("afterDrawing", function () { holder.setAttribute("data-drawn", "1"); });
  window.rsGraph = { network: network, nodes: nodes, edges: edges };
})();
