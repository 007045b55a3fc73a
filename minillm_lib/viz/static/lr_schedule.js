(function () {
  var V = window.minillmViz;
  if (V["lr-schedule"]) return;
  V["lr-schedule"] = function (root, d) {
    var $ = function (s) { return root.querySelector(s); };
    var sW = $('[data-testid="warmup"]'), sM = $('[data-testid="min-lr"]'), svg = $('[data-testid="curve"]');
    var cap = $('[data-testid="caption"]'), box = {x: 60, y: 26, w: 610, h: 190};
    var cfg = {lr: d.lr, min_lr: d.min_lr, warmup_iters: d.warmup_iters, max_iters: d.max_iters, lr_decay_iters: d.lr_decay_iters};
    var configured = Object.assign({}, cfg), ratio = d.lr > 0 ? d.min_lr / d.lr : 0;
    // the steps drawn: every step of training, or 2000 evenly spread ones plus the corners
    var steps = [], i, n = d.max_iters;
    if (n <= 2000) for (i = 0; i < n; i++) steps.push(i);
    else for (i = 0; i < 2000; i++) steps.push(Math.round(i * (n - 1) / 1999));
    function withCorners(c) {
      var extra = [c.warmup_iters - 1, c.warmup_iters, c.lr_decay_iters === null ? c.max_iters - 1 : c.lr_decay_iters - 1];
      var all = steps.concat(extra.filter(function (s) { return s >= 0 && s < n; }));
      return all.sort(function (a, b) { return a - b; }).filter(function (s, j) { return j === 0 || s !== all[j - 1]; });
    }
    var fmtLr = function (v) { return v === 0 ? "0" : v.toExponential(1).replace("e-", "e\u2212"); };
    var sc, dot, guide, pts;
    function draw() {
      V.clear(svg);
      sc = V.axes(svg, box, 0, n, 0, d.lr * 1.08 || 1, {yTicks: 5, xTicks: 8, xMinStep: 1, fmtY: fmtLr,
        xLabel: "optimizer step", yLabel: "learning rate"});
      var ref = withCorners(configured);
      V.polyline(svg, ref, ref.map(function (s) { return V.lrAt(s, configured); }), sc,
                 {stroke: "currentColor", "stroke-opacity": .45, "stroke-width": 1.2, "stroke-dasharray": "5 4"});
      var xs = withCorners(cfg), ys = xs.map(function (s) { return V.lrAt(s, cfg); });
      V.polyline(svg, xs, ys, sc, {stroke: "#2f7ed8", "stroke-width": 2});
      pts = xs.map(function (s, j) { return [s, ys[j]]; });
      V.svg("line", {x1: box.x + box.w - 150, x2: box.x + box.w - 126, y1: box.y + 4, y2: box.y + 4, stroke: "#2f7ed8", "stroke-width": 2}, svg);
      V.svg("text", {x: box.x + box.w - 120, y: box.y + 8}, svg, "these settings");
      V.svg("line", {x1: box.x + box.w - 150, x2: box.x + box.w - 126, y1: box.y + 20, y2: box.y + 20, stroke: "currentColor", "stroke-opacity": .45, "stroke-dasharray": "5 4"}, svg);
      V.svg("text", {x: box.x + box.w - 120, y: box.y + 24}, svg, "as configured");
      guide = V.svg("line", {y1: box.y, y2: box.y + box.h, stroke: "currentColor", "stroke-opacity": .35, visibility: "hidden"}, svg);
      dot = V.svg("circle", {r: 4, fill: "#2f7ed8", visibility: "hidden"}, svg);
      V.svg("rect", {x: box.x, y: box.y, width: box.w, height: box.h, fill: "transparent", "data-testid": "hover"}, svg)
        .addEventListener("mousemove", hover);
      svg.lastChild.addEventListener("mouseleave", idle);
      $('[data-testid="warmup-value"]').textContent = cfg.warmup_iters;
      $('[data-testid="min-lr-value"]').textContent = ratio.toFixed(2);
      idle();
      V.setState(root, {warmup_iters: cfg.warmup_iters, min_lr: cfg.min_lr, points: pts});
    }
    function idle() {
      guide.setAttribute("visibility", "hidden"); dot.setAttribute("visibility", "hidden");
      cap.textContent = "Warm-up over " + cfg.warmup_iters + " steps to lr " + V.fmt(cfg.lr) + ", cosine down to min_lr " +
        V.fmt(cfg.min_lr) + " at step " + (cfg.lr_decay_iters === null ? cfg.max_iters : cfg.lr_decay_iters) + ". Hover the curve.";
    }
    function hover(e) {
      var r = svg.getBoundingClientRect(), x = (e.clientX - r.left) * 680 / r.width;
      var step = Math.max(0, Math.min(n - 1, Math.round((x - box.x) / box.w * n))), lr = V.lrAt(step, cfg);
      guide.setAttribute("x1", sc.x(step)); guide.setAttribute("x2", sc.x(step)); guide.setAttribute("visibility", "visible");
      dot.setAttribute("cx", sc.x(step)); dot.setAttribute("cy", sc.y(lr)); dot.setAttribute("visibility", "visible");
      cap.textContent = "step " + step + ": lr = " + lr.toPrecision(4) + (step < cfg.warmup_iters ? " (warming up)" : "");
    }
    sW.addEventListener("input", function () { cfg.warmup_iters = parseInt(sW.value, 10); draw(); });
    sM.addEventListener("input", function () { ratio = parseFloat(sM.value); cfg.min_lr = ratio * cfg.lr; draw(); });
    draw();
  };
})();
