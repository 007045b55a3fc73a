(function () {
  var V = window.minillmViz, M = window.minillm;
  if (V["kv-cache"]) return;
  var MODES = {"cache": {label: "with the cache", colour: V.BLUE}, "no-cache": {label: "without it", colour: V.ORANGE}};
  // Greedy generation with and without the KV cache: which positions are cached, and the time of each token.
  V["kv-cache"] = function (root, d) {
    var $ = function (s) { return root.querySelector(s); };
    var prompt = $('[data-testid="prompt"]'), nNew = $('[data-testid="new-tokens"]'), out = $('[data-testid="output"]');
    var strip = $('[data-testid="positions"]'), chart = $('[data-testid="times"]'), cap = $('[data-testid="caption"]');
    var model = null, ids = [], runs = {"cache": null, "no-cache": null}, active = null;
    function reset() {
      $('[data-testid="new-tokens-value"]').textContent = nNew.value;
      runs = {"cache": null, "no-cache": null}; active = null;
      try {
        ids = model.tokenizer.encode(prompt.value);
        if (!ids.length) throw new Error("the prompt is empty: type at least one character");
      } catch (e) {
        ids = [];
        cap.textContent = e.message;
      }
      draw();
    }
    function start(mode) {
      if (!ids.length) return;
      var run = active = runs[mode] = {mode: mode, decoder: new M.Decoder(model.gpt, ids, +nNew.value, {temperature: 0}, 0, mode === "cache"),
                                       new_ids: [], computed: [], cached: [], ms: [], done: false};
      setTimeout(function () { pump(run); }, 0);
    }
    function pump(run) {
      if (run !== active) return;
      var frame = performance.now();
      while (performance.now() - frame < 16) {
        var t0 = performance.now(), step = run.decoder.next(), ms = performance.now() - t0;
        if (step === null) { run.done = true; break; }
        run.new_ids.push(step.id); run.computed.push(step.computed); run.cached.push(step.cached); run.ms.push(ms);
      }
      draw();
      if (!run.done) setTimeout(function () { pump(run); }, 0);
    }
    function drawStrip(run) {
      var B = model.gpt.config.block_size, w = 640 / B, i;
      V.clear(strip);
      var last = run && run.computed.length - 1, computed = run ? run.computed[last] : 0, cached = run ? run.cached[last] : 0;
      var reused = Math.max(0, cached - computed);  // read from the cache, not computed again (0 without one)
      for (i = 0; i < B; i++) {
        var fill = i < reused ? V.BLUE : i < reused + computed ? V.ORANGE : "none";
        V.svg("rect", {x: 20 + i * w, y: 8, width: Math.max(1, w - (w > 4 ? 1 : 0)), height: 18, fill: fill,
                       stroke: "currentColor", "stroke-opacity": .25, "stroke-width": w > 4 ? 1 : 0}, strip);
      }
      V.svg("text", {x: 20, y: 42}, strip, "position 0");
      V.svg("text", {x: 660, y: 42, "text-anchor": "end"}, strip, "block_size - 1 = " + (B - 1));
      V.svg("text", {x: 340, y: 58, "text-anchor": "middle"}, strip, run
        ? "step " + last + ": " + reused + " positions read from the cache, " + computed + " computed"
        : "blue: keys and values read from the cache; orange: computed at this step");
    }
    function drawChart() {
      V.clear(chart);
      var n = 1, top = 0;
      Object.keys(runs).forEach(function (m) {
        var r = runs[m];
        if (!r) return;
        n = Math.max(n, r.ms.length);
        r.ms.forEach(function (v) { top = Math.max(top, v); });
      });
      var box = {x: 44, y: 20, w: 620, h: 140};
      var sc = V.axes(chart, box, 0, n, 0, top || 1, {yTicks: 4, xLabel: "new token", yLabel: "milliseconds per token"});
      Object.keys(runs).forEach(function (m, j) {
        var r = runs[m];
        if (!r || !r.ms.length) return;
        V.polyline(chart, r.ms.map(function (_, i) { return i + .5; }), r.ms, sc, {stroke: MODES[m].colour, "stroke-width": 1.5});
        V.svg("text", {x: box.x + box.w, y: box.y + 12 + 14 * j, "text-anchor": "end", fill: MODES[m].colour}, chart,
              MODES[m].label + ": " + Math.round(1000 * r.ms.length / r.ms.reduce(function (a, b) { return a + b; }, 0)) + " tokens/s");
      });
    }
    function draw() {
      var run = active;
      drawStrip(run);
      drawChart();
      V.clear(out);
      if (run) {
        var a = document.createElement("span"); a.className = "mlv-prompt"; a.textContent = prompt.value; out.appendChild(a);
        var b = document.createElement("span"); b.className = "mlv-new"; b.textContent = model.tokenizer.decode(run.new_ids); out.appendChild(b);
      }
      var c = runs["cache"], u = runs["no-cache"], same = !!(c && u && c.done && u.done && c.new_ids.join() === u.new_ids.join());
      if (run) {
        cap.textContent = (run.done ? "Done " : "Generating ") + MODES[run.mode].label + ": " + run.new_ids.length + " tokens" +
          (same ? "; both runs gave the same tokens." : ".");
      } else if (ids.length) cap.textContent = "Press a button: greedy generation, " + nNew.value + " tokens.";
      function summary(r) { return r && {new_ids: r.new_ids, computed: r.computed, cached: r.cached, ms: r.ms, done: r.done}; }
      V.setState(root, {prompt_ids: ids, runs: {"cache": summary(c), "no-cache": summary(u)}, same: same});
    }
    V.withModel(root, d.models[0], function (m) {
      model = m;
      prompt.addEventListener("input", reset);
      nNew.addEventListener("input", reset);
      $('[data-testid="run-cache"]').addEventListener("click", function () { start("cache"); });
      $('[data-testid="run-no-cache"]').addEventListener("click", function () { start("no-cache"); });
      reset();
    });
  };
})();
