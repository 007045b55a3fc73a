// The GPT of minillm_lib/model.py in JavaScript (chapters 9, 10, 12, 13 and 16): the same
// layers under the same names (transformer.wte, transformer.h[i].attn.c_attn, ...), on the
// float32 weights of a weight script (minillm_lib/viz/web.py), with a KV cache: a prompt
// goes through at once, then one token per step. Shapes: C = n_embd, H = n_head query heads, Hkv = n_kv_head key/value heads,
// D = head_dim = C / H, V = vocab_size, T = positions so far.
//
//   var m = minillm.model(key);             // {gpt, tokenizer, spec}: a GPT of its own
//   var logits = m.gpt.forward(ids);        // (T, V), like GPT.forward(idx)[0][0]
//   m.gpt.reset(); m.gpt.step(id, true);    // one token: its logits (V,); its keys/values cached
(function () {
  var M = window.minillm = window.minillm || {};
  if (M.GPT) return;
  var FORMAT = 1;

  // ------------------------------------------------------------ weights: base64 -> float32

  // An IEEE half float (its 16 bits) as a number: every half is exactly a float32.
  function halfToFloat(h) {
    var sign = h & 0x8000 ? -1 : 1, exponent = (h >> 10) & 0x1f, fraction = h & 0x3ff;
    if (exponent === 0) return sign * fraction * Math.pow(2, -24);  // zero and subnormals
    if (exponent === 31) return fraction ? NaN : sign * Infinity;
    return sign * (1 + fraction / 1024) * Math.pow(2, exponent - 15);
  }

  // Every tensor of the weight script, as float32 (int8 rows times their scale, as
  // minillm_lib.quantize.dequantize_int8 computes them). Returns {name: Float32Array}.
  M.decodeWeights = function (spec) {
    if (spec.format !== FORMAT) throw new Error("weights " + spec.key + " have format " + spec.format + ", this page reads format " + FORMAT);
    var raw = atob(spec.data), bytes = new Uint8Array(raw.length), i;
    for (i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    var view = new DataView(bytes.buffer), out = {};
    Object.keys(spec.tensors).forEach(function (name) {
      var t = spec.tensors[name], n = t.shape.reduce(function (a, b) { return a * b; }, 1);
      var w = new Float32Array(n), o = t.offset, j;
      if (t.dtype === "float16") for (j = 0; j < n; j++) w[j] = halfToFloat(view.getUint16(o + 2 * j, true));
      else if (t.dtype === "float32") for (j = 0; j < n; j++) w[j] = view.getFloat32(o + 4 * j, true);
      else if (t.dtype === "int8") {
        var cols = t.shape[1];
        for (j = 0; j < n; j++) w[j] = view.getInt8(o + j) * view.getFloat32(t.scale + 4 * Math.floor(j / cols), true);
      } else throw new Error("tensor " + name + " has an unknown dtype " + t.dtype);
      out[name] = w;
    });
    return out;
  };

  // ------------------------------------------------------------ loading a model

  var decoded = {}, waiting = {};
  function registry() { return window.minillmModels || {}; }

  // The model registered under key: a GPT of its own (its own KV cache), its tokenizer and
  // the spec. Weights are decoded once per key (the key names the content, so it never changes).
  M.model = function (key) {
    var spec = registry()[key];
    if (!spec) throw new Error("no model " + key + " on this page");
    if (!decoded[key]) decoded[key] = M.decodeWeights(spec);
    return {gpt: new M.GPT(spec, decoded[key]), tokenizer: M.tokenizer(spec.tokenizer), spec: spec};
  };

  // Call done(M.model(key)) once the weight script has run: at once if it is on the page
  // already (inlined), else after loading it from url with a <script> (which works from
  // file:// as well as over http; fetch does not). fail(error) if it cannot be loaded.
  M.loadModel = function (key, url, done, fail) {
    function finish(callbacks, error) {
      callbacks.forEach(function (c) {
        if (error) { c[1](error); return; }
        var m;
        try { m = M.model(key); } catch (e) { c[1](e); return; }
        c[0](m);
      });
    }
    if (registry()[key]) { finish([[done, fail]]); return; }
    if (!url) { fail(new Error("the weights of " + key + " are not on this page")); return; }
    if (waiting[key]) { waiting[key].push([done, fail]); return; }
    waiting[key] = [[done, fail]];
    var script = document.createElement("script");
    script.src = url;
    script.onload = function () {
      var callbacks = waiting[key];
      delete waiting[key];
      finish(callbacks, registry()[key] ? null : new Error(url + " did not register the model " + key));
    };
    script.onerror = function () {
      var callbacks = waiting[key];
      delete waiting[key];
      finish(callbacks, new Error("could not load the model weights from " + url));
    };
    document.head.appendChild(script);
  };

  // ------------------------------------------------------------ the layers (minillm_lib/layers.py)

  // nn.Linear on T rows at once: out (T, rows) = X (T, cols) W^T + bias, W (rows, cols)
  // row-major as PyTorch stores it. add: out += that instead (a residual connection).
  // The loops are blocked so that each number read from memory is used several times: four
  // tokens share every weight of two rows, or (the last tokens) four rows share every x.
  function linear(out, X, T, W, bias, rows, cols, add) {
    function put(t, r, sum) {
      var i = t * rows + r, y = sum + (bias ? bias[r] : 0);
      out[i] = add ? out[i] + Math.fround(y) : y;
    }
    var t = 0, r, c;
    for (; t + 3 < T; t += 4) {
      var x0 = t * cols, x1 = x0 + cols, x2 = x1 + cols, x3 = x2 + cols;
      for (r = 0; r < rows; r += 2) {
        var o = r * cols, p = r + 1 < rows ? o + cols : o;  // an odd last row is done twice
        var a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
        for (c = 0; c < cols; c++) {
          var w = W[o + c], v = W[p + c], y0 = X[x0 + c], y1 = X[x1 + c], y2 = X[x2 + c], y3 = X[x3 + c];
          a0 += w * y0; a1 += w * y1; a2 += w * y2; a3 += w * y3;
          b0 += v * y0; b1 += v * y1; b2 += v * y2; b3 += v * y3;
        }
        put(t, r, a0); put(t + 1, r, a1); put(t + 2, r, a2); put(t + 3, r, a3);
        if (r + 1 < rows) { put(t, r + 1, b0); put(t + 1, r + 1, b1); put(t + 2, r + 1, b2); put(t + 3, r + 1, b3); }
      }
    }
    for (; t < T; t++) {
      var x = t * cols;
      for (r = 0; r < rows; r += 4) {
        // n < 4 rows left: the spare sums repeat the last row and are not stored
        var n = Math.min(4, rows - r), o0 = r * cols, o1 = (r + Math.min(1, n - 1)) * cols;
        var o2 = (r + Math.min(2, n - 1)) * cols, o3 = (r + n - 1) * cols, s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (c = 0; c < cols; c++) {
          var xc = X[x + c];
          s0 += W[o0 + c] * xc; s1 += W[o1 + c] * xc; s2 += W[o2 + c] * xc; s3 += W[o3 + c] * xc;
        }
        put(t, r, s0);
        if (n > 1) put(t, r + 1, s1);
        if (n > 2) put(t, r + 2, s2);
        if (n > 3) put(t, r + 3, s3);
      }
    }
  }

  // LayerNorm: (x - mean) / sqrt(var + eps) * weight + bias; RMSNorm: x / sqrt(mean(x^2) + eps)
  // * weight. On T rows of C numbers (X and out are (T, C)).
  function norm(out, X, T, C, n, kind, eps) {
    var w = n.weight, b = n.bias;
    for (var t = 0, o = 0; t < T; t++, o += C) {
      var mean = 0, sq = 0, i;
      if (kind === "layernorm") {
        for (i = 0; i < C; i++) mean += X[o + i];
        mean /= C;
      }
      for (i = 0; i < C; i++) sq += (X[o + i] - mean) * (X[o + i] - mean);
      var inv = 1 / Math.sqrt(sq / C + eps);
      for (i = 0; i < C; i++) out[o + i] = (X[o + i] - mean) * inv * w[i] + (b ? b[i] : 0);
    }
  }

  // erf(z) from its Taylor series, 2/sqrt(pi) * sum_n (-1)^n z^(2n+1) / (n! (2n + 1)): good to
  // about 1e-9 for |z| < 4; beyond, erf is 1 - 1.5e-8 or closer to 1 (float32 cannot tell).
  function erf(z) {
    if (z >= 4) return 1;
    if (z <= -4) return -1;
    var z2 = z * z, term = z, sum = z, n = 0;
    while (Math.abs(term) > 1e-17 * Math.abs(sum)) {
      n++;
      term *= -z2 / n;
      sum += term / (2 * n + 1);
    }
    return 1.1283791670955126 * sum;
  }
  M.erf = erf;

  var ACTIVATIONS = {
    gelu: function (x) { return 0.5 * x * (1 + erf(x * Math.SQRT1_2)); },
    gelu_tanh: function (x) { return 0.5 * x * (1 + Math.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))); },
    relu: function (x) { return x > 0 ? x : 0; },
  };

  // ------------------------------------------------------------ positions (minillm_lib/positions.py)

  // rope_cos_sin, computed in float32 as PyTorch does: pair (j, j + D/2) of a head turns by
  // pos * theta^(-2j/D). Returns {cos, sin}, each (block_size, D/2).
  function ropeTables(blockSize, D, theta) {
    var half = D / 2, cos = new Float32Array(blockSize * half), sin = new Float32Array(blockSize * half);
    for (var j = 0; j < half; j++) {
      var invFreq = Math.fround(1 / Math.fround(Math.pow(theta, Math.fround(2 * j / D))));
      for (var p = 0; p < blockSize; p++) {
        var angle = Math.fround(p * invFreq);
        cos[p * half + j] = Math.cos(angle);
        sin[p * half + j] = Math.sin(angle);
      }
    }
    return {cos: cos, sin: sin};
  }

  // sinusoidal_positions: PE[pos, 2i] = sin(pos / base^(2i/C)), PE[pos, 2i+1] = cos(...), (block_size, C).
  function sinusoidalTable(blockSize, C) {
    var table = new Float32Array(blockSize * C);
    for (var i = 0; i < C; i += 2) {
      var freq = Math.fround(Math.pow(10000, Math.fround(i / C)));
      for (var p = 0; p < blockSize; p++) {
        var angle = Math.fround(p / freq);
        table[p * C + i] = Math.sin(angle);
        if (i + 1 < C) table[p * C + i + 1] = Math.cos(angle);
      }
    }
    return table;
  }

  // Rotate the D channels of one head at x[o .. o + D) to position pos (the half-split layout).
  function rotate(x, o, D, cos, sin, pos) {
    var half = D / 2, t = pos * half;
    for (var j = 0; j < half; j++) {
      var a = x[o + j], b = x[o + j + half], c = cos[t + j], s = sin[t + j];
      x[o + j] = a * c - b * s;
      x[o + j + half] = b * c + a * s;
    }
  }

  // ------------------------------------------------------------ the model (minillm_lib/model.py)

  M.GPT = function (spec, weights) {
    var cfg = this.config = spec.config, w = weights || M.decodeWeights(spec);
    var C = cfg.n_embd, H = cfg.n_head, Hkv = cfg.n_kv_head, D = C / H, B = cfg.block_size, i;
    if (!ACTIVATIONS[cfg.mlp] && cfg.mlp !== "swiglu") throw new Error("unknown mlp " + cfg.mlp);
    function part(prefix) { return {weight: w[prefix + ".weight"], bias: w[prefix + ".bias"] || null}; }
    this.wte = w["transformer.wte.weight"];
    this.wpe = cfg.pos_encoding === "learned" ? w["transformer.wpe.weight"] : null;
    this.h = [];
    for (i = 0; i < cfg.n_layer; i++) {
      var p = "transformer.h." + i + ".";
      this.h.push({ln_1: part(p + "ln_1"), c_attn: part(p + "attn.c_attn"), c_proj: part(p + "attn.c_proj"),
                   ln_2: part(p + "ln_2"), c_fc: part(p + "mlp.c_fc"), mlp_proj: part(p + "mlp.c_proj")});
    }
    this.ln_f = part("transformer.ln_f");
    this.lm_head = cfg.tie_weights ? this.wte : w["lm_head.weight"];  // weight tying: one matrix
    this.rope = cfg.pos_encoding === "rope" ? ropeTables(B, D, cfg.rope_theta) : null;
    this.posTable = cfg.pos_encoding === "sinusoidal" ? sinusoidalTable(B, C) : null;
    // The KV cache (attention.KVCache): per layer, keys and values (Hkv, block_size, D).
    this.k = []; this.v = [];
    for (i = 0; i < cfg.n_layer; i++) { this.k.push(new Float32Array(Hkv * B * D)); this.v.push(new Float32Array(Hkv * B * D)); }
    this.seqLen = 0;  // tokens cached so far
    // Activations of up to block_size tokens, allocated once: running the model allocates nothing.
    this.fcOut = cfg.mlp === "swiglu" ? 2 * cfg.mlp_hidden : cfg.mlp_hidden;
    this.qkvDim = (H + 2 * Hkv) * D;
    this.x = new Float32Array(B * C); this.xn = new Float32Array(B * C); this.y = new Float32Array(B * C);
    this.qkv = new Float32Array(B * this.qkvDim); this.att = new Float64Array(B);
    this.fc = new Float32Array(B * this.fcOut); this.act = new Float32Array(B * cfg.mlp_hidden);
    this.logits = new Float32Array(cfg.vocab_size); this.one = [0];
  };

  // Forget the cache (KVCache.reset): the next token is position 0.
  M.GPT.prototype.reset = function () { this.seqLen = 0; };

  // Causal self-attention of one layer (CausalSelfAttention.forward) for T new tokens at
  // positions start .. start + T - 1: q, k, v from this.qkv (T rows), RoPE, k and v written
  // into the cache, then y = softmax(q k^T / sqrt(D)) v over every cached position up to the
  // query's own, for each query head, into this.y (T, C), for the queries from row first on.
  // maps (optional): {data, T}, gets the weights of every head, (n_layer, H, T, T).
  M.GPT.prototype.attend = function (layer, start, T, first, maps) {
    var cfg = this.config, H = cfg.n_head, Hkv = cfg.n_kv_head, D = cfg.n_embd / H, B = cfg.block_size;
    var qkv = this.qkv, width = this.qkvDim, K = this.k[layer], Vc = this.v[layer], att = this.att, y = this.y;
    var group = H / Hkv, scale = 1 / Math.sqrt(D), t, h, g, s, d;
    for (t = 0; t < T; t++) {
      var row = t * width, pos = start + t;
      if (this.rope) for (h = 0; h < H + Hkv; h++) rotate(qkv, row + h * D, D, this.rope.cos, this.rope.sin, pos);  // q, then k heads
      for (g = 0; g < Hkv; g++) {  // this token's key and value of each kv head, into the cache
        var src = row + (H + g) * D, dst = (g * B + pos) * D;
        for (d = 0; d < D; d++) { K[dst + d] = qkv[src + d]; Vc[dst + d] = qkv[src + Hkv * D + d]; }
      }
    }
    for (t = first; t < T; t++) {
      var last = start + t;  // the query sees keys 0 .. last (the causal mask)
      for (h = 0; h < H; h++) {
        g = Math.floor(h / group);  // query head h reads key/value head h // (H / Hkv)
        var q = t * width + h * D, base = g * B * D, top = -Infinity, sum = 0, out = t * cfg.n_embd + h * D;
        for (s = 0; s <= last; s++) {
          var dot = 0, o = base + s * D;
          for (d = 0; d < D; d++) dot += qkv[q + d] * K[o + d];
          att[s] = dot * scale;
          if (att[s] > top) top = att[s];
        }
        for (s = 0; s <= last; s++) { att[s] = Math.exp(att[s] - top); sum += att[s]; }
        for (d = 0; d < D; d++) y[out + d] = 0;
        for (s = 0; s <= last; s++) {
          var a = att[s] / sum, ov = base + s * D;
          for (d = 0; d < D; d++) y[out + d] += a * Vc[ov + d];
          if (maps) maps.data[((layer * H + h) * maps.T + last) * maps.T + s] = a;
        }
      }
    }
  };

  // GPT.forward with a KV cache: T new tokens (ids) at positions seqLen .. seqLen + T - 1
  // through every Block (pre-norm: x + attn(ln_1(x)), then x + mlp(ln_2(x))), their keys and
  // values kept in the cache. logits: "last" -> the last token's logits (V,), a buffer the next
  // call overwrites (copy it to keep it); "all" -> every token's, (T, V), a new array; else none
  // (lm_head is skipped).
  M.GPT.prototype.run = function (ids, logits, maps) {
    var cfg = this.config, C = cfg.n_embd, T = ids.length, start = this.seqLen, hidden = cfg.mlp_hidden;
    var x = this.x, xn = this.xn, fc = this.fc, act = this.act, t, i, l;
    if (start + T > cfg.block_size) {
      throw new Error(start + " cached + " + T + " new tokens exceeds block_size " + cfg.block_size + ": crop the context");
    }
    for (t = 0; t < T; t++) {  // token embedding (+ position)
      var id = ids[t], o = t * C, pos = start + t;
      if (!(id >= 0 && id < cfg.vocab_size && id % 1 === 0)) throw new Error("token id " + id + " is not in 0.." + (cfg.vocab_size - 1));
      for (i = 0; i < C; i++) x[o + i] = this.wte[id * C + i];
      if (this.wpe) for (i = 0; i < C; i++) x[o + i] += this.wpe[pos * C + i];
      if (this.posTable) for (i = 0; i < C; i++) x[o + i] += this.posTable[pos * C + i];
    }
    for (l = 0; l < cfg.n_layer; l++) {
      var b = this.h[l];
      // Every token's keys and values go into the cache, but in the last layer only the last
      // token's output matters when only its logits are wanted: the others stop after k, v.
      var first = l === cfg.n_layer - 1 && logits === "last" && !maps ? T - 1 : 0, n = T - first;
      var xs = x.subarray(first * C), xns = xn.subarray(first * C), ys = this.y.subarray(first * C);
      norm(xn, x, T, C, b.ln_1, cfg.norm, cfg.norm_eps);
      linear(this.qkv, xn, T, b.c_attn.weight, b.c_attn.bias, this.qkvDim, C, false);
      this.attend(l, start, T, first, maps);
      linear(xs, ys, n, b.c_proj.weight, b.c_proj.bias, C, C, true);  // x = x + attn(ln_1(x))
      norm(xns, xs, n, C, b.ln_2, cfg.norm, cfg.norm_eps);
      linear(fc, xns, n, b.c_fc.weight, b.c_fc.bias, this.fcOut, C, false);
      for (t = 0; t < n; t++) {
        var f = t * this.fcOut, a = t * hidden;
        if (cfg.mlp === "swiglu") {  // silu(gate) * up; the gate is the first half of c_fc's output
          for (i = 0; i < hidden; i++) act[a + i] = Math.fround(fc[f + i] / (1 + Math.exp(-fc[f + i]))) * fc[f + hidden + i];
        } else {
          var activation = ACTIVATIONS[cfg.mlp];
          for (i = 0; i < hidden; i++) act[a + i] = activation(fc[f + i]);
        }
      }
      linear(xs, act, n, b.mlp_proj.weight, b.mlp_proj.bias, C, hidden, true);  // x = x + mlp(ln_2(x))
    }
    this.seqLen = start + T;
    if (logits === "last") {
      var lastRow = x.subarray((T - 1) * C, T * C);
      norm(xn, lastRow, 1, C, this.ln_f, cfg.norm, cfg.norm_eps);
      linear(this.logits, xn, 1, this.lm_head, null, cfg.vocab_size, C, false);
      return this.logits;
    }
    if (logits === "all") {
      var all = new Float32Array(T * cfg.vocab_size);
      norm(xn, x, T, C, this.ln_f, cfg.norm, cfg.norm_eps);
      linear(all, xn, T, this.lm_head, null, cfg.vocab_size, C, false);
      return all;
    }
    return null;
  };

  // One token: its logits (V,) if wantLogits (a reused buffer), else null.
  M.GPT.prototype.step = function (id, wantLogits) {
    this.one[0] = id;
    return this.run(this.one, wantLogits ? "last" : null);
  };

  // GPT.forward for one sequence: logits of every position, (T, V) row-major. Resets the cache.
  M.GPT.prototype.forward = function (ids) {
    this.reset();
    return this.run(ids, "all");
  };

  // GPT.attention_maps for one sequence: (n_layer, n_head, T, T) row-major, zero above the
  // diagonal (the causal mask). Resets the cache.
  M.GPT.prototype.attentionMaps = function (ids) {
    var cfg = this.config, T = ids.length, maps = {T: T, data: new Float32Array(cfg.n_layer * cfg.n_head * T * T)};
    this.reset();
    this.run(ids, null, maps);
    return maps.data;
  };
})();
