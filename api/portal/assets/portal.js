// The portal's progressive enhancements: live updates over the event stream, the build
// log follower and the copy buttons. Every page works without it.
(function () {
  "use strict";

  function text(el, s) { if (el) { el.textContent = s; } }

  // Live updates: the grid's cells, the app's channel cards and the channel page follow
  // the channel events of the apps the page shows.
  function live() {
    var scope = document.body.getAttribute("data-live");
    if (!scope || !window.EventSource) { return; }
    var url = "/ui/events" + (scope === "*" ? "" : "?app=" + encodeURIComponent(scope));
    var es = new EventSource(url);
    var types = ["channel.promoted", "channel.rolled_back", "channel.locked", "channel.unlocked"];
    types.forEach(function (t) {
      es.addEventListener(t, function (msg) {
        var ev;
        try { ev = JSON.parse(msg.data); } catch (e) { return; }
        moved(ev);
      });
    });
    ["build.succeeded", "build.failed", "build.canceled", "release.created"].forEach(function (t) {
      es.addEventListener(t, function () { document.body.setAttribute("data-last-event", t); });
    });
    // Open: the server has taken its place in the streams, so every later move arrives.
    es.addEventListener("open", function () { document.body.setAttribute("data-live-ready", "1"); });
    window.addEventListener("pagehide", function () { es.close(); });
  }

  function moved(ev) {
    var d = ev.data || {};
    var sel = '[data-app="' + CSS.escape(ev.app) + '"][data-channel="' + CSS.escape(d.channel || "") + '"]';
    document.querySelectorAll(sel).forEach(function (cell) {
      if (cell.id === "channel-state") {
        var gen = cell.getAttribute("data-generation");
        if (String(d.generation) !== gen) {
          var note = document.getElementById("live-note");
          note.hidden = false;
          text(note, "This channel has moved since the page loaded: it now holds " + (d.release || "nothing") +
            " (moved by " + ev.actor + "). Reload the page before you act on it.");
        }
        return;
      }
      var v = cell.querySelector(".cell-version");
      if (v) {
        var hidden = v.querySelector(".visually-hidden");
        v.textContent = d.release || "empty";
        if (hidden) { v.appendChild(hidden); }
      }
      text(cell.querySelector(".cell-digest"), (d.image_digest || "").replace("sha256:", "").slice(0, 12));
      text(cell.querySelector(".cell-age"), "just now");
      text(cell.querySelector(".cell-by"), d.updated_by || ev.actor);
      var lock = cell.querySelector(".badge.locked");
      if (lock) { lock.hidden = d.locked !== "1"; }
      cell.classList.add("moved");
    });
  }

  // The build log: follows the log as the build runs, then shows the build's outcome.
  function followLog() {
    var pre = document.getElementById("log");
    if (!pre || !pre.getAttribute("data-follow") || !window.fetch || !window.TextDecoder) { return; }
    var state = document.getElementById("log-state");
    var dec = new TextDecoder();
    fetch(pre.getAttribute("data-follow"), { credentials: "same-origin" }).then(function (resp) {
      if (!resp.ok || !resp.body) { throw new Error("HTTP " + resp.status); }
      var reader = resp.body.getReader();
      function pump() {
        return reader.read().then(function (r) {
          if (r.done) { return; }
          var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
          pre.appendChild(document.createTextNode(dec.decode(r.value, { stream: true })));
          if (atEnd) { pre.scrollTop = pre.scrollHeight; }
          return pump();
        });
      }
      return pump();
    }).then(function () {
      return summary(20);
    }).then(function () {
      highlight(pre);
      var st = document.getElementById("build-status");
      text(state, "The build has ended: " + (st ? st.textContent : "see above") + ".");
      pre.setAttribute("data-done", "1");
    }).catch(function (e) {
      text(state, "The log stopped following (" + e.message + "); reload the page to see more.");
    });
  }

  // summary shows the build's facts as they are once it has ended: the page again, read
  // until the build's record says it has ended (it may trail its log's last line).
  function summary(tries) {
    return fetch(location.href, { credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (html) {
      var doc = new DOMParser().parseFromString(html, "text/html");
      var fresh = doc.getElementById("build-summary");
      var cur = document.getElementById("build-summary");
      if (fresh && cur) { cur.replaceWith(document.importNode(fresh, true)); }
      var status = fresh ? fresh.getAttribute("data-status") : "";
      if (tries > 0 && ["succeeded", "failed", "canceled"].indexOf(status) < 0) {
        return new Promise(function (ok) { setTimeout(ok, 250); }).then(function () { return summary(tries - 1); });
      }
    });
  }

  // highlight marks the log's lines that say why the build failed.
  function highlight(pre) {
    var fail = document.querySelector("#failure pre");
    if (!fail) { return; }
    var first = (fail.textContent.split("\n")[0] || "").trim();
    if (!first) { return; }
    var lines = pre.textContent.split("\n");
    pre.textContent = "";
    lines.forEach(function (line, i) {
      var node = document.createTextNode(line + (i < lines.length - 1 ? "\n" : ""));
      if (line.indexOf(first) >= 0) {
        var mark = document.createElement("mark");
        mark.className = "fail";
        mark.appendChild(node);
        pre.appendChild(mark);
      } else {
        pre.appendChild(node);
      }
    });
  }

  // Copy buttons beside the image references.
  function copyButtons() {
    if (!navigator.clipboard) { return; }
    document.querySelectorAll(".copy-btn").forEach(function (btn) {
      btn.hidden = false;
      btn.addEventListener("click", function () {
        var input = document.getElementById(btn.getAttribute("data-copy"));
        navigator.clipboard.writeText(input.value).then(function () { text(btn, "Copied"); });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    live();
    followLog();
    highlight(document.getElementById("log") || document.createElement("pre"));
    copyButtons();
  });
})();
