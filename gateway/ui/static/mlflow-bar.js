/* mlgate's bar on MLflow's web UI (gateway/ui/mlflow_ui.py): the way to mlgate's own pages (account and
   tokens, administration, sign-out), and the session's CSRF token on the bundle's writes. No inline script.

   A write authenticated by the session cookie needs the X-CSRF-Token header (gateway/authn.py); MLflow's
   bundle sends none, so its same-origin POST/PATCH/PUT/DELETE calls get it here. The token is the
   session's, served in a <meta> of this no-store page; another origin can neither read it nor, with the
   Origin check (gateway/middleware/cross_site.py), send a write. Loaded before the bundle (both deferred). */
(function () {
  "use strict";
  function meta(name) {
    var found = document.querySelector('meta[name="' + name + '"]');
    return found ? found.getAttribute("content") || "" : "";
  }
  var token = meta("mlgate-csrf-token");

  /* MLflow's bundle remembers the last workspace in localStorage ("mlflow.activeWorkspace") and sends it as
     X-MLFLOW-WORKSPACE. localStorage outlives sessions: on a shared browser the next person would start in
     the previous one's workspace (refused as missing by the server, but named on their screen). The bundle's
     remembered workspace is kept only for the account that chose it. Runs before the bundle (both deferred). */
  try {
    var who = meta("mlgate-user");
    if (window.localStorage.getItem("mlgate.user") !== who) {
      window.localStorage.removeItem("mlflow.activeWorkspace");
      window.localStorage.setItem("mlgate.user", who);
    }
  } catch (e) { /* storage disabled: the bundle keeps nothing either */ }

  /* The bundle switches workspace inside the page (its route's ?workspace=, same document) and keeps what it
     loaded before in memory: an experiment of the previous workspace, opened by its id, would still show its
     name from that cache although the server now answers it is missing. A change of workspace reloads the
     page, so each workspace starts with nothing of another in memory. */
  function workspaceInRoute() {
    var hash = window.location.hash || "";
    var at = hash.indexOf("?");
    var named = at < 0 ? null : new URLSearchParams(hash.slice(at + 1)).get("workspace");
    if (named) { return named; }
    try { return window.localStorage.getItem("mlflow.activeWorkspace") || ""; } catch (e) { return ""; }
  }
  var loadedIn = workspaceInRoute();
  window.addEventListener("hashchange", function () {
    if (workspaceInRoute() !== loadedIn) { window.location.reload(); }
  });
  var SAFE = { GET: true, HEAD: true, OPTIONS: true };
  function sameOrigin(url) {
    try { return new URL(String(url), window.location.href).origin === window.location.origin; }
    catch (e) { return false; }
  }
  if (token) {
    var originalFetch = window.fetch;
    window.fetch = function (input, init) {
      var request = (typeof Request !== "undefined" && input instanceof Request) ? input : null;
      var method = (init && init.method) || (request ? request.method : "GET");
      var url = request ? request.url : input;
      if (!SAFE[String(method).toUpperCase()] && sameOrigin(url)) {
        var headers = new Headers((init && init.headers) || (request ? request.headers : undefined));
        headers.set("X-CSRF-Token", token);
        init = Object.assign({}, init || {}, { headers: headers });
      }
      return originalFetch.call(this, input, init);
    };
    var open = XMLHttpRequest.prototype.open;
    var send = XMLHttpRequest.prototype.send;
    XMLHttpRequest.prototype.open = function (method, url) {
      this.mlgateWrite = !SAFE[String(method).toUpperCase()] && sameOrigin(url);
      return open.apply(this, arguments);
    };
    XMLHttpRequest.prototype.send = function () {
      if (this.mlgateWrite) { this.setRequestHeader("X-CSRF-Token", token); }
      return send.apply(this, arguments);
    };
  }

  function link(text, href, title) {
    var a = document.createElement("a");
    a.textContent = text;
    a.href = href;
    if (title) { a.title = title; }
    return a;
  }
  function addBar() {
    var bar = document.createElement("nav");
    bar.id = "mlgate-bar";
    bar.setAttribute("aria-label", "mlgate");
    var user = meta("mlgate-user");
    bar.appendChild(link("mlgate", "/experiments", "mlgate's own pages"));
    if (user) { bar.appendChild(link(user, "/account", "Your account and access tokens")); }
    if (meta("mlgate-admin")) { bar.appendChild(link("Admin", "/admin", "Users, groups, grants, audit")); }
    if (token) {
      var form = document.createElement("form");
      form.method = "post";
      form.action = "/logout";
      var field = document.createElement("input");
      field.type = "hidden";
      field.name = "csrf_token";
      field.value = token;
      var button = document.createElement("button");
      button.type = "submit";
      button.textContent = "Sign out";
      form.appendChild(field);
      form.appendChild(button);
      bar.appendChild(form);
    }
    document.body.appendChild(bar);
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", addBar); }
  else { addBar(); }
}());
