// Live refresh: the server's event stream says when this page is stale;
// fetch it again and swap in its live regions. Without JavaScript, reload.
"use strict";
(function () {
  var url = document.body.getAttribute("data-events");
  if (!url || !window.EventSource || !window.fetch) return;
  var stream = new EventSource(url);
  stream.addEventListener("change", function () {
    fetch(location.href, { credentials: "same-origin" }).then(function (r) {
      if (r.status === 401) location.reload();
      return r.ok ? r.text() : null;
    }).then(function (html) {
      if (!html) return;
      var doc = new DOMParser().parseFromString(html, "text/html");
      document.querySelectorAll("[data-live]").forEach(function (el) {
        var fresh = doc.getElementById(el.id);
        if (fresh) el.replaceWith(fresh);
      });
    }).catch(function () {});
  });
})();
