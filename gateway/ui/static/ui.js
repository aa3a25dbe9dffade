/* mlgate UI: the only script. Shows a progress bar while the next page loads (no inline script: CSP). */
(function () {
  "use strict";
  /* The mlflow client prints links into MLflow's own UI (".../#/experiments/1/runs/<id>"): open the same
     experiment, run or model here. Only these fixed shapes, rebuilt as paths on this origin. */
  var hash = window.location.hash, m;
  if ((m = /^#\/experiments\/(\d{1,19})\/runs\/([0-9a-f]{32})\/?$/.exec(hash))) {
    window.location.replace("/runs/" + m[2]);
    return;
  }
  if ((m = /^#\/experiments\/(\d{1,19})\/?$/.exec(hash))) {
    window.location.replace("/experiments/" + m[1]);
    return;
  }
  if ((m = /^#\/models\/([^/?#]{1,1000})(?:\/versions\/\d{1,10})?\/?$/.exec(hash))) {
    try { window.location.replace("/model?name=" + encodeURIComponent(decodeURIComponent(m[1]))); return; }
    catch (e) { /* a malformed escape: stay on this page */ }
  }
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
