// Every stream the gateway scores, in id order, with its state; a link to each stream's page.

import { api, ApiError, query, streamPath } from "../api.js";
import { h, notice, setTitle, table, td } from "../dom.js";
import { count, signalLabel } from "../format.js";
import { when } from "../widgets.js";

const PAGE_SIZE = 100;
const STATES = ["warming", "active", "drifted", "evicted"];

export function stateBadge(stream) {
  const text = stream.state === "warming" && stream.warmup
    ? `warming ${count(stream.warmup.events)}/${count(stream.warmup.needed)}` : stream.state;
  return h("span", { class: ["badge", `state-${stream.state}`] }, text);
}

export async function render(app) {
  setTitle("Streams");
  const params = new URLSearchParams(location.search);
  const state = params.get("state") || "";
  const cursor = params.get("cursor") || "";
  const stateSelect = h("select", { id: "s-state", name: "state" },
    h("option", { value: "" }, "any"), STATES.map((s) => h("option", { value: s, selected: s === state }, s)));
  const form = h("form", { class: "filters", method: "get", action: "/streams", role: "search", "aria-label": "Filter streams" },
    h("div", { class: "field" }, h("label", { for: "s-state" }, "State"), stateSelect),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Apply")));
  stateSelect.addEventListener("change", () => form.requestSubmit());
  app.main.append(h("h1", null, "Streams"), form);
  let page;
  try {
    page = await api(`/v1/streams${query({ state, limit: PAGE_SIZE, cursor })}`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 400) {
      app.main.append(notice(err.explain("list the streams"), "error"), h("a", { href: "/streams" }, "Start from the first page"));
      return;
    }
    throw err;
  }
  const rows = page.items.map((s) => h("tr", null,
    td("Stream", h("a", { href: `/streams/${streamPath(s.stream_id)}`, class: "mono" }, s.stream_id), "wide"),
    td("Signal", signalLabel(s.signal)),
    td("Service", s.service),
    td("State", [stateBadge(s), s.open_incident_id ? [" ", h("a", { href: `/incidents/${encodeURIComponent(s.open_incident_id)}` }, "open incident")] : null]),
    td("Profile", s.settings && s.settings.enabled === false ? `${s.profile} (scoring paused)` : s.profile),
    td("Events", count(s.events_seen), "num"),
    td("Updated", when(s.updated_at), "wide")));
  app.main.append(table({ caption: "Streams", rows, empty: state ? `No ${state} streams.` : "No streams yet: send telemetry to the gateway.",
    columns: [{ label: "Stream" }, { label: "Signal" }, { label: "Service" }, { label: "State" }, { label: "Profile" },
      { label: "Events", className: "num" }, { label: "Updated" }] }));
  app.main.append(h("nav", { class: "pager", "aria-label": "Pages" },
    cursor ? h("a", { class: "button secondary", href: `/streams${query({ state })}` }, "← First page") : null,
    page.next_cursor ? h("a", { class: "button secondary", href: `/streams${query({ state, cursor: page.next_cursor })}` }, "Next page →") : null));
}
