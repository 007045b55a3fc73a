(function () {
  var V = window.minillmViz;
  if (V.sampling) return;
  var BLUE = "#2f7ed8", GREY = "rgba(140,140,140,.45)";
  // temperature -> top-k -> top-p on one prompt's sorted logits, as minillm_lib.sampling.generate does.
  V.samplingFilter = function (d, pr, ti, k, p) {
    var l = pr.logits, n = l.length, t = d.temperatures[ti], before = [], keep = [], i;
    if (t === 0) {  // greedy: only the most likely token; the lowest id among ties comes first
      for (i = 0; i < n; i++) { before.push(i === 0 ? 1 : 0); keep.push(i === 0); }
    } else {
      // softmax(l / t), subtracting the largest (l[0]) first
      var m = l[0] / t, z = 0;
      for (i = 0; i < n; i++) z += Math.exp(l[i] / t - m);
      for (i = 0; i < n; i++) { before.push(Math.exp(l[i] / t - m) / z); keep.push(true); }
      if (k !== null && k < d.vocab_size) {  // top-k: every token tied with the k-th largest stays
        var kth = l[k - 1] / t;
        for (i = 0; i < n; i++) keep[i] = l[i] / t >= kth;
      }
      if (p < 1) {  // top-p over the top-k survivors, renormalised; most likely first
        var zk = 0, mass = 0;
        for (i = 0; i < n; i++) if (keep[i]) zk += before[i];
        for (i = 0; i < n; i++) {
          var q = keep[i] ? before[i] / zk : 0;
          if (mass >= p) keep[i] = false;  // the set had reached top_p without this token
          mass += q;
        }
      }
    }
    var kept = 0, probs = [];
    for (i = 0; i < n; i++) if (keep[i]) kept += before[i];
    for (i = 0; i < n; i++) probs.push(keep[i] ? before[i] / kept : 0);
    return {before: before, probs: probs, keep: keep, keptMass: kept};
  };
  V.sampling = function (root, d) {
    var $ = function (s) { return root.querySelector(s); };
    var sel = $('[data-testid="prompt"]'), sT = $('[data-testid="temperature"]'),
        sK = $('[data-testid="top-k"]'), sP = $('[data-testid="top-p"]');
    var svg = $('[data-testid="bars"]'), cont = $('[data-testid="continuation"]'), cap = $('[data-testid="caption"]');
    var box = {x: 44, y: 22, w: 630, h: 170};
    function kText(k) { return k === null ? "off" : String(k); }
    function draw() {
      var pi = +sel.value, ti = +sT.value, ki = +sK.value, ppi = +sP.value;
      var pr = d.prompts[pi], t = d.temperatures[ti], k = d.top_ks[ki], p = d.top_ps[ppi];
      $('[data-testid="temperature-value"]').textContent = String(t);
      $('[data-testid="top-k-value"]').textContent = kText(k);
      $('[data-testid="top-p-value"]').textContent = String(p);
      var f = V.samplingFilter(d, pr, ti, k, p), n = Math.min(d.n_show, pr.logits.length), top = 0, i;
      for (i = 0; i < n; i++) top = Math.max(top, f.before[i], f.probs[i]);
      var ymax = Math.min(1, Math.ceil(top / V.niceStep(top, 4)) * V.niceStep(top, 4));
      V.clear(svg);
      var sc = V.axes(svg, box, 0, n, 0, ymax, {yTicks: 4, noXTicks: true,
        fmtY: function (v) { return Math.round(v * 100) + "%"; }, yLabel: "probability of the next token"});
      var bw = box.w / n, gap = Math.min(6, bw * .2);
      for (i = 0; i < n; i++) {
        var x = sc.x(i) + gap / 2, w = bw - gap, id = pr.ids[i];
        var g = V.svg("g", {"data-testid": "bar", "data-token-id": id, "data-prob": f.probs[i],
                            "data-prob-before": f.before[i], "data-kept": f.keep[i] ? "1" : "0"}, svg);
        var hb = sc.y(0) - sc.y(f.before[i]), hp = sc.y(0) - sc.y(f.probs[i]);
        if (f.keep[i]) {
          V.svg("rect", {x: x, y: sc.y(f.probs[i]), width: w, height: hp, fill: BLUE}, g);
          V.svg("rect", {x: x + .5, y: sc.y(f.before[i]), width: w - 1, height: hb, fill: "none",
                         stroke: "currentColor", "stroke-opacity": .6, "stroke-dasharray": "3 2"}, g);
          if (f.probs[i] >= .01) V.svg("text", {x: x + w / 2, y: sc.y(f.probs[i]) - 4, "text-anchor": "middle",
                                                "font-size": 10}, g, V.fmt(100 * f.probs[i], 2) + "%");
        } else {
          V.svg("rect", {x: x, y: sc.y(f.before[i]), width: w, height: hb, fill: GREY}, g);
        }
        var label = V.visible(pr.labels[i]);
        V.svg("text", {x: x + w / 2, y: box.y + box.h + 17, "text-anchor": "middle", "font-size": 13,
                       "class": "mlv-mono", opacity: f.keep[i] ? 1 : .5},
              g, label.length > 6 ? label.slice(0, 5) + "\u2026" : label);
        V.svg("title", {}, g, "token " + id + " " + JSON.stringify(pr.labels[i]) + ": " +
              V.fmt(100 * f.before[i]) + "% after temperature, " + V.fmt(100 * f.probs[i]) + "% after the filters");
      }
      V.svg("text", {x: box.x + box.w, y: box.y + box.h + 36, "text-anchor": "end", "font-size": 11, opacity: .75},
            svg, "the " + n + " most likely of " + d.vocab_size + " tokens");
      var sample = pr.samples[pr.grid[(ti * d.top_ks.length + ki) * d.top_ps.length + ppi]];
      V.clear(cont);
      var a = document.createElement("span"); a.className = "mlv-prompt"; a.textContent = pr.text; cont.appendChild(a);
      var b = document.createElement("span"); b.className = "mlv-new"; b.textContent = sample; cont.appendChild(b);
      var kept = [], nKept = 0;
      for (i = 0; i < pr.ids.length; i++) if (f.keep[i]) { kept.push(pr.ids[i]); nKept++; }
      cap.textContent = t === 0
        ? "Temperature 0 is greedy decoding: always the single most likely token, " +
          JSON.stringify(pr.labels[0]) + " here."
        : "Temperature " + t + ", top-k " + kText(k) + ", top-p " + p + ": " + nKept + " of " + d.vocab_size +
          " tokens kept, holding " + V.fmt(100 * f.keptMass, 3) + "% of the probability.";
      V.setState(root, {prompt: pi, temperature: t, top_k: k, top_p: p, ids: pr.ids, probs: f.probs, kept: kept});
    }
    [sel, sT, sK, sP].forEach(function (c) { c.addEventListener("input", draw); c.addEventListener("change", draw); });
    draw();
  };
})();
