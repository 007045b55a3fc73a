(function () {
  var V = window.minillmViz;
  if (V.sampling) return;
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
    function kText(k) { return k === null ? "off" : String(k); }
    function draw() {
      var pi = +sel.value, ti = +sT.value, ki = +sK.value, ppi = +sP.value;
      var pr = d.prompts[pi], t = d.temperatures[ti], k = d.top_ks[ki], p = d.top_ps[ppi];
      $('[data-testid="temperature-value"]').textContent = String(t);
      $('[data-testid="top-k-value"]').textContent = kText(k);
      $('[data-testid="top-p-value"]').textContent = String(p);
      var f = V.samplingFilter(d, pr, ti, k, p), n = Math.min(d.n_show, pr.logits.length), bars = [], i;
      for (i = 0; i < n; i++) {
        bars.push({label: pr.labels[i], value: f.keep[i] ? f.probs[i] : f.before[i],
                   outline: f.keep[i] ? f.before[i] : undefined, grey: !f.keep[i],
                   attrs: {"data-token-id": pr.ids[i], "data-prob": f.probs[i], "data-prob-before": f.before[i], "data-kept": f.keep[i] ? "1" : "0"},
                   title: "token " + pr.ids[i] + " " + JSON.stringify(pr.labels[i]) + ": " + V.fmt(100 * f.before[i]) +
                          "% after temperature, " + V.fmt(100 * f.probs[i]) + "% after the filters"});
      }
      V.bars(svg, bars, "the " + n + " most likely of " + d.vocab_size + " tokens");
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
