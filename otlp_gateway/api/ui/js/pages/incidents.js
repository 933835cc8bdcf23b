// The landing page: incidents, open ones first, then the most recently opened; filters live in the URL so
// a link shares the view; the first page refreshes itself every few seconds.

import { api, ApiError, query } from "../api.js";
import { INCIDENT_FILTERS as FILTERS, incidentsPath, incidentsState as readUrl } from "../first.js";
import { announce, h, notice, setTitle, table } from "../dom.js";
import { clock, SEVERITIES, SIGNALS, STATUSES, signalLabel, statusLabel, zoneLabel } from "../format.js";
import { INCIDENT_COLUMNS, syncRows } from "../incident_rows.js";

const RANGES = [["", "any time"], ["1h", "last hour"], ["6h", "last 6 hours"], ["24h", "last 24 hours"],
  ["7d", "last 7 days"], ["30d", "last 30 days"], ["custom", "between…"]];

function writeUrl(state, push) {
  const url = `/${query(Object.fromEntries([...FILTERS, "cursor"].map((n) => [n, state[n]])))}`;
  if (url !== location.pathname + location.search) history[push ? "pushState" : "replaceState"](null, "", url);
}

/** A datetime-local value ("2026-11-01T12:00") from an ISO time, in the reader's zone; and back. */
function toLocalInput(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function fromLocalInput(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? "" : date.toISOString();
}

function select(name, label, options, value) {
  return h("div", { class: "field" },
    h("label", { for: `f-${name}` }, label),
    h("select", { id: `f-${name}`, name }, options.map(([v, text]) => h("option", { value: v, selected: v === value }, text))));
}

function filterForm(state, onChange) {
  const service = h("input", { id: "f-service", name: "service", type: "search", value: state.service, list: "services",
    autocomplete: "off", spellcheck: "false", placeholder: "e.g. checkout" });
  // Suggestions only when someone is about to type: a page load asks for the incidents only (the
  // suggestions are one distinct-services query, /v1/services).
  const suggestions = h("datalist", { id: "services" });
  service.addEventListener("focus", () => fillServices(suggestions), { once: true });
  const since = h("input", { id: "f-since", name: "since", type: "datetime-local", value: toLocalInput(state.since) });
  const until = h("input", { id: "f-until", name: "until", type: "datetime-local", value: toLocalInput(state.until) });
  const custom = h("div", { class: "field custom-range", hidden: state.range !== "custom" },
    h("label", { for: "f-since" }, "From"), since);
  const customEnd = h("div", { class: "field custom-range", hidden: state.range !== "custom" },
    h("label", { for: "f-until" }, "To"), until);
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter incidents" },
    select("status", "Status", [["", "any"], ...STATUSES.map((s) => [s, statusLabel(s)])], state.status),
    h("div", { class: "field" }, h("label", { for: "f-service" }, "Service"), service, suggestions),
    select("signal", "Signal", [["", "any"], ...SIGNALS.map((s) => [s, signalLabel(s)])], state.signal),
    select("severity", "Severity", [["", "any"], ...SEVERITIES.map((s) => [s, s])], state.severity),
    select("range", "Opened", RANGES, state.range),
    custom, customEnd,
    h("div", { class: "actions" },
      h("button", { type: "submit" }, "Apply"),
      h("button", { type: "button", class: "secondary", id: "f-clear" }, "Clear")));
  const collect = () => {
    const data = new FormData(form);
    const next = Object.fromEntries(FILTERS.map((n) => [n, (data.get(n) || "").toString().trim()]));
    next.since = next.range === "custom" ? fromLocalInput(since.value) : "";
    next.until = next.range === "custom" ? fromLocalInput(until.value) : "";
    next.cursor = "";
    return next;
  };
  form.addEventListener("submit", (event) => { event.preventDefault(); onChange(collect()); });
  form.addEventListener("change", (event) => {
    const custom_ = form.querySelector("#f-range").value === "custom";
    form.querySelectorAll(".custom-range").forEach((el) => { el.hidden = !custom_; });
    if (event.target.tagName === "SELECT" && event.target.id !== "f-range") onChange(collect());
    else if (event.target.id === "f-range" && !custom_) onChange(collect());
  });
  form.querySelector("#f-clear").addEventListener("click", () => {
    form.reset();
    onChange(Object.fromEntries([...FILTERS, "cursor"].map((n) => [n, ""])));
  });
  return form;
}

