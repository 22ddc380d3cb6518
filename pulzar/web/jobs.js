// The jobs board: runs by state, schedules, a launch form built from the catalog, cancel,
// and each run's result and log.

import { ApiError, api } from "./api.js";
import {
  $, badge, confirmDialog, fill, formatDuration, formatNumber, h, syncChildren, timeEl, toast,
} from "./dom.js";
import { refreshNow } from "./live.js";

const VIEWS = [
  { id: "all", label: "All runs" },
  { id: "pendings", label: "Pending" },
  { id: "running", label: "Running" },
  { id: "ready", label: "Ready" },
  { id: "failed", label: "Failed" },
  { id: "cancelled", label: "Cancelled" },
  { id: "scheduled", label: "Scheduled" },
];
const RUN_LISTS = ["pendings", "running", "ready", "failed", "cancelled"];
const TONES = {
  pending: "info", running: "accent", ready: "ok", failed: "bad", cancelled: "neutral",
  active: "accent", done: "neutral",
};
const CATALOG_TTL_MS = 10_000;

const state = {
  view: "all",
  board: null,
  catalog: [],
  catalogAt: 0,
  openJob: null, // id of the run shown in the dialog
};

// -- board -----------------------------------------------------------------------------------

function runsOf(board, view) {
  if (view !== "all") return board[view] || [];
  return RUN_LISTS.flatMap((list) => board[list] || []).sort((a, b) => b.job_id - a.job_id);
}

function cancelButton(id, what) {
  return h("button", {
    type: "button", class: "button ghost small danger-text",
    "aria-label": `Cancel ${what} ${id}`, onclick: () => cancel(id, what),
  }, "Cancel");
}

function logsButton(id) {
  return h("button", {
    type: "button", class: "button ghost small", "aria-label": `Logs of job ${id}`,
    onclick: () => openJob(id),
  }, "Logs");
}

function runRow(job) {
  const active = job.status === "pending" || job.status === "running";
  return h("tr", {},
    h("td", { class: "num" }, String(job.job_id)),
    h("th", { scope: "row" }, h("span", { class: "job-name" }, job.job_name),
      job.schedule_id ? h("span", { class: "sub" }, `schedule ${job.schedule_id}`) : null),
    h("td", {}, badge(job.status, TONES[job.status]),
      job.attempts > 1 ? h("span", { class: "sub" }, `attempt ${job.attempts}`) : null),
    h("td", {}, job.node || h("span", { class: "muted" }, "–")),
    h("td", {}, timeEl(job.creation_time)),
    h("td", { class: "num" }, formatDuration(job.duration)),
    h("td", { class: "row-actions" }, logsButton(job.job_id), active ? cancelButton(job.job_id, "job") : null));
}

function scheduleText(s) {
  if (s.cron) return `cron ${s.cron}`;
  if (s.interval && s.time_unit) return `every ${s.time_unit} ${s.interval}`;
  if (s.every_seconds) return `every ${formatDuration(s.every_seconds)}`;
  return s.interval || "–";
}

function scheduleRow(s) {
  const runs = s.max_runs ? `${s.runs} / ${s.max_runs}` : formatNumber(s.runs);
  return h("tr", {},
    h("td", { class: "num" }, String(s.job_id)),
    h("th", { scope: "row" }, h("span", { class: "job-name" }, s.job_name)),
    h("td", {}, scheduleText(s), s.repeat ? null : h("span", { class: "sub" }, "once")),
    h("td", {}, timeEl(s.next_execution)),
    h("td", { class: "num" }, runs),
    h("td", { class: "row-actions" },
      s.last_job_id ? logsButton(s.last_job_id) : null,
      s.status === "active" ? cancelButton(s.job_id, "schedule") : null));
}

const HEADS = {
  runs: ["ID", "Job", "Status", "Node", "Created", "Duration", "Actions"],
  scheduled: ["ID", "Job", "Schedule", "Next run", "Runs", "Actions"],
};

function renderHead(kind) {
  const head = $("#jobs-head");
  if (head.dataset.kind === kind) return;
  head.dataset.kind = kind;
  const numeric = new Set(["ID", "Duration", "Runs"]);
  fill(head, h("tr", {}, HEADS[kind].map((name) =>
    h("th", { scope: "col", class: numeric.has(name) ? "num" : null }, name))));
  $("#jobs").replaceChildren(); // rows of the other kind have other columns
}

