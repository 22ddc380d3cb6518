// Key browser: prefix search with paging, metadata, download, upload and delete.

import { ApiError, api } from "./api.js";
import {
  $, badge, confirmDialog, fill, formatBytes, formatNumber, h, saveBlob, setProgress,
  syncChildren, timeEl, toast,
} from "./dom.js";
import { refreshNow } from "./live.js";

const state = {
  prefix: "",
  limit: 100,
  after: null, // the `after` token of the page on screen (null: the first page)
  previous: [], // the `after` tokens of the pages before it
  next: null,
  selected: null,
  autoKey: "", // the key the upload form proposed, replaced when another file is chosen
};

const REPLICA_TONES = { alive: "ok", suspect: "warn", dead: "bad" };

function basename(key) {
  return key.split("/").filter(Boolean).pop() || "value";
}

function keyRow(entry) {
  return h("tr", {},
    h("th", { scope: "row", class: "key-cell" },
      h("button", { type: "button", class: "link key-button", onclick: () => select(entry.key) },
        entry.key)),
    h("td", { class: "num" }, formatBytes(entry.size)),
    h("td", { class: "num optional" }, String(entry.version)),
    h("td", {}, timeEl(entry.modified || entry.created)),
    h("td", { class: "optional" }, timeEl(entry.expires)));
}

function markSelected() {
  for (const row of $("#keys").children) {
    const selected = row.dataset.key === state.selected;
    row.classList.toggle("selected", selected);
    const button = row.querySelector(".key-button");
    if (selected) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
}

function select(key) {
  state.selected = key;
  markSelected();
  refreshNow();
}

function setPrefix(prefix) {
  state.prefix = prefix;
  state.after = null;
  state.previous = [];
  const hash = prefix ? `#keys?${new URLSearchParams({ prefix })}` : "#keys";
  history.replaceState(null, "", hash);
  refreshNow();
}

/** The page of keys on screen; an invalid prefix is said in the list, not as a failure. */
async function listPage() {
  try {
    const page = await api.listKeys(state.prefix, { limit: state.limit, after: state.after });
    return { ...page, problem: null };
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 400) throw error;
    return { keys: [], next: null, problem: error.message };
  }
}

function renderList(page) {
  const keys = page.keys || [];
  fill($("#keys-empty"), page.problem ? `Invalid prefix: ${page.problem}` : "No key under this prefix.");
  state.next = page.next;
  syncChildren($("#keys"), keys, (k) => k.key, keyRow);
  markSelected();
  $("#keys-empty").hidden = keys.length > 0;
  $("#keys-prev").disabled = state.previous.length === 0;
  $("#keys-next").disabled = !state.next;
  const first = state.previous.length * state.limit + 1;
  fill($("#keys-page"), keys.length ? `Keys ${formatNumber(first)}–${formatNumber(first + keys.length - 1)}` : "");
}

function renderDetails(meta) {
  $("#key-details-empty").hidden = Boolean(meta);
  $("#key-details-body").hidden = !meta;
  if (!meta) return;
  fill($("#key-details-key"), meta.key);
  const facts = [
    ["Size", `${formatBytes(meta.size)} (${formatNumber(meta.size)} bytes)`],
    ["Version", String(meta.version)],
    ["Content type", meta.content_type || "–"],
    ["ETag", h("code", { class: "wrap" }, meta.etag || "–")],
    ["Created", timeEl(meta.created)],
    ["Modified", timeEl(meta.modified)],
    ["Expires", meta.expires ? timeEl(meta.expires) : "never"],
  ];
  fill($("#key-facts"), facts.map(([name, value]) => [h("dt", {}, name), h("dd", {}, value)]));
  const replicas = meta.replicas || [];
  syncChildren($("#key-replicas"), replicas, (r) => r.id, (r) =>
    h("li", {}, badge(r.state, REPLICA_TONES[r.state]), " ", r.node || r.id,
      r.url ? h("span", { class: "sub" }, r.url) : null));
  $("#key-open").href = api.keyUrl(meta.key);
}

