(function () {
  var V = window.minillmViz;
  if (V.position) return;
  V.position = function (root, d) {
    var $ = function (s) { return root.querySelector(s); };
    var T = d.block_size, C = d.n_embd, PAD = 40, W = 600, H = Math.round(Math.min(300, Math.max(140, W * T / C)));
    var canvas = $('[data-testid="heatmap"]'), axes = $(".mlv-axes"), slider = $('[data-testid="position"]');
    var cap = $('[data-testid="caption"]'), vec = $('[data-testid="vector"]'), sim = $('[data-testid="similarity"]');
    var table = d.table.map(function (v) { return v / d.scale; });
    function at(p, c) { return table[p * C + c]; }
    canvas.width = C; canvas.height = T;
    canvas.style.left = PAD + "px"; canvas.style.top = "4px"; canvas.style.width = W + "px"; canvas.style.height = H + "px";
    canvas.parentNode.style.width = (PAD + W + 10) + "px"; canvas.parentNode.style.height = (H + 40) + "px";
    axes.setAttribute("width", PAD + W + 10); axes.setAttribute("height", H + 40);
    var img = canvas.getContext("2d").createImageData(C, T), p, c;
    for (p = 0; p < T; p++) for (c = 0; c < C; c++) {
      var col = V.ramp(V.rdbu, (at(p, c) + 1) / 2), o = 4 * (p * C + c);
      img.data[o] = col[0]; img.data[o + 1] = col[1]; img.data[o + 2] = col[2]; img.data[o + 3] = 255;
    }
    canvas.getContext("2d").putImageData(img, 0, 0);
    var box = {x: PAD, y: 4, w: W, h: H};
    var xs = V.niceStep(C, 8), ys = V.niceStep(T, 6);
    for (c = 0; c < C; c += xs) V.svg("text", {x: box.x + (c + .5) * W / C, y: box.y + H + 13, "text-anchor": "middle", "font-size": 10}, axes, c);
    for (p = 0; p < T; p += ys) V.svg("text", {x: box.x - 4, y: box.y + (p + .5) * H / T + 3.5, "text-anchor": "end", "font-size": 10}, axes, p);
    V.svg("text", {x: box.x + W / 2, y: box.y + H + 28, "text-anchor": "middle", "font-size": 11}, axes, "channel (even = sin, odd = cos; slower to the right) \u00b7 \u22121 blue, 0 white, +1 red");
    V.svg("text", {transform: "translate(10," + (box.y + H / 2) + ") rotate(-90)", "text-anchor": "middle", "font-size": 11}, axes, "position");
    var band = V.svg("rect", {x: box.x - 1, width: W + 2, height: H / T + 2, fill: "none", stroke: "currentColor", "stroke-width": 1.5}, axes);
    var cur = d.start;
    function formula(p, c) {
      var i2 = c - c % 2;
      return (c % 2 ? "cos" : "sin") + "(" + p + " / " + V.fmt(d.base) + "^(" + i2 + "/" + C + ")) = " + at(p, c).toFixed(4);
    }
    function idle() { cap.textContent = "Position " + cur + ": its vector and its cosine similarity to every position. Hover the table for values."; }
    function draw() {
      band.setAttribute("y", box.y + cur * H / T - 1);
      var xe = [], ye = [], xo = [], yo = [], cos = [], q, nc = 0;
      for (c = 0; c < C; c++) {
        if (c % 2) { xo.push(c); yo.push(at(cur, c)); } else { xe.push(c); ye.push(at(cur, c)); }
        nc += at(cur, c) * at(cur, c);
      }
      for (q = 0; q < T; q++) {
        var dot = 0, nq = 0;
        for (c = 0; c < C; c++) { dot += at(cur, c) * at(q, c); nq += at(q, c) * at(q, c); }
        cos.push(+(dot / Math.sqrt(nc * nq || 1)).toFixed(4));
      }
      V.clear(vec); V.clear(sim);
      var bx = {x: 40, y: 22, w: 265, h: 120};
      var s1 = V.axes(vec, bx, 0, C - 1, -1, 1, {yTicks: 4, xTicks: 5, xMinStep: 1, xLabel: "channel", yLabel: "position " + cur + "'s vector"});
      V.polyline(vec, xe, ye, s1, {stroke: "#2f7ed8", "stroke-width": 1.5});
      V.polyline(vec, xo, yo, s1, {stroke: "#e08a00", "stroke-width": 1.5});
      V.svg("text", {x: bx.x + bx.w, y: bx.y - 8, "text-anchor": "end", style: "fill:#2f7ed8"}, vec, "sin (even)");
      V.svg("text", {x: bx.x + bx.w - 62, y: bx.y - 8, "text-anchor": "end", style: "fill:#e08a00"}, vec, "cos (odd)");
      var pos = [];
      for (q = 0; q < T; q++) pos.push(q);
      var lo = Math.min(0, Math.min.apply(null, cos));
      var s2 = V.axes(sim, bx, 0, T - 1, lo, 1, {yTicks: 4, xTicks: 5, xMinStep: 1, xLabel: "position", yLabel: "cosine similarity to position " + cur});
      V.polyline(sim, pos, cos, s2, {stroke: "#d6604d", "stroke-width": 1.5});
      V.svg("circle", {cx: s2.x(cur), cy: s2.y(1), r: 3.5, fill: "#d6604d"}, sim);
      $('[data-testid="position-value"]').textContent = cur;
      idle();
      V.setState(root, {position: cur, cosine: cos});
    }
    canvas.addEventListener("mousemove", function (e) {
      var r = canvas.getBoundingClientRect();
      var p = Math.min(T - 1, Math.floor((e.clientY - r.top) / r.height * T)), c = Math.min(C - 1, Math.floor((e.clientX - r.left) / r.width * C));
      cap.textContent = "position " + p + ", channel " + c + ": " + formula(p, c);
    });
    canvas.addEventListener("mouseleave", idle);
    canvas.addEventListener("click", function (e) {
      var r = canvas.getBoundingClientRect();
      cur = Math.min(T - 1, Math.floor((e.clientY - r.top) / r.height * T)); slider.value = cur; draw();
    });
    slider.addEventListener("input", function () { cur = +slider.value; draw(); });
    draw();
  };
})();
