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
  // A bar chart of next-token probabilities in svg. bars[i]: {label, value (bar height),
  // outline (a dashed outline at this height, optional), grey (drawn grey: filtered out),
  // mark (outlined in orange: the token drawn), title (hover text), attrs (data attributes)}.
  V.bars = function (svg, bars, footer) {
    var box = {x: 44, y: 22, w: 630, h: 170}, n = bars.length, top = 0, i;
    for (i = 0; i < n; i++) top = Math.max(top, bars[i].value, bars[i].outline || 0);
    var step = V.niceStep(top || 1, 4), ymax = Math.min(1, Math.ceil((top || 1) / step) * step);
    V.clear(svg);
    var sc = V.axes(svg, box, 0, n, 0, ymax, {yTicks: 4, noXTicks: true,
      fmtY: function (v) { return Math.round(v * 100) + "%"; }, yLabel: "probability of the next token"});
    var bw = box.w / n, gap = Math.min(6, bw * .2);
    for (i = 0; i < n; i++) {
      var b = bars[i], x = sc.x(i) + gap / 2, w = bw - gap, attrs = {"data-testid": "bar"}, k;
      for (k in b.attrs) attrs[k] = b.attrs[k];
      var g = V.svg("g", attrs, svg), h = sc.y(0) - sc.y(b.value);
      V.svg("rect", {x: x, y: sc.y(b.value), width: w, height: h, fill: b.grey ? V.GREY : V.BLUE}, g);
      if (b.outline !== undefined) {
        V.svg("rect", {x: x + .5, y: sc.y(b.outline), width: w - 1, height: sc.y(0) - sc.y(b.outline), fill: "none",
                       stroke: "currentColor", "stroke-opacity": .6, "stroke-dasharray": "3 2"}, g);
      }
      if (b.mark) V.svg("rect", {x: x - 1.5, y: sc.y(b.value) - 1.5, width: w + 3, height: h + 3, fill: "none", stroke: V.ORANGE, "stroke-width": 2}, g);
      if (!b.grey && b.value >= .01) {
        V.svg("text", {x: x + w / 2, y: sc.y(b.value) - 4, "text-anchor": "middle", "font-size": 10}, g, V.fmt(100 * b.value, 2) + "%");
      }
      var label = V.visible(b.label);
      V.svg("text", {x: x + w / 2, y: box.y + box.h + 17, "text-anchor": "middle", "font-size": 13,
                     "class": "mlv-mono", opacity: b.grey ? .5 : 1}, g, label.length > 6 ? label.slice(0, 5) + "\u2026" : label);
      V.svg("title", {}, g, b.title);
    }
    V.svg("text", {x: box.x + box.w, y: box.y + box.h + 36, "text-anchor": "end", "font-size": 11, opacity: .75}, svg, footer);
  };
  V.BLUE = "#2f7ed8"; V.GREY = "rgba(140,140,140,.45)"; V.ORANGE = "#e8731a";
  // Load the model an explorer runs (source: {key, url, nbytes}, see minillm_lib/viz/live.py) and
  // call ready(model); the caption says what is happening, and why if it fails.
  V.withModel = function (root, source, ready) {
    var cap = root.querySelector('[data-testid="caption"]');
    cap.textContent = "Loading the model (" + V.fmt(source.nbytes / 1e6, 3) + " MB of weights)\u2026";
    window.minillm.loadModel(source.key, source.url, function (model) {
      root.setAttribute("data-model", "ready");
      ready(model);
    }, function (error) {
      root.setAttribute("data-model", "failed");
      cap.textContent = "The model did not load: " + error.message;
      console.error("minillm: " + error.message);
    });
  };
  // A token's text as an inline span (data-testid="token", data-step=step); whitespace shown.
  V.tokenSpan = function (text, step, className) {
    var span = document.createElement("span");
    span.className = "mlv-tok" + (className ? " " + className : "");
    span.setAttribute("data-testid", "token");
    span.setAttribute("data-step", step);
    span.textContent = text;
    return span;
  };
  // The sampling options the sliders of a live explorer set (absent sliders: off), with their
  // readouts updated. Sliders mean "off" at one end: top-k 0, top-p 1, min-p 0, repetition penalty 1.
  V.samplingSettings = function (root) {
    function value(testid) { var e = root.querySelector('[data-testid="' + testid + '"]'); return e ? +e.value : null; }
    var s = {temperature: value("temperature"), top_k: value("top-k") || null, top_p: value("top-p"),
             min_p: value("min-p"), repetition_penalty: value("repetition-penalty")};
    s.top_p = s.top_p === null || s.top_p >= 1 ? null : s.top_p;
    s.min_p = s.min_p || null;
    s.repetition_penalty = s.repetition_penalty === null || s.repetition_penalty === 1 ? 1 : s.repetition_penalty;
    var seed = root.querySelector('[data-testid="seed"]');
    s.seed = seed ? Math.max(0, Math.min(4294967295, Math.floor(+seed.value) || 0)) : 0;
    var show = {temperature: s.temperature, "top-k": s.top_k || "off", "top-p": s.top_p || "off",
                "min-p": s.min_p || "off", "repetition-penalty": s.repetition_penalty === 1 ? "off" : s.repetition_penalty};
    Object.keys(show).forEach(function (k) {
      var out = root.querySelector('[data-testid="' + k + '-value"]');
      if (out) out.textContent = String(show[k]);
    });
    return s;
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
