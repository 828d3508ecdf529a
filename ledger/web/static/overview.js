// Draws the overview's chart with the vendored uPlot from the JSON the page carries; the
// figures are also in the table beside it (the chart is a picture of the table).
"use strict";
(function () {
  function draw() {
    var holder = document.getElementById("chart");
    var source = document.getElementById("chart-data");
    if (!holder || !source || typeof uPlot === "undefined") return;
    var chart = JSON.parse(source.textContent);
    Object.keys(chart).forEach(function (currency) {
      var c = chart[currency];
      var xs = c.x.map(function (d) { return Date.parse(d + "T00:00:00Z") / 1000; });
      var num = function (s) { return parseFloat(s); };
      var box = document.createElement("div");
      holder.appendChild(box);
      new uPlot({
        title: "Liability " + currency,
        width: Math.min(900, holder.clientWidth || 900),
        height: 300,
        series: [
          {},
          { label: "At the close", stroke: "#0b5cad", width: 2, points: { show: true } },
          { label: "Known now", stroke: "#a4161a", width: 2, dash: [6, 4], points: { show: true } }
        ]
      }, [xs, c.at_close.map(num), c.now.map(num)], box);
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
