// afterlife: small enhancements. Every page works without this file.
"use strict";
(function () {
  // Search as you type: fetch the results fragment and swap it in.
  document.querySelectorAll("input[data-live]").forEach(function (input) {
    var target = document.getElementById(input.dataset.target);
    if (!target) return;
    var timer = null, seq = 0;
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var n = ++seq;
        var url = input.dataset.live + "?partial=1&q=" + encodeURIComponent(input.value);
        fetch(url, { headers: { "Accept": "text/html" } }).then(function (r) {
          return r.ok ? r.text() : Promise.reject(r.status);
        }).then(function (html) {
          if (n !== seq) return;
          target.innerHTML = html;
          history.replaceState(null, "", "/search?q=" + encodeURIComponent(input.value));
        }).catch(function () {});
      }, 150);
    });
  });

  // Copy buttons: shown only when the clipboard can be used.
  if (navigator.clipboard) {
    document.querySelectorAll("button.copy").forEach(function (b) {
      b.hidden = false;
      b.addEventListener("click", function () {
        var el = document.getElementById(b.dataset.copy);
        navigator.clipboard.writeText(el.value).then(function () {
          b.textContent = "Copied";
          setTimeout(function () { b.textContent = "Copy"; }, 2000);
        });
      });
    });
  }

  // Job logs: poll with an offset and append while the job runs.
  var logs = {};
  function followLogs(root) {
    root.querySelectorAll("pre[data-log]").forEach(function (pre) {
      var url = pre.dataset.log;
      pre.closest("details").hidden = false;
      var st = logs[url];
      if (st) { pre.textContent = st.text; st.pre = pre; return; }
      st = logs[url] = { text: "", offset: 0, pre: pre };
      (function poll() {
        fetch(url + "?offset=" + st.offset).then(function (r) {
          if (!r.ok) return Promise.reject(r.status);
          var next = parseInt(r.headers.get("X-Log-Next") || "0", 10);
          var done = r.headers.get("X-Log-Done") === "true";
          return r.text().then(function (t) {
            st.text += t; st.offset = next;
            if (t) {
              var end = st.pre.scrollTop + st.pre.clientHeight >= st.pre.scrollHeight - 4;
              st.pre.textContent = st.text;
              if (end) st.pre.scrollTop = st.pre.scrollHeight;
            }
            if (!done) setTimeout(poll, t ? 300 : 1000);
          });
        }).catch(function () { setTimeout(poll, 3000); });
      })();
    });
  }
  followLogs(document);

  // Build status: refresh the status section until the build is finished.
  var box = document.getElementById("build-status");
  if (box && box.dataset.poll) {
    var url = box.dataset.poll;
    (function refresh() {
      fetch(url).then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); }).then(function (html) {
        var open = {};
        box.querySelectorAll("details[open] pre[data-log]").forEach(function (p) { open[p.dataset.log] = true; });
        box.innerHTML = html;
        box.querySelectorAll("pre[data-log]").forEach(function (p) { if (open[p.dataset.log]) p.closest("details").open = true; });
        followLogs(box);
        if (box.querySelector("[data-finished]")) { box.removeAttribute("data-poll"); return; }
        setTimeout(refresh, 1500);
      }).catch(function () { setTimeout(refresh, 3000); });
    })();
  }
})();
