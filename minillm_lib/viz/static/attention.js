(function () {
  var V = window.minillmViz;
  if (V.attention) return;
  V.attention = function (root, d) {
    var $ = function (s) { return root.querySelector(s); };
    var T = d.tokens.length, PAD = 34, SIZE = Math.max(T, Math.min(320, Math.floor(320 / T) * T || 320));
    var sL = $('[data-testid="layer"]'), sH = $('[data-testid="head"]'), sQ = $('[data-testid="query"]');
    var canvas = $('[data-testid="heatmap"]'), axes = $(".mlv-axes"), text = $('[data-testid="text"]');
    var cap = $('[data-testid="caption"]'), ctx = canvas.getContext("2d");
    canvas.width = T; canvas.height = T;  // one pixel per (query, key); CSS scales it up
    canvas.style.left = PAD + "px"; canvas.style.top = "4px";
    canvas.style.width = SIZE + "px"; canvas.style.height = SIZE + "px";
    var box = {x: PAD, y: 4, w: SIZE, h: SIZE}, cell = SIZE / T;
    axes.setAttribute("width", PAD + SIZE + 6); axes.setAttribute("height", SIZE + 62);
    canvas.parentNode.style.width = (PAD + SIZE + 6) + "px"; canvas.parentNode.style.height = (SIZE + 62) + "px";
    var st = {layer: d.start.layer, head: d.start.head, query: d.start.query}, highlight;
    function w(q, k) { return d.weights[st.layer][st.head][q * (q + 1) / 2 + k] / d.scale; }
    function tok(i) { return JSON.stringify(d.tokens[i]); }
    // static axes: ticks, titles, colour bar
    (function () {
      var step = T <= 16 ? 1 : T <= 40 ? 5 : 10, i;
      for (i = 0; i < T; i += step) {
        V.svg("text", {x: box.x + (i + .5) * cell, y: box.y + box.h + 13, "text-anchor": "middle", "font-size": 10}, axes, i);
        V.svg("text", {x: box.x - 4, y: box.y + (i + .5) * cell + 3.5, "text-anchor": "end", "font-size": 10}, axes, i);
      }
      V.svg("text", {x: box.x + box.w / 2, y: box.y + box.h + 27, "text-anchor": "middle", "font-size": 11}, axes, "key position (attended to)");
      V.svg("text", {transform: "translate(9," + (box.y + box.h / 2) + ") rotate(-90)", "text-anchor": "middle", "font-size": 11}, axes, "query position");
      V.svg("rect", {x: box.x - .5, y: box.y - .5, width: box.w + 1, height: box.h + 1, fill: "none", stroke: "currentColor", "stroke-opacity": .3}, axes);
      var grad = V.svg("linearGradient", {id: root.id + "-grad"}, V.svg("defs", {}, axes));
      for (i = 0; i <= 8; i++) V.svg("stop", {offset: i / 8, "stop-color": V.css(V.ramp(V.viridis, i / 8))}, grad);
      var y = box.y + box.h + 36, bw = Math.min(200, box.w - 60);
      V.svg("rect", {x: box.x, y: y, width: bw, height: 9, fill: "url(#" + root.id + "-grad)"}, axes);
      [0, .1, .25, .5, 1].forEach(function (v) {
        V.svg("text", {x: box.x + Math.sqrt(v) * bw, y: y + 21, "text-anchor": "middle", "font-size": 9}, axes, v);
      });
      V.svg("text", {x: box.x + bw + 6, y: y + 8, "font-size": 10}, axes, "weight (\u221a scale)");
      highlight = V.svg("rect", {x: box.x - 1, width: box.w + 2, height: cell + 2, fill: "none", stroke: "currentColor", "stroke-width": 1.5}, axes);
    })();
    var spans = d.tokens.map(function (s, i) {
      var span = document.createElement("span");
      span.className = "mlv-tok"; span.setAttribute("data-testid", "token"); span.setAttribute("data-index", i);
      span.textContent = s === "\n" ? "\u21b5\n" : s;
      span.title = "position " + i + " " + tok(i) + " (click: make it the query)";
      span.addEventListener("click", function () { setQuery(i); });
      span.addEventListener("mouseenter", function () { describe(st.query, i); });
      span.addEventListener("mouseleave", function () { describe(st.query, null); });
      text.appendChild(span);
      return span;
    });
    function describe(q, k) {
      var where = "Layer " + st.layer + ", head " + st.head + ": ";
      if (k === null) {
        var best = 0, j;
        for (j = 1; j <= q; j++) if (w(q, j) > w(q, best)) best = j;
        cap.textContent = where + "query " + q + " " + tok(q) + " attends most to position " + best + " " +
          tok(best) + " (weight " + V.fmt(w(q, best)) + ").";
      } else if (k > q) {
        cap.textContent = where + "position " + k + " " + tok(k) + " comes after query " + q + ": masked, weight 0.";
      } else {
        cap.textContent = where + "query " + q + " " + tok(q) + " \u2192 key " + k + " " + tok(k) + ": weight " + V.fmt(w(q, k), 3) + ".";
      }
    }
    function draw() {
      var img = ctx.createImageData(T, T), px = img.data, q, k, sum = 0;
      for (q = 0; q < T; q++) for (k = 0; k <= q; k++) {
        var v = w(q, k), c = V.ramp(V.viridis, Math.sqrt(v)), o = 4 * (q * T + k);
        px[o] = c[0]; px[o + 1] = c[1]; px[o + 2] = c[2]; px[o + 3] = 255;
        sum += v * (q * T + k);
      }
      ctx.putImageData(img, 0, 0);
      var checksum = sum.toFixed(4);
      canvas.setAttribute("data-checksum", checksum);
      highlight.setAttribute("y", box.y + st.query * cell - 1);
      var row = [], top = 0;
      for (k = 0; k <= st.query; k++) { row.push(+w(st.query, k).toFixed(4)); top = Math.max(top, row[k]); }
      spans.forEach(function (span, i) {
        span.classList.toggle("mlv-query", i === st.query);
        span.classList.toggle("mlv-future", i > st.query);
        span.style.backgroundColor = i <= st.query ? "rgba(255,140,0," + (0.85 * row[i] / (top || 1)).toFixed(3) + ")" : "";
      });
      text.setAttribute("data-row", JSON.stringify(row));
      sQ.value = st.query;
      $('[data-testid="query-value"]').textContent = st.query + " " + tok(st.query);
      describe(st.query, null);
      V.setState(root, {layer: st.layer, head: st.head, query: st.query, checksum: checksum});
    }
    function setQuery(q) { st.query = q; draw(); }
    function cellAt(e) {
      var r = canvas.getBoundingClientRect();
      return [Math.min(T - 1, Math.floor((e.clientY - r.top) / r.height * T)), Math.min(T - 1, Math.floor((e.clientX - r.left) / r.width * T))];
    }
    canvas.addEventListener("mousemove", function (e) { var c = cellAt(e); describe(c[0], c[1]); });
    canvas.addEventListener("mouseleave", function () { describe(st.query, null); });
    canvas.addEventListener("click", function (e) { setQuery(cellAt(e)[0]); });
    sL.addEventListener("change", function () { st.layer = +sL.value; draw(); });
    sH.addEventListener("change", function () { st.head = +sH.value; draw(); });
    sQ.addEventListener("input", function () { setQuery(+sQ.value); });
    draw();
  };
})();
