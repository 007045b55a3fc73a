(function () {
  var V = window.minillmViz = window.minillmViz || {};
  if (V.start) return;
  var NS = "http://www.w3.org/2000/svg";
  V.svg = function (tag, attrs, parent, text) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  };
  V.clear = function (node) { while (node.firstChild) node.removeChild(node.firstChild); };
  // Short number text: 3 significant digits, no trailing zeros.
  V.fmt = function (x, digits) {
    if (x === 0) return "0";
    var s = Number(x).toPrecision(digits || 3);
    if (s.indexOf("e") < 0 && s.indexOf(".") >= 0) s = s.replace(/0+$/, "").replace(/\.$/, "");
    return s;
  };
  // Whitespace and control characters made visible (for labels).
  V.visible = function (s) {
    return s.replace(/\n/g, "\u21b5").replace(/ /g, "\u2423").replace(/\t/g, "\u21e5")
      // eslint-disable-next-line no-control-regex -- finding control characters is the point
      .replace(/[\x00-\x1f\x7f]/g, function (c) { return "\\x" + ("0" + c.charCodeAt(0).toString(16)).slice(-2); });
  };
  V.viridis = [[68,1,84],[71,44,122],[59,81,139],[44,113,142],[33,144,140],[39,173,129],[92,200,99],[170,220,50],[253,231,37]];
  V.rdbu = [[33,102,172],[67,147,195],[146,197,222],[209,229,240],[247,247,247],[253,219,199],[244,165,130],[214,96,77],[178,24,43]];
  // Colour at t in [0, 1] along the stops, as [r, g, b].
  V.ramp = function (stops, t) {
    t = Math.min(1, Math.max(0, t)) * (stops.length - 1);
    var i = Math.min(stops.length - 2, Math.floor(t)), f = t - i, a = stops[i], b = stops[i + 1];
    return [a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), a[2] + f * (b[2] - a[2])];
  };
  V.css = function (c) { return "rgb(" + Math.round(c[0]) + "," + Math.round(c[1]) + "," + Math.round(c[2]) + ")"; };
  // A "nice" tick step (1, 2, 2.5 or 5 times a power of ten) for about n ticks over range.
  V.niceStep = function (range, n) {
    var raw = range / n, mag = Math.pow(10, Math.floor(Math.log10(raw))), r = raw / mag;
    return (r <= 1 ? 1 : r <= 2 ? 2 : r <= 2.5 ? 2.5 : r <= 5 ? 5 : 10) * mag;
  };
  // Axes in box {x, y, w, h} for x in [x0, x1], y in [y0, y1]; returns the two scales.
  V.axes = function (svg, box, x0, x1, y0, y1, o) {
    o = o || {};
    var sx = function (v) { return box.x + (v - x0) / (x1 - x0 || 1) * box.w; };
    var sy = function (v) { return box.y + box.h - (v - y0) / (y1 - y0 || 1) * box.h; };
    var g = V.svg("g", {}, svg), s, v;
    s = V.niceStep(y1 - y0, o.yTicks || 4);
    for (v = Math.ceil(y0 / s - 1e-9) * s; v <= y1 + 1e-12; v += s) {
      V.svg("line", {x1: box.x, x2: box.x + box.w, y1: sy(v), y2: sy(v), stroke: "currentColor", "stroke-opacity": Math.abs(v) < 1e-12 ? .5 : .13}, g);
      V.svg("text", {x: box.x - 5, y: sy(v) + 3.5, "text-anchor": "end"}, g, (o.fmtY || V.fmt)(Math.abs(v) < 1e-12 ? 0 : v));
    }
    s = Math.max(o.xMinStep || 0, V.niceStep(x1 - x0, o.xTicks || 6));
    for (v = Math.ceil(x0 / s - 1e-9) * s; !o.noXTicks && v <= x1 + 1e-9; v += s) {
      V.svg("line", {x1: sx(v), x2: sx(v), y1: box.y + box.h, y2: box.y + box.h + 4, stroke: "currentColor", "stroke-opacity": .5}, g);
      V.svg("text", {x: sx(v), y: box.y + box.h + 15, "text-anchor": "middle"}, g, V.fmt(v, 4));
    }
    V.svg("line", {x1: box.x, x2: box.x + box.w, y1: box.y + box.h, y2: box.y + box.h, stroke: "currentColor", "stroke-opacity": .5}, g);
    if (o.xLabel) V.svg("text", {x: box.x + box.w / 2, y: box.y + box.h + 30, "text-anchor": "middle", "font-size": 12}, g, o.xLabel);
    if (o.yLabel) V.svg("text", {x: box.x, y: box.y - 8, "text-anchor": "start", "font-size": 12}, g, o.yLabel);
    return {x: sx, y: sy};
  };
  V.polyline = function (svg, xs, ys, sc, attrs) {
    var pts = [];
    for (var i = 0; i < xs.length; i++) pts.push(sc.x(xs[i]).toFixed(2) + "," + sc.y(ys[i]).toFixed(2));
    attrs.points = pts.join(" ");
    attrs.fill = "none";
    return V.svg("polyline", attrs, svg);
  };
  V.setState = function (root, state) { root.setAttribute("data-state", JSON.stringify(state)); };
  V.start = function (kind, script, id) {
    var root = (script && script.closest && script.closest(".mlv")) || document.getElementById(id);
    if (!root || root.getAttribute("data-ready")) return;  // already running (an output shown twice)
    root.setAttribute("data-ready", "1");
    var data = JSON.parse(root.querySelector("script.mlv-data").textContent);
    root.querySelector(".mlv-fallback").style.display = "none";
    root.querySelector(".mlv-body").style.display = "";
    V[kind](root, data);
  };
  // minillm_lib.training.lr_at, line by line (same operations in the same order).
  V.lrAt = function (step, cfg) {
    var decayIters = cfg.lr_decay_iters === null || cfg.lr_decay_iters === undefined ? cfg.max_iters : cfg.lr_decay_iters;
    if (step < cfg.warmup_iters) return cfg.lr * (step + 1) / cfg.warmup_iters;
    if (step >= decayIters) return cfg.min_lr;
    var progress;
    if (cfg.schedule === "wsd") {
      var decayStart = decayIters - cfg.decay_fraction * (decayIters - cfg.warmup_iters);
      if (step < decayStart) return cfg.lr;
      progress = (step - decayStart) / (decayIters - decayStart);
      return cfg.lr + progress * (cfg.min_lr - cfg.lr);
    }
    progress = (step - cfg.warmup_iters) / (decayIters - cfg.warmup_iters);
    return cfg.min_lr + 0.5 * (1.0 + Math.cos(Math.PI * progress)) * (cfg.lr - cfg.min_lr);
  };
})();
