// Cluster overview: the volumes (state, disk, load, keys, jobs), replication and repair.

import { api } from "./api.js";
import {
  $, badge, bar, fill, formatAge, formatBytes, formatNumber, h, syncChildren, timeEl,
} from "./dom.js";

const STATE_TONES = { alive: "ok", suspect: "warn", dead: "bad" };

function nodeRow(node) {
  // `percent` is the use of the data disk (or of `max_bytes`); `used_bytes` Pulzar's values.
  const disk = node.capacity ? `${node.percent.toFixed(1)} % of ${formatBytes(node.capacity)}`
    : `${node.percent.toFixed(1)} %`;
  return h("tr", {},
    h("th", { scope: "row" },
      h("span", { class: "node-name" }, node.node),
      h("span", { class: "sub" }, node.url)),
    h("td", {},
      badge(node.state, STATE_TONES[node.state]),
      node.draining ? badge("draining", "info") : null),
    h("td", { class: "col-disk" },
      h("div", { class: "disk" },
        bar(node.percent, `Disk use of ${node.node}`),
        h("span", { class: "sub" }, `${disk} · ${formatBytes(node.used_bytes)} of values`))),
    h("td", { class: "num" }, node.load.toFixed(2)),
    h("td", { class: "num" }, formatNumber(node.keys)),
    h("td", { class: "num" }, `${node.running_jobs} / ${node.workers}`),
    h("td", { class: "age", dataset: { seen: node.last_seen } }));
}

function repairView(repair, nodes) {
  if (!repair) return [h("p", { class: "muted" }, "No repair information.")];
  const last = repair.last_pass ? ["Last repair pass ", timeEl(repair.last_pass), "."]
    : ["No repair pass yet."];
  const dead = nodes.filter((n) => n.state !== "alive").length;
  const moved = repair.copies_made || repair.copies_failed
    ? ` ${formatNumber(repair.copies_made)} copies made (${formatBytes(repair.bytes_copied)})` +
      (repair.copies_failed ? `, ${formatNumber(repair.copies_failed)} failed.` : ".")
    : "";
  if (!repair.under_replicated && !repair.unavailable) {
    return [
      h("p", { class: "repair-line" }, badge("healthy", "ok"),
        " Every key has all its copies", dead ? ` (${dead} volume${dead > 1 ? "s" : ""} not alive)` : "", "."),
      h("p", { class: "muted" }, ...last, moved),
    ];
  }
  const done = repair.copies_made;
  const todo = repair.under_replicated;
  const percent = done + todo ? (done / (done + todo)) * 100 : 0;
  return [
    h("p", { class: "repair-line" },
      badge(repair.running ? "repairing" : "under-replicated", "warn"),
      ` ${formatNumber(todo)} key${todo === 1 ? "" : "s"} below their copy count`,
      repair.unavailable ? `, ${formatNumber(repair.unavailable)} with no live copy` : "", "."),
    bar(percent, "Repair progress"),
    h("p", { class: "muted" }, ...last, moved),
  ];
}

function updateAges() {
  const now = Date.now() / 1000;
  for (const cell of document.querySelectorAll("#nodes td.age")) {
    cell.textContent = formatAge(now - Number(cell.dataset.seen));
  }
}

export default {
  title: "Overview",
  init() {
    setInterval(updateAges, 1000);
  },
  enter() {},
  async refresh() {
    const [network, health, status] = await Promise.all([
      api.network(), api.health(), api.indexStatus(),
    ]);
    const nodes = network.data || [];
    nodes.sort((a, b) => a.node.localeCompare(b.node, undefined, { numeric: true }));
    syncChildren($("#nodes"), nodes, (n) => n.id, nodeRow);
    updateAges();
    $("#nodes-empty").hidden = nodes.length > 0;

    const live = nodes.filter((n) => n.state === "alive").length;
    fill($("#stat-volumes"), `${live} / ${nodes.length}`);
    fill($("#stat-keys"), formatNumber(status.entries));
    fill($("#stat-bytes"), formatBytes(nodes.reduce((sum, n) => sum + (n.used_bytes || 0), 0)));
    fill($("#stat-jobs"), formatNumber(nodes.reduce((sum, n) => sum + (n.running_jobs || 0), 0)));
    fill($("#repair"), ...repairView(network.repair, nodes));
    fill($("#overview-master"), `Master ${location.origin}`);

    const banner = $("#health-banner");
    banner.hidden = health.ok;
    if (!health.ok) {
      banner.textContent = `Unhealthy: ${(health.body && health.body.msg) || "no live volume"}. ` +
        "Reads and writes fail until enough volumes are live.";
    }
  },
};
