// Driftlock UI: reads /v1 with the key kept in sessionStorage. Data is inserted with textContent only.
"use strict";

const KEY_SLOT = "driftlock.apiKey";
const REFRESH_MS = 10000;

function apiKey() { return sessionStorage.getItem(KEY_SLOT) || ""; }

function say(text, isError) {
  const el = document.getElementById("message");
  el.textContent = text;
  el.className = isError ? "error" : "";
}

async function getJson(path) {
  // Without a key the request goes out bare: a gateway run with api.auth_required=false answers it.
  const headers = apiKey() ? { "Authorization": "Bearer " + apiKey() } : {};
  const response = await fetch(path, { headers });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const err = new Error(body.detail || ("HTTP " + response.status));
    err.status = response.status;
    throw err;
  }
  return body;
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function fill(tableId, items, render, emptyText) {
  const body = document.querySelector("#" + tableId + " tbody");
  body.replaceChildren();
  if (!items.length) {
    const row = body.insertRow();
    const td = cell(row, emptyText, "empty");
    td.colSpan = document.querySelectorAll("#" + tableId + " th").length;
    return;
  }
  for (const item of items) render(body.insertRow(), item);
}

function renderAnomaly(row, a) {
  cell(row, new Date(a.detected_at).toLocaleString());
  cell(row, a.severity, "sev sev-" + a.severity);
  cell(row, a.stream_id, "mono");
  cell(row, a.status);
  cell(row, a.summary);
}

function renderStream(row, s) {
  cell(row, s.stream_id, "mono");
  cell(row, s.signal);
  cell(row, s.service);
  cell(row, s.state, "state state-" + s.state);
  cell(row, s.profile + (s.settings && s.settings.enabled === false ? " (disabled)" : ""));
  cell(row, s.events_seen);
}

async function refreshHealth() {
  const pill = document.getElementById("health");
  try {
    const response = await fetch("/readyz");
    const body = await response.json();
    pill.textContent = body.status === "ready" ? "ready" : "not ready (" + body.phase + ")";
    pill.className = "pill " + (body.status === "ready" ? "ok" : "bad");
  } catch (e) {
    pill.textContent = "unreachable";
    pill.className = "pill bad";
  }
}

async function refresh() {
  refreshHealth();
  try {
    const [anomalies, streams] = await Promise.all([
      getJson("/v1/anomalies?limit=50"), getJson("/v1/streams")]);
    fill("anomalies", anomalies.items, renderAnomaly, "No anomalies yet.");
    fill("streams", streams.items, renderStream, "No streams yet.");
    say("Updated " + new Date().toLocaleTimeString() + ".", false);
  } catch (e) {
    if (e.status === 401 && !apiKey()) {
      say("Enter an API key (read or admin) to see anomalies and streams.", false);
    } else {
      say(e.status === 401 ? "The key was refused: " + e.message : "Could not load: " + e.message, true);
    }
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = document.getElementById("api-key");
    sessionStorage.setItem(KEY_SLOT, input.value.trim());
    input.value = "";
    refresh();
  });
  document.getElementById("forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_SLOT);
    refresh();
  });
  refresh();
  setInterval(refresh, REFRESH_MS);
});
