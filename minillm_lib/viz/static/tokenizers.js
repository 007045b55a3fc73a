// The tokenizers of minillm_lib/tokenizers.py in JavaScript (chapter 1, used by chapters 9-13
// in the page): CharTokenizer and byte-level BPETokenizer, with the same special-token rules
// (a special token in the text is an error unless allowed) and the same ids.
//
//   var tok = minillm.tokenizer(spec.tokenizer);   // the spec of minillm_lib.viz.web.tokenizer_spec
//   tok.encode("ROMEO:")  -> [ids];  tok.encode(text, "all");  tok.decode(ids) -> text
(function () {
  var M = window.minillm = window.minillm || {};
  if (M.tokenizer) return;

  function escapeRegex(s) { return s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&"); }
  function codePoints(s) { return Array.from(s).length; }  // Python counts characters, not UTF-16 units
  function extend(a, b) { for (var i = 0; i < b.length; i++) a.push(b[i]); }

  // What both tokenizers share: special tokens and encode (Tokenizer in tokenizers.py).
  function Tokenizer(specialTokens) {
    this.special_tokens = specialTokens;
    this.names = Object.keys(specialTokens);
    this.itos = {};  // id -> text, filled by the subclass
    // The longest special token first, so "<|end|>x" wins over "<|end|>" (special_token_regex).
    var ordered = this.names.slice().sort(function (a, b) { return b.length - a.length; });
    this.specialRegex = ordered.length ? new RegExp(ordered.map(escapeRegex).join("|"), "g") : null;
  }

  // allowed: "none" (a special token in the text throws), "all", or an array of names.
  Tokenizer.prototype.encode = function (text, allowed) {
    if (typeof text !== "string") throw new Error("text must be a string, got " + typeof text);
    allowed = allowed === undefined ? "none" : allowed;
    var self = this, ok = {};
    if (allowed === "all") this.names.forEach(function (n) { ok[n] = true; });
    else if (Array.isArray(allowed)) allowed.forEach(function (n) {
      if (!(n in self.special_tokens)) throw new Error("allowed_special names an unknown special token " + JSON.stringify(n));
      ok[n] = true;
    });
    else if (allowed !== "none") throw new Error("allowed_special must be 'none', 'all' or a list of special tokens");
    if (!this.specialRegex) return this.encodeOrdinary(text, 0);
    var ids = [], start = 0, match;
    this.specialRegex.lastIndex = 0;
    while ((match = this.specialRegex.exec(text)) !== null) {
      var token = match[0], at = match.index;
      if (!ok[token]) {
        throw new Error("text contains the special token " + JSON.stringify(token) + " at position " +
                        codePoints(text.slice(0, at)) + ", which is not allowed");
      }
      if (at > start) extend(ids, this.encodeOrdinary(text.slice(start, at), codePoints(text.slice(0, start))));
      ids.push(this.special_tokens[token]);
      start = at + token.length;
    }
    if (start < text.length) extend(ids, this.encodeOrdinary(text.slice(start), codePoints(text.slice(0, start))));
    return ids;
  };

  Tokenizer.prototype.checkId = function (id) {
    if (!(id in this.itos)) throw new Error("token id " + id + " is not valid for this tokenizer (ids are ints in 0.." + (this.vocab_size - 1) + ")");
  };

  // ------------------------------------------------------------ one id per character

  function CharTokenizer(spec) {
    Tokenizer.call(this, spec.special_tokens);
    var self = this;
    this.stoi = new Map();
    spec.chars.forEach(function (ch, i) { self.stoi.set(ch, i); self.itos[i] = ch; });
    this.names.forEach(function (n) { self.itos[self.special_tokens[n]] = n; });
    this.unk_id = spec.unk_token === null || spec.unk_token === undefined ? null : spec.special_tokens[spec.unk_token];
    this.vocab_size = spec.chars.length + this.names.length;
  }
  CharTokenizer.prototype = Object.create(Tokenizer.prototype);

  CharTokenizer.prototype.encodeOrdinary = function (text, offset) {
    var ids = [], position = offset;
    for (var ch of text) {  // code points, as Python iterates a str
      var id = this.stoi.get(ch);
      if (id === undefined) {
        if (this.unk_id === null) {
          throw new Error("character " + JSON.stringify(ch) + " at position " + position + " is not in the vocabulary");
        }
        id = this.unk_id;
      }
      ids.push(id);
      position++;
    }
    return ids;
  };

  CharTokenizer.prototype.decode = function (ids) {
    var self = this;
    return ids.map(function (id) { self.checkId(id); return self.itos[id]; }).join("");
  };

  // ------------------------------------------------------------ byte-level BPE

  // Bytes are kept as "binary strings" (one character 0..255 per byte): cheap to join and to
  // look up in a Map, like Python's bytes keys in mergeable_ranks.
  function utf8(text) {
    var bytes = new TextEncoder().encode(text), s = "";
    for (var i = 0; i < bytes.length; i += 4096) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 4096));
    return s;
  }

  function BPETokenizer(spec) {
    Tokenizer.call(this, spec.special_tokens);
    var self = this, pieces = [], i;
    for (i = 0; i < 256; i++) pieces.push(String.fromCharCode(i));
    spec.merges.forEach(function (pair) { pieces.push(pieces[pair[0]] + pieces[pair[1]]); });
    this.ranks = new Map();  // bytes -> id (mergeable_ranks)
    pieces.forEach(function (p, id) { self.ranks.set(p, id); self.itos[id] = p; });
    this.names.forEach(function (n) { self.itos[self.special_tokens[n]] = utf8(n); });
    this.chunkRegex = new RegExp(spec.pattern, "gu");
    this.cache = new Map();  // chunk -> ids
    this.vocab_size = pieces.length + this.names.length;
  }
  BPETokenizer.prototype = Object.create(Tokenizer.prototype);

  BPETokenizer.prototype.encodeOrdinary = function (text) {
    var ids = [], chunks = text.match(this.chunkRegex) || [];
    for (var i = 0; i < chunks.length; i++) {
      var got = this.cache.get(chunks[i]);
      if (got === undefined) {
        got = this.encodeChunk(utf8(chunks[i]));
        if (this.cache.size < 100000) this.cache.set(chunks[i], got);
      }
      extend(ids, got);
    }
    return ids;
  };

  // BPE on one chunk, as tiktoken does it: join the adjacent pair with the lowest id
  // (the earliest merge), leftmost on ties, until no pair is a token.
  BPETokenizer.prototype.encodeChunk = function (bytes) {
    var ranks = this.ranks, whole = ranks.get(bytes), NONE = Infinity, i;
    if (whole !== undefined) return [whole];
    var parts = bytes.split(""), pairRanks = [];
    function rank(a, b) { var r = ranks.get(a + b); return r === undefined ? NONE : r; }
    for (i = 0; i + 1 < parts.length; i++) pairRanks.push(rank(parts[i], parts[i + 1]));
    while (parts.length > 1) {
      var best = NONE, at = -1;
      for (i = 0; i < pairRanks.length; i++) if (pairRanks[i] < best) { best = pairRanks[i]; at = i; }
      if (best === NONE) break;
      parts.splice(at, 2, parts[at] + parts[at + 1]);
      pairRanks.splice(at, 1);
      if (at > 0) pairRanks[at - 1] = rank(parts[at - 1], parts[at]);
      if (at < pairRanks.length) pairRanks[at] = rank(parts[at], parts[at + 1]);
    }
    return parts.map(function (p) { return ranks.get(p); });
  };

  // Ids -> the bytes they stand for (Uint8Array).
  BPETokenizer.prototype.decodeBytes = function (ids) {
    var self = this, s = ids.map(function (id) { self.checkId(id); return self.itos[id]; }).join("");
    var bytes = new Uint8Array(s.length);
    for (var i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
    return bytes;
  };

  // Ids -> text; bytes that are not valid UTF-8 (half a character) become U+FFFD, as in Python.
  BPETokenizer.prototype.decode = function (ids) {
    return new TextDecoder("utf-8").decode(this.decodeBytes(ids));
  };

  M.tokenizer = function (spec) {
    if (spec.type === "char") return new CharTokenizer(spec);
    if (spec.type === "bpe") return new BPETokenizer(spec);
    throw new Error("unknown tokenizer type " + spec.type);
  };
})();
