// afterlife: deposit upload from the browser. Hashes each file with
// crypto.subtle, opens the deposit with its manifest, uploads every file
// with a progress bar, then seals it and goes to the receipt. Files come
// one by one or as a whole folder, whose files keep their paths inside it.
"use strict";
(function () {
  var form = document.getElementById("deposit-form");
  if (!form) return;
  var csrf = form.dataset.csrf;
  var files = document.getElementById("files");
  var folder = document.getElementById("folder");
  var kinds = document.getElementById("file-kinds");
  var state = document.getElementById("upload-state");
  var bar = document.getElementById("upload-progress");
  var msg = document.getElementById("upload-message");
  var KINDS = ["source", "spec", "toolchain", "keys", "other"];

  function guessKind(name) {
    var n = name.toLowerCase();
    if (/\.(pdf|md|txt|html)$/.test(n)) return "spec";
    if (/(key|\.pem|\.age|\.gpg)/.test(n)) return "keys";
    if (/toolchain|sdk/.test(n)) return "toolchain";
    return "source";
  }

  // folderPath is a folder file's path inside the chosen folder: the
  // browser gives "sunset/src/main.c" for src/main.c of folder sunset.
  function folderPath(f) {
    var p = f.webkitRelativePath || f.name;
    var i = p.indexOf("/");
    return i >= 0 ? p.slice(i + 1) : p;
  }

  // chosen lists every file to deposit with its path in the deposit.
  function chosen() {
    var out = [];
    Array.prototype.forEach.call(files.files, function (f) { out.push({ file: f, path: f.name }); });
    if (folder) Array.prototype.forEach.call(folder.files, function (f) { out.push({ file: f, path: folderPath(f) }); });
    return out;
  }

  function listChosen() {
    kinds.innerHTML = "";
    var ul = document.createElement("ul");
    ul.className = "filelist";
    chosen().forEach(function (e, i) {
      var f = e.file;
      var li = document.createElement("li");
      var span = document.createElement("span");
      span.textContent = e.path + " (" + f.size + " bytes)";
      var label = document.createElement("label");
      label.htmlFor = "kind-" + i;
      label.className = "sr-only";
      label.textContent = "Kind of " + e.path;
      var sel = document.createElement("select");
      sel.id = "kind-" + i;
      KINDS.forEach(function (k) {
        var o = document.createElement("option");
        o.value = o.textContent = k;
        sel.appendChild(o);
      });
      sel.value = guessKind(e.path);
      li.append(span, label, sel);
      ul.appendChild(li);
    });
    kinds.appendChild(ul);
  }
  files.addEventListener("change", listChosen);
  if (folder) folder.addEventListener("change", listChosen);

  function hex(buf) {
    return Array.prototype.map.call(new Uint8Array(buf), function (b) {
      return b.toString(16).padStart(2, "0");
    }).join("");
  }

  function say(text, isError) {
    msg.textContent = text;
    msg.className = isError ? "error" : "";
  }

  function api(method, url, body) {
    return fetch(url, {
      method: method,
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin"
    }).then(function (r) {
      return r.json().then(function (j) {
        if (!r.ok) throw new Error((j.error && j.error.message) || ("HTTP " + r.status));
        return j;
      });
    });
  }

  function upload(url, file, done, total) {
    return new Promise(function (resolve, reject) {
      var x = new XMLHttpRequest();
      x.open("PUT", url);
      x.setRequestHeader("X-CSRF-Token", csrf);
      x.setRequestHeader("Content-Type", "application/octet-stream");
      x.upload.onprogress = function (e) {
        bar.value = Math.round((done + e.loaded) * 100 / total);
        bar.textContent = bar.value + "%";
      };
      x.onload = function () {
        if (x.status >= 200 && x.status < 300) return resolve();
        var m = "HTTP " + x.status;
        try { m = JSON.parse(x.responseText).error.message; } catch (e) {}
        reject(new Error(file.name + ": " + m));
      };
      x.onerror = function () { reject(new Error(file.name + ": network error")); };
      x.send(file);
    });
  }

  // policy sends the chosen policy's fields as typed; the server checks them.
  function policy() {
    var kind = form.querySelector("input[name=policy]:checked").value;
    var p = { kind: kind };
    if (kind === "dead-man") {
      p.checkin_every = form.checkin_every.value;
      p.checkin_unit = form.checkin_unit.value;
      p.grace = form.grace.value;
      p.grace_unit = form.grace_unit.value;
    } else if (kind === "date") {
      if (!form.release_at.value) throw new Error("Choose a release date and time.");
      p.release_at = form.release_at.value; // UTC, as the form says
    } else if (kind === "quorum") {
      p.quorum = form.quorum.value;
      p.trustees = form.trustees.value.split("\n");
    }
    return p;
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var list = chosen();
    if (!list.length) { say("Choose at least one file or a folder.", true); state.hidden = false; return; }
    if (!window.crypto || !crypto.subtle) { say("This browser cannot hash files here (it needs HTTPS). Use the command-line client.", true); state.hidden = false; return; }
    var button = form.querySelector("button[type=submit]");
    button.disabled = true;
    state.hidden = false;
    bar.value = 0;
    var total = list.reduce(function (a, e) { return a + e.file.size; }, 0) || 1;
    var manifest = [], id;
    var p;
    try { p = policy(); } catch (e) { say(e.message, true); button.disabled = false; return; }
    say("Hashing " + list.length + " file(s)…");
    list.reduce(function (chain, e, i) {
      return chain.then(function () { return e.file.arrayBuffer(); })
        .then(function (b) { return crypto.subtle.digest("SHA-256", b); })
        .then(function (d) {
          manifest.push({ path: e.path, size: e.file.size, sha256: hex(d), kind: document.getElementById("kind-" + i) ? document.getElementById("kind-" + i).value : guessKind(e.path) });
        });
    }, Promise.resolve()).then(function () {
      say("Opening the deposit…");
      var rights = form.rights.value.split("\n").map(function (l) { return l.trim(); }).filter(function (l) { return l !== ""; });
      return api("POST", "/vendor/deposits", { product: form.product.value, policy: p, manifest: manifest, rights: rights, grant: form.grant.value });
    }).then(function (r) {
      id = r.id;
      var done = 0;
      return list.reduce(function (chain, e) {
        return chain.then(function () {
          say("Uploading " + e.path + "…");
          var path = e.path.split("/").map(encodeURIComponent).join("/");
          return upload("/vendor/deposits/" + encodeURIComponent(id) + "/files/" + path, e.file, done, total).then(function () { done += e.file.size; });
        });
      }, Promise.resolve());
    }).then(function () {
      bar.value = 100; bar.textContent = "100%";
      say("Sealing…");
      return api("POST", "/vendor/deposits/" + encodeURIComponent(id) + "/commit");
    }).then(function (r) {
      say("Sealed. Receipt for manifest " + r.receipt.ManifestSHA256 + ".");
      window.location.assign(r.next);
    }).catch(function (e) {
      say("The deposit failed: " + e.message + " Nothing was sealed; you can try again.", true);
      button.disabled = false;
    });
  });
})();
