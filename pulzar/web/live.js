// The live refresh: the page on screen is refreshed every POLL_MS while the tab is visible.
// One refresh at a time; `refreshNow()` (after an action) runs one as soon as possible.

import { ApiError } from "./api.js";
import { $, toast } from "./dom.js";

export const POLL_MS = 1500;

let page = null;
let timer = null;
let inFlight = false;
let again = false;
let state = "connecting";

/** Show `next` and refresh it at once. */
export function setPage(next) {
  page = next;
  refreshNow();
}

export async function refreshNow() {
  clearTimeout(timer);
  if (!page) return;
  if (inFlight) {
    again = true;
    return;
  }
  inFlight = true;
  try {
    await page.refresh();
    setConnection("live", `Live · updated ${new Date().toLocaleTimeString([], { hour12: false })}`);
  } catch (error) {
    reportFailure(error);
  } finally {
    inFlight = false;
  }
  if (again) {
    again = false;
    refreshNow();
  } else if (!document.hidden) {
    timer = setTimeout(refreshNow, POLL_MS);
  }
}

document.addEventListener("visibilitychange", () => {
  if (document.hidden) clearTimeout(timer);
  else refreshNow();
});

function reportFailure(error) {
  if (!(error instanceof ApiError)) {
    console.error(error);
    setConnection("error", `Error: ${error.message}`);
    return;
  }
  if (error.status === 0) setConnection("offline", "Master unreachable");
  else if (error.status === 401 || error.status === 403) {
    const first = state !== "auth";
    setConnection("auth", "Token needed");
    if (first) document.dispatchEvent(new CustomEvent("pulzar:token-needed", { detail: error.message }));
  } else setConnection("error", error.message);
}

function setConnection(next, text) {
  const el = $("#connection");
  const previous = state;
  const changed = next !== previous;
  state = next;
  el.dataset.state = next;
  $(".connection-text", el).textContent = text;
  el.title = text;
  if (!changed) return;
  if (next !== "live") toast(text, "bad");
  else if (previous !== "connecting") toast("Connected to the master again", "ok");
}
