(function () {
  var V = window.minillmViz;
  if (V.attentionView) return;
  // The attention heatmap and the shaded text inside one explorer root. view.show(d, start)
  // draws d = {tokens, n_layer, n_head, weight(layer, head, query, key)} (T = tokens.length);
  // start = {layer, head, query} (optional: else the layer and head stay and the query is the
  // last token). onDraw({layer, head, query, checksum, row}) runs after every redraw.
  V.attentionView = function (root, onDraw) {
    var $ = function (s) { return root.querySelector(s); };
    var sL = $('[data-testid="layer"]'), sH = $('[data-testid="head"]'), sQ = $('[data-testid="query"]');
    var canvas = $('[data-testid="heatmap"]'), axes = $(".mlv-axes"), text = $('[data-testid="text"]');
    var cap = $('[data-testid="caption"]'), ctx = canvas.getContext("2d"), PAD = 34;
    var d = null, T = 0, box, cell, highlight, spans = [], st = {layer: 0, head: 0, query: 0};
    function w(q, k) { return d.weight(st.layer, st.head, q, k); }
    function tok(i) { return JSON.stringify(d.tokens[i]); }
    // The parts that depend on the text: canvas size, ticks, titles, colour bar, token spans.
    function layout() {
      var SIZE = Math.max(T, Math.min(320, Math.floor(320 / T) * T || 320)), i;
      canvas.width = T; canvas.height = T;  // one pixel per (query, key); CSS scales it up
      canvas.style.left = PAD + "px"; canvas.style.top = "4px";
      canvas.style.width = SIZE + "px"; canvas.style.height = SIZE + "px";
      box = {x: PAD, y: 4, w: SIZE, h: SIZE}; cell = SIZE / T;
      axes.setAttribute("width", PAD + SIZE + 6); axes.setAttribute("height", SIZE + 62);
      canvas.parentNode.style.width = (PAD + SIZE + 6) + "px"; canvas.parentNode.style.height = (SIZE + 62) + "px";
      V.clear(axes);
      var step = T <= 16 ? 1 : T <= 40 ? 5 : 10;
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
      V.clear(text);
      spans = d.tokens.map(function (s, i) {
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
      sQ.max = T - 1;
    }
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
      if (onDraw) onDraw({layer: st.layer, head: st.head, query: st.query, checksum: checksum, row: row});
    }
    function setQuery(q) { st.query = q; draw(); }
    function cellAt(e) {
      var r = canvas.getBoundingClientRect();
      return [Math.min(T - 1, Math.floor((e.clientY - r.top) / r.height * T)), Math.min(T - 1, Math.floor((e.clientX - r.left) / r.width * T))];
    }
    canvas.addEventListener("mousemove", function (e) { if (d) { var c = cellAt(e); describe(c[0], c[1]); } });
    canvas.addEventListener("mouseleave", function () { if (d) describe(st.query, null); });
    canvas.addEventListener("click", function (e) { if (d) setQuery(cellAt(e)[0]); });
    sL.addEventListener("change", function () { st.layer = +sL.value; if (d) draw(); });
    sH.addEventListener("change", function () { st.head = +sH.value; if (d) draw(); });
    sQ.addEventListener("input", function () { if (d) setQuery(+sQ.value); });
    return {
      show: function (data, start) {
        d = data; T = d.tokens.length;
        if (start) { st.layer = start.layer; st.head = start.head; st.query = start.query; }
        else st.query = T - 1;
        sL.value = st.layer; sH.value = st.head;
        layout();
        draw();
      },
    };
  };
  // The replay explorer: maps computed in Python, stored as integers (lower triangles, row by row).
  V.attention = function (root, d) {
    V.attentionView(root, function (s) {
      V.setState(root, {layer: s.layer, head: s.head, query: s.query, checksum: s.checksum});
    }).show({tokens: d.tokens, n_layer: d.n_layer, n_head: d.n_head, weight: function (l, h, q, k) {
      return d.weights[l][h][q * (q + 1) / 2 + k] / d.scale;
    }}, d.start);
  };
})();
