// SPDX-License-Identifier: GPL-3.0-or-later
// The /request form: shows the arches of the chosen release and submits inline to
// request.cgi (with the form token), showing request.cgi's own answer.
(function () {
  var form = document.getElementById("request-form");
  var outcome = document.getElementById("outcome");
  var select = form.querySelector("select[name=release]");
  function showArches() {
    form.querySelectorAll(".arches").forEach(function (div) {
      var on = div.dataset.release === select.value;
      div.hidden = !on;
      div.querySelectorAll("input").forEach(function (box) { box.disabled = !on; });
    });
    form.querySelectorAll(".release-hint").forEach(function (hint) { hint.hidden = true; });
  }
  select.addEventListener("change", showArches);
  showArches();
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var data = new URLSearchParams();
    new FormData(form).forEach(function (value, key) {
      var parts = key === "ppa" ? value.split(/\s+/) : [value];
      parts.forEach(function (part) { if (part.trim()) { data.append(key, part.trim()); } });
    });
    outcome.textContent = "Submitting\u2026";
    fetch(form.dataset.submitTo, {method: "POST", body: data, credentials: "same-origin"})
      .then(function (response) { return response.text(); })
      .then(function (text) {
        var page = new DOMParser().parseFromString(text, "text/html");
        var main = page.querySelector("main");
        outcome.replaceChildren.apply(outcome, main ? Array.from(main.childNodes) : [document.createTextNode(text)]);
      })
      .catch(function (err) { outcome.textContent = "Could not reach request.cgi: " + err; });
  });
})();
