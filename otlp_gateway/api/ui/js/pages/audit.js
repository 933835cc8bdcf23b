// The audit log (admin): who changed what, when, with the before/after of each change.

import { api, ApiError, query } from "../api.js";
import { h, notice, setTitle, table, td } from "../dom.js";
import { when } from "../widgets.js";

const PAGE_SIZE = 100;

/** The keys whose value differs between before and after, as "key: old → new" lines. */
export function changes(before, after) {
  const keys = [...new Set([...Object.keys(before || {}), ...Object.keys(after || {})])];
  const show = (v) => (v === undefined ? "—" : JSON.stringify(v));
  return keys.filter((k) => JSON.stringify((before || {})[k]) !== JSON.stringify((after || {})[k]))
    .map((k) => `${k}: ${show((before || {})[k])} → ${show((after || {})[k])}`);
}

export function auditRow(entry) {
  const diff = changes(entry.before, entry.after);
  return h("tr", { dataset: { id: entry.id ?? "" } },
    td("When", when(entry.at), "wide"),
    td("Who", h("code", null, entry.actor)),
    td("Action", h("strong", null, entry.action)),
    td("Target", h("code", null, entry.target), "wide"),
    td("Change", [
      diff.length ? h("ul", { class: "plain-list" }, diff.slice(0, 6).map((line) => h("li", null, line))) : h("span", { class: "muted" }, "—"),
      h("details", null, h("summary", null, "Before and after"),
        h("pre", { class: "json" }, `before: ${JSON.stringify(entry.before, null, 2)}\nafter: ${JSON.stringify(entry.after, null, 2)}`)),
    ], "wide"));
}

export const AUDIT_COLUMNS = ["When", "Who", "Action", "Target", "Change"].map((label) => ({ label }));

export async function render(app) {
  setTitle("Audit log");
  app.main.append(h("h1", null, "Audit log"));
  if (!app.can("audit.read")) {
    app.main.append(notice(`Reading the audit log needs an admin key or token; you are signed in as ${app.me ? `${app.me.actor} (${app.me.role})` : "nobody"}.`, "error"));
    return;
  }
  const params = new URLSearchParams(location.search);
  const actor = h("input", { id: "a-actor", name: "actor", type: "search", value: params.get("actor") || "", placeholder: "key:<id>, jwt:<sub>, cli",
    spellcheck: "false", autocomplete: "off" });
  const target = h("input", { id: "a-target", name: "target", type: "search", value: params.get("target") || "",
    placeholder: "e.g. incident:inc_…", spellcheck: "false", autocomplete: "off", "aria-describedby": "a-target-hint" });
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter the audit log" },
    h("div", { class: "field" }, h("label", { for: "a-actor" }, "Who"), actor),
    h("div", { class: "field" }, h("label", { for: "a-target" }, "Target contains"), target,
      h("span", { id: "a-target-hint", class: "hint" }, "filters the loaded pages")),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Apply")));
  const tbody = h("tbody");
  const tableEl = table({ caption: "Audit entries, newest first", columns: AUDIT_COLUMNS, rows: [] });
  tableEl.replaceChild(tbody, tableEl.querySelector("tbody"));
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Load older entries");
  const problem = h("div");
  app.main.append(form, problem, tableEl, h("div", { class: "pager" }, more));

  let cursor = null;
  async function load(reset) {
    if (reset) { tbody.replaceChildren(); cursor = null; }
    let page;
    try {
      page = await api(`/v1/audit${query({ actor: actor.value.trim(), limit: PAGE_SIZE, cursor })}`);
    } catch (err) {
      problem.replaceChildren(notice(err instanceof ApiError ? err.explain("read the audit log") : String(err), "error"));
      return;
    }
    problem.replaceChildren();
    const needle = target.value.trim();
    const items = page.items.filter((e) => !needle || e.target.includes(needle));
    tbody.querySelectorAll("tr.empty").forEach((row) => row.remove());
    tbody.append(...items.map(auditRow));
    if (!tbody.children.length) tbody.append(h("tr", { class: "empty" }, h("td", { colspan: AUDIT_COLUMNS.length }, "No audit entries match.")));
    cursor = page.next_cursor;
    more.hidden = !cursor;
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    history.replaceState(null, "", `/admin/audit${query({ actor: actor.value.trim(), target: target.value.trim() })}`);
    load(true);
  });
  more.addEventListener("click", () => load(false));
  await load(true);
}
