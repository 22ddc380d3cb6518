// The dashboard's entry point: hash routing between the three pages, and the token dialog.

import { getToken, setToken } from "./api.js";
import { $ } from "./dom.js";
import { refreshNow, setPage } from "./live.js";
import jobs from "./jobs.js";
import keys from "./keys.js";
import overview from "./overview.js";

const pages = { overview, keys, jobs };

function parseHash() {
  const [name, q] = location.hash.replace(/^#/, "").split("?");
  return { name: name in pages ? name : "overview", params: new URLSearchParams(q || "") };
}

function show() {
  const { name, params } = parseHash();
  for (const key of Object.keys(pages)) $(`#page-${key}`).hidden = key !== name;
  for (const link of document.querySelectorAll(".tabs a")) {
    if (link.dataset.page === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const page = pages[name];
  document.title = `${page.title} · Pulzar`;
  // A new page, or new parameters in the address (a pasted `#keys?prefix=...`).
  page.enter(params);
  setPage(page);
}

function tokenDialog(reason) {
  const dialog = $("#token-dialog");
  if (dialog.open) return;
  $("#token-input").value = getToken();
  dialog.returnValue = "";
  dialog.showModal();
  if (reason) $("#token-title").textContent = `Access token — ${reason}`;
}

function setupToken() {
  const dialog = $("#token-dialog");
  $("#token-button").addEventListener("click", () => tokenDialog());
  dialog.addEventListener("close", () => {
    $("#token-title").textContent = "Access token";
    if (dialog.returnValue === "save") setToken($("#token-input").value.trim());
    else if (dialog.returnValue === "clear") setToken("");
    else return;
    refreshNow();
  });
  document.addEventListener("pulzar:token-needed", (event) => tokenDialog(event.detail));
}

for (const page of Object.values(pages)) page.init();
setupToken();
window.addEventListener("hashchange", show);
show();
