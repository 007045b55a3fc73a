(function () {
  var V = window.minillmViz, M = window.minillm;
  if (V["live-sampling"]) return;
  // The bars of one step: the n most likely tokens before the filters, blue where they could be
  // drawn, grey where a filter removed them, outlined in orange: the token drawn.
  V.stepBars = function (svg, tokenizer, step, n) {
    var V_ = step.before.length, order = [], bars = [], i;
    for (i = 0; i < V_; i++) order.push(i);
    order.sort(function (a, b) { return step.before[b] - step.before[a] || a - b; });
    for (i = 0; i < Math.min(n, V_); i++) {
      var id = order[i], kept = step.probs[id] > 0, label = tokenizer.decode([id]);
      bars.push({label: label, value: kept ? step.probs[id] : step.before[id], outline: kept ? step.before[id] : undefined,
                 grey: !kept, mark: id === step.id,
                 attrs: {"data-token-id": id, "data-prob": step.probs[id], "data-kept": kept ? "1" : "0"},
                 title: "token " + id + " " + JSON.stringify(label) + ": " + V.fmt(100 * step.before[id]) +
                        "% before the filters, " + V.fmt(100 * step.probs[id]) + "% after"});
    }
    V.bars(svg, bars, "the " + bars.length + " most likely of " + V_ + " tokens");
  };
  V["live-sampling"] = function (root, d) {
    var $ = function (s) { return root.querySelector(s); };
    var prompt = $('[data-testid="prompt"]'), nNew = $('[data-testid="new-tokens"]'), out = $('[data-testid="output"]');
    var svg = $('[data-testid="bars"]'), cap = $('[data-testid="caption"]');
    var model = null, run = null;
    function restart() {
      var s = V.samplingSettings(root), n = +nNew.value, ids;
      $('[data-testid="new-tokens-value"]').textContent = String(n);
      V.clear(out);
      try {
        ids = model.tokenizer.encode(prompt.value);
        if (!ids.length) throw new Error("the prompt is empty: type at least one character");
        var decoder = new M.Decoder(model.gpt, ids, n, s, s.seed);
      } catch (e) {
        run = null;
        cap.textContent = e.message;
        V.setState(root, {error: e.message, done: true});
        return;
      }
      var shown = document.createElement("span");
      shown.className = "mlv-prompt"; shown.textContent = prompt.value; out.appendChild(shown);
      run = {s: s, n: n, ids: ids, decoder: decoder, steps: [], selected: null, done: false, started: performance.now()};
      pump(run);
    }
    // Sample for about 12 ms, show what came, and go on in the next task (the page stays responsive).
    function pump(r) {
      if (r !== run) return;  // a newer run replaced this one
      var t0 = performance.now(), step;
      while (performance.now() - t0 < 12) {
        step = r.decoder.next();
        if (step === null) { r.done = true; break; }
        r.steps.push(step);
        out.appendChild(V.tokenSpan(model.tokenizer.decode([step.id]), r.steps.length - 1, "mlv-new"));
      }
      if (r.done) r.seconds = (performance.now() - r.started) / 1000;
      show(r);
      if (!r.done) setTimeout(function () { pump(r); }, 0);
    }
    function show(r) {
      var i = r.selected === null ? r.steps.length - 1 : r.selected, step = r.steps[i];
      var newIds = r.steps.map(function (s) { return s.id; });
      Array.prototype.forEach.call(out.querySelectorAll('[data-testid="token"]'), function (span, j) {
        span.classList.toggle("mlv-query", j === r.selected);
      });
      if (step) {
        V.stepBars(svg, model.tokenizer, step, d.n_show);
        var kept = 0;
        for (var j = 0; j < step.probs.length; j++) if (step.probs[j] > 0) kept++;
        cap.textContent = (r.selected === null ? "Latest step" : "Step") + " " + i + ": drew " +
          JSON.stringify(model.tokenizer.decode([step.id])) + " (probability " + V.fmt(step.probs[step.id]) + ") from " +
          kept + " of " + step.probs.length + " tokens." +
          (r.done ? " " + r.steps.length + " tokens in " + V.fmt(r.seconds, 2) + " s." : "");
      } else V.clear(svg);
      V.setState(root, {
        prompt: prompt.value, temperature: r.s.temperature, top_k: r.s.top_k, top_p: r.s.top_p, min_p: r.s.min_p,
        repetition_penalty: r.s.repetition_penalty, seed: r.s.seed, n_new: r.n, prompt_ids: r.ids, new_ids: newIds,
        text: model.tokenizer.decode(newIds), done: r.done, step: step ? i : null,
        probs: step ? Array.from(step.probs) : null, before: step ? Array.from(step.before) : null, error: null,
      });
    }
    out.addEventListener("click", function (e) {
      var span = e.target.closest('[data-testid="token"]');
      if (!span || !run) return;
      run.selected = +span.getAttribute("data-step");
      show(run);
    });
    V.withModel(root, d.models[0], function (m) {
      model = m;
      Array.prototype.forEach.call(root.querySelectorAll("input, textarea"), function (c) { c.addEventListener("input", restart); });
      restart();
    });
  };
})();
