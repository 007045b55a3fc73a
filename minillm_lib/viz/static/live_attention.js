(function () {
  var V = window.minillmViz;
  if (V["live-attention"]) return;
  // The attention maps of what the reader types, computed by the model in the page.
  V["live-attention"] = function (root, d) {
    var input = root.querySelector('[data-testid="input"]'), cap = root.querySelector('[data-testid="caption"]');
    var model = null, current = {text: "", ids: [], cropped: 0};
    var view = V.attentionView(root, function (s) {
      V.setState(root, {text: current.text, ids: current.ids, cropped: current.cropped, layer: s.layer, head: s.head,
                        query: s.query, checksum: s.checksum, row: s.row, error: null});
    });
    function update() {
      var cfg = model.gpt.config, ids;
      try {
        ids = model.tokenizer.encode(input.value);
        if (!ids.length) throw new Error("the text is empty: type at least one character");
      } catch (e) {
        cap.textContent = e.message;
        V.setState(root, {text: input.value, error: e.message});
        return;
      }
      var cropped = Math.max(0, ids.length - cfg.block_size);
      ids = ids.slice(cropped);  // the last block_size tokens: the model never saw more
      var T = ids.length, H = cfg.n_head, maps = model.gpt.attentionMaps(ids);
      current = {text: input.value, ids: ids, cropped: cropped};
      view.show({
        tokens: ids.map(function (id) { return model.tokenizer.decode([id]); }), n_layer: cfg.n_layer, n_head: H,
        weight: function (l, h, q, k) { return maps[((l * H + h) * T + q) * T + k]; },
      }, {layer: +root.querySelector('[data-testid="layer"]').value, head: +root.querySelector('[data-testid="head"]').value,
          query: T - 1});
    }
    V.withModel(root, d.models[0], function (m) {
      model = m;
      input.addEventListener("input", update);
      update();
    });
  };
})();
