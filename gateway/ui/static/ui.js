/* mlgate UI: the only script. Shows a progress bar while the next page loads (no inline script: CSP). */
(function () {
  "use strict";
  var bar = document.getElementById("progress");
  function start() { if (bar) { bar.hidden = false; bar.className = "progress running"; } }
  function stop() { if (bar) { bar.hidden = true; bar.className = "progress"; } }
  document.addEventListener("submit", function (event) {
    if (!event.defaultPrevented) { start(); }
  });
  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a[href]") : null;
    if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey ||
        event.shiftKey || link.target || link.hasAttribute("download")) { return; }
    if (link.origin === window.location.origin && link.getAttribute("href").charAt(0) !== "#") { start(); }
  });
  /* Compare: the button says how many runs are selected (the form works without this script too). */
  var compare = document.getElementById("compare-button");
  if (compare) {
    var boxes = document.querySelectorAll("input[name=runs]");
    var update = function () {
      var n = 0;
      for (var i = 0; i < boxes.length; i++) { if (boxes[i].checked) { n++; } }
      compare.textContent = n ? "Compare " + n + " runs" : "Compare selected runs";
    };
    for (var i = 0; i < boxes.length; i++) { boxes[i].addEventListener("change", update); }
    update();
  }
  window.addEventListener("pageshow", stop);
}());
