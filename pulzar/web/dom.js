// Small DOM and formatting helpers. Text always goes in as text nodes, never as HTML: keys,
// job names and logs are user data.

/** `h("td", {class: "num"}, "12")`: an element with attributes, listeners and children. */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** Replace the children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const signatures = new WeakMap();

/**
 * Make `parent`'s children show `items`, reusing the element of each unchanged item (by
 * `keyOf`) so that a live refresh keeps focus, selection and scroll position; an item whose
 * content changed gets a fresh element from `render`.
 */
export function syncChildren(parent, items, keyOf, render) {
  const old = new Map();
  for (const el of parent.children) old.set(el.dataset.key, el);
  let cursor = parent.firstElementChild;
  for (const item of items) {
    const key = String(keyOf(item));
    const sig = JSON.stringify(item);
    let el = old.get(key);
    old.delete(key);
    if (!el || signatures.get(el) !== sig) {
      const fresh = render(item);
      fresh.dataset.key = key;
      signatures.set(fresh, sig);
      if (el) {
        if (el === cursor) cursor = fresh;
        el.replaceWith(fresh);
      }
      el = fresh;
    }
    if (el === cursor) cursor = el.nextElementSibling;
    else parent.insertBefore(el, cursor);
  }
  for (const el of old.values()) el.remove();
}

// -- formatting ----------------------------------------------------------------------------

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

export function formatBytes(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  let value = Number(n);
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 ? 0 : 1;
  return `${value.toFixed(digits)} ${UNITS[unit]}`;
}

export function formatNumber(n) {
  return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US");
}

const pad = (n) => String(n).padStart(2, "0");

/** `2026-11-29 10:17:05`, in local time. */
export function formatDate(date) {
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/** `<time>` for an ISO-8601 string or epoch seconds, in local time with UTC in the title. */
export function timeEl(value) {
  if (value === null || value === undefined || value === "") return h("span", { class: "muted" }, "–");
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  if (Number.isNaN(date.getTime())) return h("span", {}, String(value));
  const iso = date.toISOString();
  return h("time", { datetime: iso, title: `${iso.replace("T", " ").replace(/\.\d+Z$/, "")} UTC` },
    formatDate(date));
}

export function formatAge(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
  const s = Math.max(0, seconds);
  if (s < 1) return "just now";
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** A coloured label; the text says the state, the colour only repeats it. */
export function badge(text, tone) {
  return h("span", { class: `badge ${tone || "neutral"}` }, text);
}

/** A horizontal bar for a percentage (0-100), with an accessible value. */
export function bar(percent, label) {
  const value = Math.max(0, Math.min(100, Number(percent) || 0));
  const fill = h("span", { class: "bar-fill" });
  fill.style.width = `${value}%`;
  const tone = value >= 90 ? "bad" : value >= 75 ? "warn" : "ok";
  return h("span", {
    class: `bar ${tone}`, role: "progressbar", "aria-label": label,
    "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": value.toFixed(1),
  }, fill);
}

export function setProgress(container, loaded, total) {
  container.hidden = false;
  const fill = container.querySelector(".progress-bar");
  const percent = total ? Math.round((loaded / total) * 100) : 0;
  fill.style.width = `${percent}%`;
  fill.setAttribute("aria-valuenow", String(percent));
}

// -- feedback ------------------------------------------------------------------------------

export function toast(message, tone = "ok") {
  const el = h("div", { class: `toast ${tone}`, role: tone === "bad" ? "alert" : null }, message);
  $("#toasts").append(el);
  setTimeout(() => el.remove(), tone === "bad" ? 8000 : 5000);
}

/** A modal yes/no question; resolves to true when confirmed. */
export function confirmDialog(title, text, confirmLabel = "OK") {
  const dialog = $("#confirm-dialog");
  fill($("#confirm-title"), title);
  fill($("#confirm-text"), text);
  fill($("#confirm-ok"), confirmLabel);
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: filename || "download" });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
