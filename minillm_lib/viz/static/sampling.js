// The sampling of minillm_lib/sampling.py in JavaScript (chapters 9 and 10): the same logit
// filters, in the same order, with the same ties, and the decoding loop of generate (KV
// cache, and the switch to recomputing the last block_size tokens once the cache is full).
//
//   logits (V,) -> repetition penalty -> temperature -> top-k -> top-p -> min-p -> softmax -> draw
//
// Each filter returns new logits (a Float32Array, like PyTorch's float32 tensors) and sets a
// removed token to -Infinity. The draw is seeded: minillm.Random is Mulberry32 (Tommy
// Ettinger), whose Python twin is minillm_lib.viz.web.PageRandom, and a token is drawn by
// inverse CDF (minillm_lib.viz.web.draw), so a seed gives the same text here and in Python.
(function () {
  var M = window.minillm = window.minillm || {};
  if (M.Random) return;

  // ------------------------------------------------------------ the random generator

  M.Random = function (seed) {
    if (!(typeof seed === "number" && seed % 1 === 0 && seed >= 0 && seed <= 0xffffffff)) {
      throw new Error("seed must be an integer in 0..4294967295, got " + seed);
    }
    this.state = seed >>> 0;
  };
  // A float in [0, 1): 32 random bits / 2^32.
  M.Random.prototype.random = function () {
    var a = this.state = (this.state + 0x6d2b79f5) >>> 0;
    var t = Math.imul(a ^ (a >>> 15), a | 1);
    t = (t + Math.imul(t ^ (t >>> 7), t | 61)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };

  // ------------------------------------------------------------ the filters

  function argmax(x) {
    var best = 0;
    for (var i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;  // the first of equal ones
    return best;
  }
  M.argmax = argmax;

  // softmax in float64: the largest logit subtracted, summed in order (-Infinity -> 0).
  M.softmax = function (logits) {
    var top = -Infinity, sum = 0, n = logits.length, p = new Float64Array(n), i;
    for (i = 0; i < n; i++) if (logits[i] > top) top = logits[i];
    for (i = 0; i < n; i++) { p[i] = Math.exp(logits[i] - top); sum += p[i]; }
    for (i = 0; i < n; i++) p[i] /= sum;
    return p;
  };

  // Inverse CDF: the first token whose cumulative probability exceeds u in [0, 1).
  M.draw = function (probs, u) {
    var total = 0, last = 0;
    for (var i = 0; i < probs.length; i++) {
      total += probs[i];
      if (u < total) return i;
      if (probs[i] > 0) last = i;
    }
    return last;  // rounding left u above the total
  };

  function removed(logits, drop) {
    var out = Float32Array.from(logits);
    for (var i = 0; i < out.length; i++) if (drop(i)) out[i] = -Infinity;
    return out;
  }

  // Temperature 0 keeps only the most likely token (the first of equal ones); otherwise divide.
  M.temperatureScale = function (logits, temperature) {
    if (!(temperature >= 0)) throw new Error("temperature must be >= 0 (0 = greedy), got " + temperature);
    if (temperature === 0) {
      var best = argmax(logits);
      return removed(logits, function (i) { return i !== best; });
    }
    var t = Math.fround(temperature), out = new Float32Array(logits.length);  // PyTorch divides by float32(t)
    for (var i = 0; i < logits.length; i++) out[i] = logits[i] / t;
    return out;
  };

  // Keep the top_k largest logits; every token tied with the k-th largest stays.
  M.topKFilter = function (logits, k) {
    if (!(k >= 1 && k % 1 === 0)) throw new Error("top_k must be an integer >= 1, got " + k);
    if (k >= logits.length) return Float32Array.from(logits);
    var kth = Float32Array.from(logits).sort().reverse()[k - 1];
    return removed(logits, function (i) { return logits[i] < kth; });
  };

  // Nucleus: the smallest set of most likely tokens whose mass reaches top_p (the most likely
  // always stays; equal probabilities: the lower id counts as more likely).
  M.topPFilter = function (logits, p) {
    if (!(p > 0 && p <= 1)) throw new Error("top_p must be in (0, 1], got " + p);
    if (p === 1) return Float32Array.from(logits);
    var probs = M.softmax(logits), order = [], drop = new Uint8Array(logits.length), mass = 0, i;
    for (i = 0; i < logits.length; i++) order.push(i);
    order.sort(function (a, b) { return probs[b] - probs[a] || a - b; });
    for (i = 0; i < order.length; i++) {
      if (mass >= p) drop[order[i]] = 1;  // the set had reached top_p without this token
      mass += probs[order[i]];
    }
    return removed(logits, function (j) { return drop[j] === 1; });
  };

  // Min-p: keep tokens at least min_p times as likely as the most likely one.
  M.minPFilter = function (logits, minP) {
    if (!(minP > 0 && minP <= 1)) throw new Error("min_p must be in (0, 1], got " + minP);
    var probs = M.softmax(logits), threshold = minP * probs[argmax(probs)];
    return removed(logits, function (i) { return probs[i] < threshold; });
  };

  // A token already in previous (ids): its positive logit divided by penalty, a negative one
  // multiplied (so it always loses probability); counted once however often it occurs.
  M.repetitionPenalty = function (logits, previous, penalty) {
    if (!(penalty > 0)) throw new Error("repetition_penalty must be > 0 (1 = off), got " + penalty);
    var out = Float32Array.from(logits), seen = new Uint8Array(logits.length), f = Math.fround(penalty);
    if (penalty === 1) return out;
    for (var i = 0; i < previous.length; i++) {
      var id = previous[i];
      if (seen[id]) continue;
      seen[id] = 1;
      out[id] = logits[id] > 0 ? logits[id] / f : logits[id] * f;
    }
    return out;
  };

  // ------------------------------------------------------------ options and one decoding step

  // SamplingOptions: {temperature, top_k, top_p, min_p, repetition_penalty, eos_id}; null
  // (or absent) = off, as None in Python. Checked here, once.
  M.SamplingOptions = function (o) {
    o = o || {};
    function given(v) { return v !== undefined && v !== null; }
    this.temperature = given(o.temperature) ? o.temperature : 1;
    this.top_k = given(o.top_k) ? o.top_k : null;
    this.top_p = given(o.top_p) ? o.top_p : null;
    this.min_p = given(o.min_p) ? o.min_p : null;
    this.repetition_penalty = given(o.repetition_penalty) ? o.repetition_penalty : 1;
    this.eos_id = given(o.eos_id) ? o.eos_id : null;
    M.temperatureScale([0], this.temperature);  // each throws on a bad value
    if (this.top_k !== null) M.topKFilter([0], this.top_k);
    if (this.top_p !== null) M.topPFilter([0], this.top_p);
    if (this.min_p !== null) M.minPFilter([0], this.min_p);
    M.repetitionPenalty([0], [], this.repetition_penalty);
  };

  // SamplingOptions.filter_logits: logits (V,), previous ids -> {scaled, filtered}: the logits
  // after the penalty and temperature, and after every filter (what the token is drawn from).
  M.SamplingOptions.prototype.filterLogits = function (logits, previous) {
    var l = this.repetition_penalty !== 1 ? M.repetitionPenalty(logits, previous, this.repetition_penalty) : logits;
    var scaled = M.temperatureScale(l, this.temperature);
    if (this.temperature === 0) return {scaled: Float32Array.from(l), filtered: scaled};
    var f = scaled;
    if (this.top_k !== null) f = M.topKFilter(f, this.top_k);
    if (this.top_p !== null) f = M.topPFilter(f, this.top_p);
    if (this.min_p !== null) f = M.minPFilter(f, this.min_p);
    return {scaled: scaled, filtered: f};
  };

  // The next token: {id, probs (what it was drawn from), before (softmax after the penalty
  // and temperature; at temperature 0, after the penalty)}. Draws one number from random
  // unless the temperature is 0 (greedy: the argmax).
  M.SamplingOptions.prototype.choose = function (logits, previous, random) {
    var f = this.filterLogits(logits, previous), probs = M.softmax(f.filtered);
    var id = this.temperature === 0 ? argmax(f.filtered) : M.draw(probs, random.random());
    return {id: id, probs: probs, before: M.softmax(f.scaled)};
  };

  // ------------------------------------------------------------ the decoding loop (sampling._decode)

  // Tokens after prompt (ids), one per next() call, up to maxNewTokens (fewer if eos_id comes).
  // With useCache each step feeds only the new token; once prompt + output pass block_size, and
  // always without a cache, a step recomputes the last block_size tokens.
  M.Decoder = function (gpt, prompt, maxNewTokens, options, seed, useCache) {
    if (!prompt.length) throw new Error("the prompt is empty: give at least one token");
    this.gpt = gpt;
    this.options = options instanceof M.SamplingOptions ? options : new M.SamplingOptions(options);
    this.random = new M.Random(seed || 0);
    this.tokens = prompt.slice();
    this.left = maxNewTokens;
    this.cached = useCache !== false;
    this.context = prompt.slice(-gpt.config.block_size);  // the tokens the next step feeds
    gpt.reset();
  };

  // One step: {id, probs, before, computed (positions computed this step), cached (positions
  // in the KV cache after it)}, or null when done.
  M.Decoder.prototype.next = function () {
    if (this.left <= 0) return null;
    var gpt = this.gpt, block = gpt.config.block_size;
    if (this.cached && gpt.seqLen + this.context.length > block) {
      // The cache is full: dropping its oldest token would shift every position, so from
      // here on each step recomputes the last block_size tokens, as without a cache.
      this.cached = false;
      this.context = this.tokens.slice(-block);
    }
    if (!this.cached) gpt.reset();
    var logits = gpt.run(this.context, "last"), step = this.options.choose(logits, this.tokens, this.random);
    step.computed = this.context.length;
    step.cached = this.cached ? gpt.seqLen : 0;
    this.tokens.push(step.id);
    this.left = step.id === this.options.eos_id ? 0 : this.left - 1;
    this.context = this.cached ? [step.id] : this.tokens.slice(-block);
    return step;
  };

  // generate: every new id at once (an array).
  M.generate = function (gpt, prompt, maxNewTokens, options, seed, useCache) {
    var d = new M.Decoder(gpt, prompt, maxNewTokens, options, seed, useCache), out = [], s;
    while ((s = d.next()) !== null) out.push(s.id);
    return out;
  };
})();
