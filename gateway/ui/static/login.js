/* The sign-in page: keep the "#/..." fragment of the page that sent the browser here (MLflow's UI routes
   in the fragment, and a browser never sends it to the server), so the person lands on that page after
   signing in. It is appended to the form's "next" field and to each single sign-on link's "next";
   the server still accepts only a path on this site (gateway/routes/login.py safe_next). */
(function () {
  "use strict";
  var hash = window.location.hash;
  if (!/^#\/[^\s<>"'`\\]{0,1000}$/.test(hash)) { return; }
  var field = document.querySelector('input[name="next"]');
  if (field && field.value.indexOf("#") < 0) { field.value = field.value + hash; }
  var links = document.querySelectorAll("a.sso");
  for (var i = 0; i < links.length; i++) {
    var url = new URL(links[i].href, window.location.href);
    var next = url.searchParams.get("next") || "/";
    if (next.indexOf("#") < 0) {
      url.searchParams.set("next", next + hash);
      links[i].href = url.pathname + url.search;
    }
  }
}());