function renderTabs() {
  const board = state.board || {};
  const counts = Object.fromEntries(VIEWS.map((v) => [v.id, runsOf(board, v.id).length]));
  const tabs = $("#job-tabs");
  if (!tabs.children.length) {
    for (const view of VIEWS) {
      tabs.append(h("button", {
        type: "button", class: "segment", dataset: { view: view.id },
        onclick: () => { state.view = view.id; renderBoard(); },
      }, h("span", {}, view.label), " ", h("span", { class: "count" })));
    }
  }
  for (const button of tabs.children) {
    const view = button.dataset.view;
    button.setAttribute("aria-pressed", String(view === state.view));
    button.querySelector(".count").textContent = formatNumber(counts[view]);
  }
}

function renderBoard() {
  renderTabs();
  if (!state.board) return;
  const scheduled = state.view === "scheduled";
  renderHead(scheduled ? "scheduled" : "runs");
  const items = runsOf(state.board, state.view);
  if (scheduled) syncChildren($("#jobs"), items, (s) => `s${s.job_id}`, scheduleRow);
  else syncChildren($("#jobs"), items, (j) => j.job_id, runRow);
  const label = VIEWS.find((v) => v.id === state.view).label;
  fill($("#jobs-caption"), label);
  $("#jobs-empty").hidden = items.length > 0;
  fill($("#jobs-empty"), scheduled ? "No active schedule." : `No ${label.toLowerCase()} job.`);
}

async function cancel(id, what) {
  const sure = await confirmDialog(`Cancel ${what} ${id}?`,
    what === "schedule" ? "The schedule stops for good; runs already started go on."
      : "A pending run is dropped; a running one is stopped.", `Cancel ${what}`);
  if (!sure) return;
  try {
    const answer = await api.cancelJob(id);
    toast(answer.msg || `Cancelled ${what} ${id}`);
    refreshNow();
  } catch (error) {
    toast(`Could not cancel ${what} ${id}: ${error.message}`, "bad");
  }
}

// -- one run -----------------------------------------------------------------------------------

