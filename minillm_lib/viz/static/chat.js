(function () {
  var V = window.minillmViz, M = window.minillm;
  if (V.chat) return;
  // A chat box: each message alone in the chat template, <|user|>message<|end|><|assistant|>,
  // and the reply streamed until <|end|> (minillm_lib.finetune.generate_reply).
  V.chat = function (root, d) {
    var $ = function (s) { return root.querySelector(s); };
    var log = $('[data-testid="log"]'), input = $('[data-testid="message"]'), cap = $('[data-testid="caption"]');
    var model = null, run = null, ids = d.chat, end = ids[d.end];
    function bubble(who, text) {
      var div = document.createElement("div");
      div.className = "mlv-turn mlv-" + who;
      div.setAttribute("data-testid", who);
      div.textContent = text;
      log.appendChild(div);
      log.scrollTop = log.scrollHeight;
      return div;
    }
    function send() {
      var s = V.samplingSettings(root), message = input.value, promptIds;
      try {
        if (!message) throw new Error("type a message first");
        // The message is plain text: a special token typed in it is an error, not a forged turn.
        promptIds = [ids["<|user|>"]].concat(model.tokenizer.encode(message), [end, ids["<|assistant|>"]]);
      } catch (e) {
        cap.textContent = e.message;
        V.setState(root, {prompt: message, error: e.message, done: true});
        return;
      }
      bubble("user", message);
      var options = {temperature: s.temperature, top_k: s.top_k, eos_id: end};
      run = {prompt: message, promptIds: promptIds, replyIds: [], done: false, seed: s.seed, div: bubble("assistant", ""),
             decoder: new M.Decoder(model.gpt, promptIds, d.max_new_tokens, options, s.seed)};
      pump(run);
    }
    function reply(r) {
      var text = r.replyIds[r.replyIds.length - 1] === end ? r.replyIds.slice(0, -1) : r.replyIds;
      return model.tokenizer.decode(text);
    }
    function pump(r) {
      if (r !== run) return;
      var t0 = performance.now(), step;
      while (performance.now() - t0 < 12) {
        step = r.decoder.next();
        if (step === null) { r.done = true; break; }
        r.replyIds.push(step.id);
      }
      r.div.textContent = reply(r) + (r.done ? "" : "\u2026");
      log.scrollTop = log.scrollHeight;
      cap.textContent = r.done ? (r.replyIds[r.replyIds.length - 1] === end ? "The model ended its turn with <|end|>." :
        "Stopped after " + d.max_new_tokens + " tokens without <|end|>.") : "Replying\u2026";
      V.setState(root, {prompt: r.prompt, prompt_ids: r.promptIds, reply_ids: r.replyIds, reply: reply(r), done: r.done,
                        seed: r.seed, error: null});
      if (!r.done) setTimeout(function () { pump(r); }, 0);
    }
    V.withModel(root, d.models[0], function (m) {
      model = m;
      $('[data-testid="send"]').addEventListener("click", send);
      input.addEventListener("keydown", function (e) { if (e.key === "Enter") send(); });
      Array.prototype.forEach.call(root.querySelectorAll('input[type="range"]'), function (c) {
        c.addEventListener("input", function () { V.samplingSettings(root); });
      });
      V.samplingSettings(root);
      cap.textContent = "Type a message and press Send (each message is answered on its own).";
      V.setState(root, {prompt: null, done: true, error: null});
    });
  };
})();
