/* The ipywidgets HTML manager typesets widget labels with MathJax 2's `MathJax.Hub.Queue`.
   The book loads MathJax 3, which has no `Hub`, so every widget render threw
   "Cannot read properties of undefined (reading 'Queue')". This shim gives MathJax 3 a tiny
   `Hub.Queue` that forwards ["Typeset", Hub, element] calls to `MathJax.typesetPromise`.
   MathJax 3 replaces `window.MathJax` when it loads, so we install the shim on every object
   assigned to it. */
(function () {
  function typeset(mj, element) {
    var ready = (mj.startup && mj.startup.promise) || Promise.resolve();
    ready.then(function () {
      if (typeof mj.typesetPromise === "function") {
        return mj.typesetPromise(element ? [element] : undefined);
      }
    }).catch(function (err) { console.warn("MathJax typeset failed", err); });
  }
  function install(mj) {
    if (mj && typeof mj === "object" && !mj.Hub) {
      mj.Hub = {
        Queue: function () {
          for (var i = 0; i < arguments.length; i++) {
            var job = arguments[i];
            if (Array.isArray(job) && job[0] === "Typeset") typeset(mj, job[2]);
          }
        },
      };
    }
    return mj;
  }
  var current = install(window.MathJax || {});
  Object.defineProperty(window, "MathJax", {
    configurable: true,
    get: function () { return current; },
    set: function (value) { current = install(value); },
  });
})();
