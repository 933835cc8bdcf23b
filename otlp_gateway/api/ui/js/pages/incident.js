// One incident: what broke, since when, whether it is still going, why the engine thinks so (the timeline
// against the threshold, the field table), which requests show it (examples with trace links), and the
// actions an operator may take, each confirmed and written to the audit log.

import { api, ApiError, enc, streamPath } from "../api.js";
import { incidentAuditPath, incidentPath } from "../first.js";
import { announce, h, notice, setTitle, table, td } from "../dom.js";
import { absolute, count, duration, pValue, signalLabel, statusLabel, streamName } from "../format.js";
import { timelinePlot } from "../plot.js";
import { ackBadge, confirmAction, maskedText, severityBadge, statusBadge, when } from "../widgets.js";
import { AUDIT_COLUMNS, auditRow } from "./audit.js";

const ACTIONS = [
  { action: "acknowledge", label: "Acknowledge", past: "acknowledged", applies: (i) => i.status === "open" && !i.acknowledged_at,
    text: "Say you are on it: the incident stays open, marked with your name." },
  { action: "resolve", label: "Resolve", past: "resolved", applies: (i) => i.status === "open",
    text: "Close the incident as fixed. The stream's baseline resumes learning from normal windows." },
  { action: "accept", label: "Accept as normal", past: "accepted as normal", applies: (i) => i.status === "open",
    text: "This is the new normal: close the incident and let the baseline adopt the new behaviour." },
  { action: "false-positive", label: "False positive", past: "marked as a false positive", danger: true, applies: (i) => i.status === "open",
    text: "Nothing was wrong: close the incident; its events join the baseline so the same pattern does not raise again." },
];

/** The trace viewer link of an example, from api.ui.trace_url_template; null without one. */
export function traceUrl(template, traceId, spanId) {
  if (!template || !traceId) return null;
  const url = template.replaceAll("{trace_id}", enc(traceId)).replaceAll("{span_id}", enc(spanId || ""));
  return /^https?:\/\//.test(url) ? url : null;
}

function factsList(incident, now) {
  const rows = [
    ["Stream", h("a", { href: `/streams/${streamPath(incident.stream_id)}` }, incident.stream_id)],
    ["Service", `${incident.service} (${signalLabel(incident.signal).toLowerCase()})`],
    ["Opened", when(incident.opened_at, now)],
    ["Last anomalous", when(incident.last_anomalous_at, now)],
    [incident.status === "open" ? "Lasting" : "Lasted", incident.status === "open"
      ? `${duration(incident.duration_seconds)} so far (event time, to its last anomalous window)` : duration(incident.duration_seconds)],
    ["Closed", incident.resolved_at ? when(incident.resolved_at, now) : "still open"],
    ["Anomalous windows", count(incident.anomalous_windows)],
    ["Lowest p-value", pValue(incident.min_p_value)],
  ];
  if (incident.acknowledged_at) rows.push(["Acknowledged", [incident.acknowledged_by, " · ", when(incident.acknowledged_at, now)]]);
  return h("dl", { class: "facts" }, rows.flatMap(([k, v]) => [h("dt", null, k), h("dd", null, v)]));
}

function fieldTable(fields) {
  const rows = (fields || []).map((f) => h("tr", null,
    td("Field", h("code", null, f.field), "wide"),
    td("Before", f.before),
    td("Now", h("strong", null, f.now)),
    td("How unusual", [f.unusual, f.example ? h("div", { class: "example" }, h("span", { class: "muted" }, "e.g. "), maskedText(f.example)) : null], "wide")));
  return table({ caption: "What changed, field by field, most telling first", rows, empty: "The engine gave no field explanation for this incident.",
    columns: ["Field", "Before", "Now", "How unusual"].map((label) => ({ label })) });
}

function evidenceList(evidence, template) {
  if (!evidence || !evidence.length) return h("p", { class: "muted" }, "No example events were kept for this incident.");
  return h("ul", { class: "evidence" }, evidence.map((e) => {
    const link = traceUrl(template, e.trace_id, e.span_id);
    const time = e.time_unix_nano ? absolute(new Date(Number(BigInt(e.time_unix_nano) / 1000000n))) : null;
    return h("li", null,
      h("p", { class: "text" }, e.text ? maskedText(e.text) : h("span", { class: "muted" }, "(no text kept)")),
      h("div", { class: "meta" },
        time ? h("span", null, time) : null,
        e.trace_id ? h("span", null, "trace ", h("code", null, e.trace_id)) : null,
        e.span_id ? h("span", null, "span ", h("code", null, e.span_id)) : null,
        link ? h("a", { href: link, target: "_blank", rel: "noopener noreferrer" }, "Open trace", h("span", { class: "visually-hidden" }, ` ${e.trace_id} in the trace viewer (new tab)`)) : null));
  }));
}

