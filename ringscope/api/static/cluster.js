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
  var data = JSON.parse(raw.textContent);
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
