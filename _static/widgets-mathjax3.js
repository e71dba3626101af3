// The ipywidgets HTML manager that Jupyter Book 1 embeds (@jupyter-widgets/html-manager 1.0.x)
// typesets widget labels with MathJax 2's `MathJax.Hub.Queue`. The book loads MathJax 3, which
// has no `Hub`, so the manager throws and no widget of the page renders (the explorer of
// chapter 8, the progress bars). Give every MathJax object the page gets a `Hub` whose `Queue`
// hands the element to MathJax 3's `typesetPromise`.
(function () {
  "use strict";
  function withHub(mathjax) {
    if (mathjax && typeof mathjax === "object" && !mathjax.Hub) {
      mathjax.Hub = {
        Queue: function (job) {
          var element = Array.isArray(job) ? job[2] : null;
          var current = window.MathJax;
          if (element && current && typeof current.typesetPromise === "function") {
            current.typesetPromise([element]).catch(function () {});
          }
        },
      };
    }
    return mathjax;
  }
  var current = withHub(window.MathJax);
  // MathJax 3 replaces window.MathJax when it loads (the first object becomes its config).
  Object.defineProperty(window, "MathJax", {
    configurable: true,
    enumerable: true,
    get: function () { return current; },
    set: function (value) { current = withHub(value); },
  });
})();