async function refreshDetails() {
  if (!state.selected) {
    renderDetails(null);
    return;
  }
  try {
    renderDetails(await api.statKey(state.selected));
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 404) throw error;
    toast(`${state.selected} no longer exists`, "warn");
    state.selected = null;
    renderDetails(null);
  }
}

async function download() {
  const key = state.selected;
  const progress = $("#download-progress");
  const button = $("#key-download");
  button.disabled = true;
  try {
    const blob = await api.download(key, (loaded, total) => setProgress(progress, loaded, total));
    saveBlob(blob, basename(key));
  } catch (error) {
    toast(`Download of ${key} failed: ${error.message}`, "bad");
  } finally {
    button.disabled = false;
    progress.hidden = true;
  }
}

async function remove() {
  const key = state.selected;
  const sure = await confirmDialog("Delete this key?", `${key} will be deleted from every volume.`, "Delete");
  if (!sure) return;
  try {
    await api.deleteKey(key);
    toast(`Deleted ${key}`);
    state.selected = null;
    refreshNow();
  } catch (error) {
    toast(`Could not delete ${key}: ${error.message}`, "bad");
  }
}

function proposeKey() {
  const file = $("#upload-file").files[0];
  const input = $("#upload-key");
  if (!file || (input.value && input.value !== state.autoKey)) return;
  const folder = state.prefix.endsWith("/") ? state.prefix : state.prefix.replace(/[^/]*$/, "");
  state.autoKey = `${folder.startsWith("/") ? folder : `/${folder}`}${file.name}`;
  input.value = state.autoKey;
}

async function upload(event) {
  event.preventDefault();
  const file = $("#upload-file").files[0];
  const raw = $("#upload-key").value.trim();
  const ttl = $("#upload-ttl").value.trim();
  const message = $("#upload-message");
  const progress = $("#upload-progress");
  if (!file || !raw) return;
  const key = raw.startsWith("/") ? raw : `/${raw}`;
  const submit = $("#upload-submit");
  submit.disabled = true;
  message.className = "form-message";
  fill(message, `Uploading ${file.name}…`);
  setProgress(progress, 0, file.size);
  try {
    const stored = await api.upload(key, file, {
      ttlDays: ttl || undefined,
      onProgress: (loaded, total) => setProgress(progress, loaded, total),
    });
    message.className = "form-message ok";
    fill(message, `Stored ${key} (version ${stored ? stored.version : "?"}, ${formatBytes(file.size)}).`);
    $("#upload-form").reset();
    state.autoKey = "";
    state.selected = key;
    refreshNow();
  } catch (error) {
    message.className = "form-message bad";
    fill(message, `Upload failed: ${error.message}`);
  } finally {
    submit.disabled = false;
    progress.hidden = true;
  }
}

export default {
  title: "Keys",
  init() {
    let typing = null;
    $("#key-search").addEventListener("submit", (event) => {
      event.preventDefault();
      clearTimeout(typing);
      setPrefix($("#key-prefix").value.trim());
    });
    $("#key-prefix").addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(() => setPrefix($("#key-prefix").value.trim()), 300);
    });
    $("#key-limit").addEventListener("change", () => {
      state.limit = Number($("#key-limit").value);
      setPrefix(state.prefix);
    });
    $("#keys-next").addEventListener("click", () => {
      if (!state.next) return;
      state.previous.push(state.after);
      state.after = state.next;
      refreshNow();
    });
    $("#keys-prev").addEventListener("click", () => {
      if (!state.previous.length) return;
      state.after = state.previous.pop();
      refreshNow();
    });
    $("#key-download").addEventListener("click", download);
    $("#key-delete").addEventListener("click", remove);
    $("#upload-file").addEventListener("change", proposeKey);
    $("#upload-form").addEventListener("submit", upload);
  },
  enter(params) {
    state.prefix = params.get("prefix") || state.prefix;
    $("#key-prefix").value = state.prefix;
  },
  async refresh() {
    const [page] = await Promise.all([listPage(), refreshDetails()]);
    renderList(page);
  },
};
