// ==UserScript==
// @name         autopkgtest log beautifier
// @description  Colours results and marks sections in raw autopkgtest logs (…/log.gz shown as text).
// @match        https://autopkgtest.ubuntu.com/results/*/log.gz
// @match        http://127.0.0.1/*/log.gz
// @grant        none
// @version      1
// @license      GPL-3.0-or-later
// ==/UserScript==
// SPDX-License-Identifier: GPL-3.0-or-later
(function () {
  "use strict";
  const pre = document.querySelector("body > pre");
  if (!pre) return;
  const colours = { PASS: "#1f7a32", FAIL: "#b3261e", SKIP: "#6b6b6b", FLAKY: "#a05a00" };
  const section = /^\s*(\d+s )?autopkgtest \[\d\d:\d\d:\d\d\]: @@@@@@@@@@@@@@@@@@@@ (.*)$/;
  const result = /^\s*(\d+s )?(\S+)\s+(PASS|FAIL|SKIP|FLAKY)\b/;
  const out = document.createElement("div");
  out.style.font = "13px/1.4 monospace";
  out.style.whiteSpace = "pre-wrap";
  for (const line of pre.textContent.split("\n")) {
    const row = document.createElement("div");
    row.textContent = line;  // text only: log content is never interpreted as HTML
    const header = section.exec(line);
    const outcome = result.exec(line);
    if (header) {
      row.style.fontWeight = "bold";
      row.style.borderTop = "1px solid #999";
      row.style.marginTop = "0.6em";
      row.id = "section-" + header[2].replace(/\W+/g, "-");
    } else if (outcome) {
      row.style.color = colours[outcome[3]];
    }
    out.appendChild(row);
  }
  pre.replaceWith(out);
})();