export async function render(app) {
  setTitle("Incidents");
  let state = readUrl();
  const tbody = h("tbody");
  const status = h("p", { class: "count-line", role: "status" }, "Loading…");
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  const problem = h("div");
  const heading = h("h1", null, "Incidents");
  const tableEl = table({ caption: "Incidents, open first, then most recently opened", columns: INCIDENT_COLUMNS, rows: [] });
  tableEl.replaceChild(tbody, tableEl.querySelector("tbody"));
  let form = filterForm(state, apply);
  app.main.append(heading, form, problem, status, tableEl, pager);

  let loading = null;
  async function load({ live = false } = {}) {
    if (loading) loading.abort();
    const controller = new AbortController();
    loading = controller;
    let page;
    try {
      page = await api(incidentsPath(state), { signal: controller.signal });
    } catch (err) {
      if (err.name === "AbortError") return;
      problem.replaceChildren(notice(err instanceof ApiError ? err.explain("load the incidents") : String(err), "error"));
      if (!live) throw err;
      return;
    } finally {
      if (loading === controller) loading = null;
    }
    problem.replaceChildren();
    const filtered = FILTERS.some((n) => state[n]);
    const empty = filtered ? "No incidents match these filters." : "No incidents yet. The gateway is watching; they appear here as they open.";
    const fresh = syncRows(tbody, page.items, empty);
    if (live && fresh.length) {
      for (const id of fresh) tbody.querySelector(`tr[data-id="${CSS.escape(id)}"]`)?.classList.add("fresh");
      announce(`${fresh.length} new incident${fresh.length > 1 ? "s" : ""}`);
    }
    const open = page.items.filter((i) => i.status === "open").length;
    const updated = new Date();
    const shown = `${page.items.length} incident${page.items.length === 1 ? "" : "s"} on this page`;
    status.textContent = `${shown}${open ? `, ${open} open` : ""} · updated ${clock(updated, true)} ${zoneLabel(updated)}; refreshes every ${app.settings.poll_seconds} s`;
    pager.replaceChildren(...[
      state.cursor ? h("a", { href: "#", id: "first-page", class: "button secondary" }, "← First page") : null,
      page.next_cursor ? h("a", { href: "#", id: "next-page", class: "button secondary", dataset: { cursor: page.next_cursor } }, "Next page →") : null,
    ].filter(Boolean));
  }

  function apply(next, push = true) {
    state = next;
    writeUrl(state, push);
    tbody.replaceChildren();
    status.textContent = "Loading…";
    load().catch(() => {});
  }

  pager.addEventListener("click", (event) => {
    const link = event.target.closest("a");
    if (!link) return;
    event.preventDefault();
    apply({ ...state, cursor: link.id === "next-page" ? link.dataset.cursor : "" });
    heading.scrollIntoView();
    tbody.closest("table").focus?.();
  });
  window.addEventListener("popstate", () => {
    state = readUrl();
    const replacement = filterForm(state, apply);
    form.replaceWith(replacement);
    form = replacement;
    tbody.replaceChildren();
    load().catch(() => {});
  });

  await load();
  app.every(app.settings.poll_seconds, () => load({ live: true }));
}

let servicesAsked = null;

/** Suggestions for the service filter: the streams' services (up to 1000), asked for once (a failure only
 * leaves the field without suggestions, and the next focus asks again). */
function fillServices(datalist) {
  servicesAsked ??= api("/v1/services")
    .then((page) => page.items)
    .catch(() => { servicesAsked = null; return []; });
  servicesAsked.then((services) => datalist.replaceChildren(...services.map((s) => h("option", { value: s }))));
}
