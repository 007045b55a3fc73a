(function () {
  var V = window.minillmViz, M = window.minillm;
  if (V.int8) return;
  // The same model with float16 and with int8 weights, side by side on the reader's prompt.
  V.int8 = function (root, d) {
    var $ = function (s) { return root.querySelector(s); };
    var prompt = $('[data-testid="prompt"]'), nNew = $('[data-testid="new-tokens"]'), svg = $('[data-testid="bars"]');
    var outs = {float: $('[data-testid="float-output"]'), int8: $('[data-testid="int8-output"]')}, cap = $('[data-testid="caption"]');
    var models = {}, run = null;
    function nextTokenProbs(gpt, ids) {
      gpt.reset();
      var logits = Float32Array.from(gpt.run(ids.slice(-gpt.config.block_size), "last"));
      return {logits: logits, probs: M.softmax(logits)};
    }
    function restart() {
      var n = +nNew.value, ids;
      $('[data-testid="new-tokens-value"]').textContent = String(n);
      try {
        ids = models.float.tokenizer.encode(prompt.value);
        if (!ids.length) throw new Error("the prompt is empty: type at least one character");
      } catch (e) {
        run = null;
        cap.textContent = e.message;
        V.setState(root, {error: e.message});
        return;
      }
      var f = nextTokenProbs(models.float.gpt, ids), q = nextTokenProbs(models.int8.gpt, ids), kl = 0, diff = 0, i;
      for (i = 0; i < f.probs.length; i++) {
        if (f.probs[i] > 0) kl += f.probs[i] * (Math.log(f.probs[i]) - Math.log(q.probs[i]));
        diff = Math.max(diff, Math.abs(f.logits[i] - q.logits[i]));
      }
      run = {ids: ids, next: {float: f, int8: q, kl: kl, diff: diff}, new_ids: {float: [], int8: []}, done: false,
             decoders: {float: new M.Decoder(models.float.gpt, ids, n, {temperature: 0}),
                        int8: new M.Decoder(models.int8.gpt, ids, n, {temperature: 0})}};
      drawBars(run);
      pump(run);
    }
    function drawBars(r) {
      var tok = models.float.tokenizer, f = r.next.float.probs, q = r.next.int8.probs, order = [], bars = [], i;
      for (i = 0; i < f.length; i++) order.push(i);
      order.sort(function (a, b) { return f[b] - f[a] || a - b; });
      for (i = 0; i < Math.min(20, f.length); i++) {
        var id = order[i], label = tok.decode([id]);
        bars.push({label: label, value: q[id], outline: f[id], attrs: {"data-token-id": id, "data-prob": q[id], "data-prob-float": f[id]},
                   title: "token " + id + " " + JSON.stringify(label) + ": " + V.fmt(100 * f[id]) + "% in float16, " + V.fmt(100 * q[id]) + "% in int8"});
      }
      V.bars(svg, bars, "the next token after the prompt: the " + bars.length + " most likely in float16");
    }
    function pump(r) {
      if (r !== run) return;
      var t0 = performance.now();
      while (performance.now() - t0 < 12 && !r.done) {
        var a = r.decoders.float.next(), b = r.decoders.int8.next();
        if (a) r.new_ids.float.push(a.id);
        if (b) r.new_ids.int8.push(b.id);
        r.done = !a && !b;
      }
      show(r);
      if (!r.done) setTimeout(function () { pump(r); }, 0);
    }
    function show(r) {
      var tok = models.float.tokenizer, fi = r.new_ids.float, qi = r.new_ids.int8, first = null, i;
      for (i = 0; i < Math.min(fi.length, qi.length); i++) if (fi[i] !== qi[i]) { first = i; break; }
      ["float", "int8"].forEach(function (which) {
        var el = outs[which], list = r.new_ids[which];
        V.clear(el);
        var p = document.createElement("span"); p.className = "mlv-prompt"; p.textContent = prompt.value; el.appendChild(p);
        var same = document.createElement("span"); same.className = "mlv-new";
        same.textContent = tok.decode(first === null ? list : list.slice(0, first)); el.appendChild(same);
        if (first !== null) {
          var rest = document.createElement("span"); rest.className = "mlv-new mlv-diff";
          rest.textContent = tok.decode(list.slice(first)); el.appendChild(rest);
        }
      });
      cap.textContent = "Next token: KL(float16 || int8) = " + V.fmt(r.next.kl, 3) + " nats, largest logit difference " +
        V.fmt(r.next.diff, 3) + ". " + (first === null ? (r.done ? "The continuations are identical." : "Identical so far.")
                                         : "The continuations part at new token " + first + ".");
      V.setState(root, {prompt_ids: r.ids, float_ids: fi, int8_ids: qi, first_difference: first, done: r.done,
                        max_abs_logit_difference: r.next.diff, kl: r.next.kl,
                        bytes: {float16: d.models[0].nbytes, int8: d.models[1].nbytes}, error: null});
    }
    V.withModel(root, d.models[0], function (f) {
      models.float = f;
      V.withModel(root, d.models[1], function (q) {
        models.int8 = q;
        $('[data-testid="float-label"]').textContent = "float16 weights, " + V.fmt(d.models[0].nbytes / 1e6, 3) + " MB file";
        $('[data-testid="int8-label"]').textContent = "int8 weights, " + V.fmt(d.models[1].nbytes / 1e6, 3) + " MB file";
        prompt.addEventListener("input", restart);
        nNew.addEventListener("input", restart);
        restart();
      });
    });
  };
})();
