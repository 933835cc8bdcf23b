// One incident as a table row (the incidents page and a stream's page), updated in place by id so a live
// refresh keeps the reader's focus and scroll position.

import { enc, streamPath } from "./api.js";
import { h, td } from "./dom.js";
import { duration, signalLabel, streamName } from "./format.js";
import { ackBadge, severityBadge, statusBadge, when } from "./widgets.js";

export const INCIDENT_COLUMNS = [
  { label: "Severity" }, { label: "Service and stream" }, { label: "What happened" },
  { label: "Opened" }, { label: "Duration", className: "num" }, { label: "Status" },
];

export function incidentRow(incident, now = new Date()) {
  const name = streamName(incident.stream_id, incident.signal, incident.service);
  const row = h("tr", { dataset: { id: incident.id, status: incident.status } },
    td("Severity", severityBadge(incident.severity)),
    td("Service and stream", [
      h("span", { class: "service" }, incident.service), " ",
      h("span", { class: "muted" }, `(${signalLabel(incident.signal).toLowerCase()})`),
      h("a", { class: "name", href: `/streams/${streamPath(incident.stream_id)}`, title: incident.stream_id }, name),
    ], "stream-cell wide"),
    td("What happened", h("a", { href: `/incidents/${enc(incident.id)}` }, incident.summary || "(no summary)"), "summary-cell wide"),
    td("Opened", when(incident.opened_at, now), "wide"),
    // event time (the API's duration): wall-clock time since opening would lie for replayed or delayed data
    td("Duration", incident.status === "open" ? [duration(incident.duration_seconds), h("span", { class: "muted" }, " so far")]
      : duration(incident.duration_seconds), "num"),
    td("Status", h("span", { class: "badges" }, statusBadge(incident.status), ackBadge(incident))));
  row.dataset.version = JSON.stringify(incident);
  return row;
}

/**
 * Make `tbody` show `incidents` in order, reusing the rows whose incident did not change. Returns the ids
 * that were not shown before (new incidents).
 */
export function syncRows(tbody, incidents, emptyText, now = new Date()) {
  const existing = new Map([...tbody.querySelectorAll("tr[data-id]")].map((r) => [r.dataset.id, r]));
  const fresh = [];
  const rows = incidents.map((incident) => {
    const old = existing.get(incident.id);
    if (!old) fresh.push(incident.id);
    if (old && old.dataset.version === JSON.stringify(incident) && !old.contains(document.activeElement)) {
      refreshTimes(old, incident, now);
      return old;
    }
    if (old && old.contains(document.activeElement)) {
      refreshTimes(old, incident, now); // keep the focused row; its text updates on the next change
      return old;
    }
    return incidentRow(incident, now);
  });
  if (!rows.length) {
    tbody.replaceChildren(h("tr", { class: "empty" }, h("td", { colspan: INCIDENT_COLUMNS.length }, emptyText)));
    return fresh;
  }
  // Move rows into place without detaching the focused one (replaceChildren would blur it).
  tbody.querySelectorAll("tr.empty").forEach((r) => r.remove());
  rows.forEach((row, index) => {
    if (tbody.children[index] !== row) tbody.insertBefore(row, tbody.children[index] || null);
  });
  while (tbody.children.length > rows.length) tbody.lastElementChild.remove();
  return fresh;
}

function refreshTimes(row, incident, now) {
  const rel = row.querySelector(".when .rel");
  if (rel) rel.replaceWith(when(incident.opened_at, now).querySelector(".rel"));
}
