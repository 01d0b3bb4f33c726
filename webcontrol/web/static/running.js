// SPDX-License-Identifier: GPL-3.0-or-later
// Live updates of /running without reloading: polls /api/v1/running/status
// (304 while nothing changed), updates counts, durations and hints, marks
// finished jobs, announces new ones, and follows a job's log tail on request.
(function () {
  "use strict";
  var POLL_MS = 10000;
  var FOLLOW_MS = 4000;
  var base = (document.currentScript && document.currentScript.dataset.site) || "";
  var etag = null;
  var known = {};
  var following = {};

  document.querySelectorAll("[data-job].running-job").forEach(function (el) { known[el.dataset.job] = true; });

  function text(selector, value) {
    var el = document.querySelector(selector);
    if (el) { el.textContent = value; }
  }

  function runningForCell(block) {
    var cells = block.querySelectorAll("table.running th");
    for (var i = 0; i < cells.length; i++) {
      if (cells[i].textContent === "Running for:") { return cells[i].nextElementSibling; }
    }
    return null;
  }

  function apply(status) {
    text("#running-count", status.running_count);
    if (status.updated) {
      text("[data-age=running]", status.updated.running);
      text("[data-age=queued]", status.updated.queued);
    }
    Object.keys(status.queue_sizes || {}).forEach(function (ctx) {
      Object.keys(status.queue_sizes[ctx]).forEach(function (rel) {
        Object.keys(status.queue_sizes[ctx][rel]).forEach(function (arch) {
          text('[data-queue="' + ctx + "/" + rel + "/" + arch + '"]', status.queue_sizes[ctx][rel][arch]);
        });
      });
    });
    var fresh = 0;
    Object.keys(status.jobs).forEach(function (id) {
      var job = status.jobs[id];
      var block = document.getElementById("job-" + id);
      if (!block) { if (!known[id]) { fresh++; } return; }
      var cell = runningForCell(block);
      if (cell) { cell.textContent = job.human_duration + " (" + job.duration + "s)"; }
      if (following[id] && block.dataset.tail !== job.tail) { fetchJob(id); }
      block.dataset.tail = job.tail;
    });
    document.querySelectorAll(".running-job[data-job]").forEach(function (block) {
      if (!status.jobs[block.dataset.job] && !block.classList.contains("finished")) {
        block.classList.add("finished");
        var links = block.querySelector(".job-links");
        if (links) { links.insertAdjacentText("afterbegin", "✔ finished · "); }
      }
    });
    var notice = document.getElementById("live-notice");
    if (notice) {
      notice.hidden = fresh === 0;
      notice.textContent = fresh + " new job" + (fresh === 1 ? "" : "s") + " started since this page was loaded: reload to see them.";
    }
    text("#live-status", "(live)");
  }

  function poll() {
    var headers = etag ? { "If-None-Match": etag } : {};
    fetch(base + "/api/v1/running/status", { headers: headers, cache: "no-cache" })
      .then(function (response) {
        if (response.status === 304) { return null; }
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        etag = response.headers.get("ETag");
        return response.json();
      })
      .then(function (status) { if (status) { apply(status); } })
      .catch(function () { text("#live-status", "(live updates paused)"); })
      .finally(function () { setTimeout(poll, POLL_MS); });
  }

  function fetchJob(id) {
    fetch(base + "/api/v1/running/job/" + id, { cache: "no-cache" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (job) {
        var block = document.getElementById("job-" + id);
        if (!job || !block) { return; }
        var pre = block.querySelector("pre.logtail");
        if (pre && pre.textContent !== job.logtail) {
          pre.textContent = job.logtail;
          pre.scrollTop = pre.scrollHeight;
        }
        var cell = runningForCell(block);
        if (cell) { cell.textContent = job.human_duration + " (" + job.duration + "s)"; }
      });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button.follow");
    if (!button) { return; }
    var id = button.dataset.job;
    if (following[id]) {
      clearInterval(following[id]);
      delete following[id];
      button.textContent = "follow log";
    } else {
      fetchJob(id);
      following[id] = setInterval(function () { fetchJob(id); }, FOLLOW_MS);
      button.textContent = "stop following";
    }
  });

  setTimeout(poll, POLL_MS);
})();