function actionBar(incident, app, onAct) {
  if (!app.can("incidents.act")) {
    return h("p", { class: "hint" }, app.me ? `Your role (${app.me.role}) may look but not act on incidents.` : "");
  }
  const available = ACTIONS.filter((a) => a.applies(incident));
  if (!available.length) return h("p", { class: "hint" }, `This incident is ${statusLabel(incident.status).toLowerCase()}; no action applies.`);
  return h("div", { class: "toolbar", role: "group", "aria-label": "Actions" },
    available.map((a) => h("button", { type: "button", class: a.danger ? "danger" : a.action === "acknowledge" ? "" : "secondary",
      dataset: { action: a.action }, onclick: () => onAct(a) }, a.label)));
}

async function auditTrail(incident) {
  const page = await api(incidentAuditPath(incident.id));
  return table({ caption: "Changes to this incident", columns: AUDIT_COLUMNS, rows: page.items.map(auditRow),
    empty: "No one has acted on this incident yet." });
}

export async function render(app, incidentId) {
  let incident;
  try {
    incident = await api(incidentPath(incidentId));
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      setTitle("Incident not found");
      app.main.append(h("h1", null, "Incident not found"), notice(err.message, "error"), h("a", { href: "/" }, "All incidents"));
      return;
    }
    throw err;
  }
  const heading = h("h1", { tabindex: "-1" });
  const badges = h("div", { class: "badges" });
  const lead = h("p", { class: "lead" });
  const factsSlot = h("div");
  const actionsSlot = h("div");
  const message = h("div", { "aria-live": "polite" });
  const plotSlot = h("div");
  const auditSlot = h("div", { class: "lazy-layout" });

  function paint(now = new Date()) {
    const name = streamName(incident.stream_id, incident.signal, incident.service);
    setTitle(`${statusLabel(incident.status)}: ${incident.service} ${name}`);
    heading.textContent = `${incident.service} · ${name}`;
    badges.replaceChildren(...[severityBadge(incident.severity), statusBadge(incident.status), ackBadge(incident)].filter(Boolean));
    lead.textContent = incident.summary || "";
    factsSlot.replaceChildren(factsList(incident, now));
    if (!actionsSlot.contains(document.activeElement)) actionsSlot.replaceChildren(actionBar(incident, app, act));
  }

  async function act(action) {
    const { ok, note } = await confirmAction({ title: `${action.label}?`, text: action.text, confirmLabel: action.label,
      danger: Boolean(action.danger), withNote: true });
    if (!ok) return;
    message.replaceChildren();
    try {
      const updated = await api(`/v1/incidents/${enc(incident.id)}/${action.action}`, { method: "POST", body: note ? { note } : {} });
      incident = { ...incident, ...updated };
      actionsSlot.replaceChildren();
      paint();
      message.replaceChildren(notice(`Incident ${action.past}. The change is in the audit log.`, "ok"));
      announce(`Incident ${action.past}.`);
      heading.focus();
      showAudit();
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      const text = err.status === 409 ? `${action.label} does not apply any more: ${err.message}` : err.explain(action.label.toLowerCase());
      message.replaceChildren(notice(text, "error"));
      await refresh();
    }
  }

  async function showAudit() {
    try {
      auditSlot.replaceChildren(h("h2", { id: "audit-title" }, "Audit trail"), await auditTrail(incident));
    } catch (err) {
      auditSlot.replaceChildren(notice(err instanceof ApiError ? err.explain("read the audit trail") : String(err), "error"));
    }
  }

  async function refresh() {
    try {
      const fresh = await api(incidentPath(incident.id));
      const changed = JSON.stringify({ ...fresh, series: null }) !== JSON.stringify({ ...incident, series: null });
      incident = fresh;
      paint();
      if (changed) drawPlot();
    } catch {
      // the next tick tries again
    }
  }

  function drawPlot() {
    const series = incident.series || { points: [] };
    plotSlot.replaceChildren(timelinePlot(series, {
      label: `Scores of ${incident.stream_id} around the incident`,
      spanStart: incident.opened_at, spanEnd: incident.resolved_at || incident.last_anomalous_at,
      changePoint: incident.change_point,
    }));
  }

  paint();
  drawPlot();
  app.main.append(
    h("p", { class: "muted" }, h("a", { href: "/" }, "Incidents"), " / ", h("code", null, incident.id)),
    heading, badges, lead, message, actionsSlot, factsSlot,
    h("section", { "aria-labelledby": "timeline-title" },
      h("h2", { id: "timeline-title" }, "Timeline"),
      h("p", { class: "hint" }, "Each point is a 10 s bucket's most unusual window: higher is more unusual; above the dashed line a window counts as anomalous."),
      plotSlot),
    h("section", { class: "lazy-layout", "aria-labelledby": "fields-title" }, h("h2", { id: "fields-title" }, "Why: what changed"), fieldTable(incident.fields)),
    h("section", { class: "lazy-layout", "aria-labelledby": "evidence-title" },
      h("h2", { id: "evidence-title" }, "Examples"),
      h("p", { class: "hint" }, "Real events the incident blames. Highlighted parts were masked before scoring (numbers, ids, addresses)."),
      evidenceList(incident.evidence, app.settings.trace_url_template)),
    auditSlot);
  await showAudit();
  app.every(app.settings.poll_seconds, () => { if (incident.status === "open") refresh(); else paint(); });
}