function pretty(value) {
  if (value === null || value === undefined) return "null";
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

function renderJob(job) {
  fill($("#job-dialog-title"), `Job ${job.job_id} · ${job.job_name}`);
  const facts = [
    ["Status", badge(job.status, TONES[job.status])],
    ["Node", job.node || "–"],
    ["Attempts", String(job.attempts)],
    ["Created", timeEl(job.creation_time)],
    ["Started", timeEl(job.started)],
    ["Finished", timeEl(job.finished)],
    ["Duration", formatDuration(job.duration)],
    ["Parameters", h("code", { class: "wrap" }, job.parameters)],
  ];
  fill($("#job-facts"), facts.map(([name, value]) => [h("dt", {}, name), h("dd", {}, value)]));
  fill($("#job-result"), job.status === "ready" ? pretty(job.result) : "–");
  $("#job-error-block").hidden = !job.error;
  fill($("#job-error"), job.error || "");
  const log = $("#job-log");
  const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  if (log.textContent !== (job.log || "")) {
    log.textContent = job.log || "";
    if (atEnd) log.scrollTop = log.scrollHeight;
  }
  if (!job.log) fill(log, h("span", { class: "muted" }, "(no output)"));
}

/** A run shown in the dialog that has since been purged: show nothing new. */
function gone(error) {
  if (error instanceof ApiError && error.status === 404) return null;
  throw error;
}

async function openJob(id) {
  state.openJob = id;
  try {
    renderJob(await api.job(id));
    const dialog = $("#job-dialog");
    if (!dialog.open) dialog.showModal();
  } catch (error) {
    state.openJob = null;
    toast(`Could not load job ${id}: ${error.message}`, "bad");
  }
}

// -- launching -------------------------------------------------------------------------------

function renderCatalog() {
  const select = $("#launch-job");
  const chosen = select.value;
  const groups = new Map();
  for (const entry of state.catalog) {
    const category = entry.category || "Other";
    if (!groups.has(category)) groups.set(category, []);
    groups.get(category).push(entry);
  }
  const options = [];
  for (const [category, entries] of groups) {
    options.push(h("optgroup", { label: category },
      entries.map((e) => h("option", { value: e.path }, e.path))));
  }
  if (!state.catalog.length) {
    options.push(h("option", { value: "", disabled: true }, "No job in the master's job directory"));
  }
  fill(select, options);
  if (chosen && state.catalog.some((e) => e.path === chosen)) select.value = chosen;
  renderDoc();
}

function renderDoc() {
  const entry = state.catalog.find((e) => e.path === $("#launch-job").value);
  const facts = entry
    ? [["Does", entry.description], ["Arguments", entry.arguments], ["Author", entry.author],
      ["Problem", entry.error]].filter(([, value]) => value)
    : [];
  fill($("#launch-doc"), facts.map(([name, value]) => [h("dt", {}, name), h("dd", {}, value)]));
}

async function loadCatalog(force = false) {
  if (!force && Date.now() - state.catalogAt < CATALOG_TTL_MS) return;
  const catalog = await api.catalog();
  state.catalogAt = Date.now();
  if (JSON.stringify(catalog) !== JSON.stringify(state.catalog)) {
    state.catalog = catalog;
    renderCatalog();
  }
}

function whenChanged() {
  const when = document.querySelector('input[name="when"]:checked').value;
  $("#launch-every").hidden = when !== "every";
  $("#launch-cron").hidden = when !== "cron";
}

function launchBody() {
  let params;
  try {
    params = JSON.parse($("#launch-params").value.trim() || "{}");
  } catch (error) {
    throw new Error(`the parameters are not valid JSON: ${error.message}`);
  }
  if (params === null || typeof params !== "object" || Array.isArray(params)) {
    throw new Error("the parameters must be a JSON object, like {\"name\": \"world\"}");
  }
  const body = { ...params };
  const data = $("#launch-data").value.trim();
  if (data) body.pulzar_data = data.startsWith("/") ? data : `/${data}`;
  const when = document.querySelector('input[name="when"]:checked').value;
  if (when === "every") {
    body.scheduled = {
      interval: $("#launch-every-unit").value,
      time_unit: Number($("#launch-every-n").value),
      repeat: 1,
    };
  } else if (when === "cron") {
    body.scheduled = { cron: $("#launch-cron-expr").value.trim() };
  }
  return body;
}

async function launch(event) {
  event.preventDefault();
  const message = $("#launch-message");
  const name = $("#launch-job").value;
  const submit = $("#launch-submit");
  message.className = "form-message";
  let body;
  try {
    body = launchBody();
  } catch (error) {
    message.className = "form-message bad";
    fill(message, error.message);
    return;
  }
  submit.disabled = true;
  try {
    const answer = await api.launchJob(name, body);
    const id = answer.job_id;
    message.className = "form-message ok";
    if (body.scheduled) {
      fill(message, `Schedule ${id} created for ${name}.`);
    } else {
      fill(message, `Job ${id} launched (${name}). `,
        h("button", { type: "button", class: "link", onclick: () => openJob(id) }, "Show its log"));
    }
    message.dataset.jobId = String(id);
    refreshNow();
  } catch (error) {
    message.className = "form-message bad";
    const hint = error instanceof ApiError && (error.status === 401 || error.status === 403)
      ? " (launching needs the admin token)" : "";
    fill(message, `Launch failed: ${error.message}${hint}`);
  } finally {
    submit.disabled = false;
  }
}

export default {
  title: "Jobs",
  init() {
    $("#launch-form").addEventListener("submit", launch);
    $("#launch-job").addEventListener("change", renderDoc);
    for (const radio of document.querySelectorAll('input[name="when"]')) {
      radio.addEventListener("change", whenChanged);
    }
    const dialog = $("#job-dialog");
    $("[data-close]", dialog).addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => { state.openJob = null; });
    renderTabs();
  },
  enter(params) {
    const view = params.get("view");
    if (VIEWS.some((v) => v.id === view)) state.view = view;
    state.catalogAt = 0;
  },
  async refresh() {
    const open = state.openJob;
    const [board, job] = await Promise.all([
      api.jobs(),
      open !== null ? api.job(open).catch(gone) : null,
      loadCatalog(),
    ]);
    state.board = board;
    renderBoard();
    if (job && state.openJob === open) renderJob(job);
  },
};
