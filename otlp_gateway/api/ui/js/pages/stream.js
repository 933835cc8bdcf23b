// One stream: its live state (warming with progress, active, drifted, evicted), its recent score plot with
// anomalous buckets marked, its profile and settings (editable by admins, errors next to the field), and
// its incidents.

import { api, ApiError, enc, streamPath } from "../api.js";
import { announce, h, notice, setTitle, table } from "../dom.js";
import { count, pValue, signalLabel, streamName } from "../format.js";
import { INCIDENT_COLUMNS, syncRows } from "../incident_rows.js";
import { timelinePlot } from "../plot.js";
import { when } from "../widgets.js";
import { stateBadge } from "./streams.js";
import { pageStartedAt, RECENT_SCORES_SECONDS, streamApiPath, streamIncidentsPath, streamScoresPath } from "../first.js";

const NUMBER_FIELDS = [
  ["baseline", "Baseline (events)", "Events of the reference each window is compared with.", { min: 1, max: 1000000, step: 1 }],
  ["window", "Window (events)", "Events per scored window.", { min: 1, max: 1000000, step: 1 }],
  ["hop", "Hop (events)", "Events between two scored windows.", { min: 1, max: 1000000, step: 1 }],
  ["false_alarm_target", "False-alarm target", "Probability that a window of normal data is flagged, in (0, 1).", { min: 0, max: 1, step: "any" }],
];
const FIELD_NAMES = ["profile", ...NUMBER_FIELDS.map(([name]) => name), "enabled"];
const PROFILES = ["sensitive", "balanced", "strict"];
const SCORE_RANGES = [[String(RECENT_SCORES_SECONDS), "the last hour"], ["21600", "the last 6 hours"], ["86400", "the last 24 hours"]];
const AROUND_INCIDENT = "incident";

const STATE_TEXT = {
  warming: "Learning what normal looks like: no window is scored before the baseline is full.",
  active: "Scoring every window against the baseline.",
  drifted: "The stream's normal changed recently; the baseline is adopting it.",
  evicted: "Not in memory (no recent traffic, or the live-stream limit was reached); its state is stored and reloads with its next event.",
};

function liveState(stream) {
  const parts = [stateBadge(stream), " ", h("span", null, STATE_TEXT[stream.state] || "")];
  if (stream.state === "warming" && stream.warmup && stream.warmup.needed > 0) {
    const { events, needed } = stream.warmup;
    parts.push(h("div", { class: "warmup" },
      h("progress", { id: "warmup-progress", max: needed, value: Math.min(events, needed), "aria-label": "Warm-up progress" }), " ",
      h("span", { id: "warmup-text" }, `${count(events)}/${count(needed)} events`)));
  }
  if (stream.settings && stream.settings.enabled === false) parts.push(h("p", { class: "notice notice-info" }, "Scoring is paused for this stream (enabled: false); its events are forwarded unscored."));
  return parts;
}

/** The profile the stream is set to: the API's choice, which a live stream applies with its next events. */
function chosenProfile(stream) {
  return (stream.settings && stream.settings.profile) || stream.profile;
}

function facts(stream) {
  const eff = stream.effective;
  const profile = chosenProfile(stream);
  const pending = profile !== stream.profile
    ? h("span", { class: "muted" }, ` (now running ${stream.profile}; the change applies with the stream's next events)`) : null;
  const rows = [
    ["Stream id", h("code", null, stream.stream_id)],
    ["Signal", signalLabel(stream.signal)],
    ["Service", stream.service],
    ["State", h("div", { id: "live-state" }, liveState(stream))],
    ["Events seen", count(stream.events_seen)],
    ["Profile", [eff ? `${profile}: baseline ${count(eff.baseline)}, window ${count(eff.window)}, hop ${count(eff.hop)}, false-alarm target ${pValue(eff.false_alarm_target)}`
      : `${profile} (its stored settings contradict the configuration)`, pending]],
    ["Updated", when(stream.updated_at)],
  ];
  if ("open_incident_id" in stream) {
    rows.push(["Open incident", stream.open_incident_id
      ? h("a", { href: `/incidents/${enc(stream.open_incident_id)}` }, "yes: see the incident") : "none"]);
  }
  return h("dl", { class: "facts" }, rows.flatMap(([k, v]) => [h("dt", null, k), h("dd", null, v)]));
}

function settingsForm(stream, onSaved) {
  const current = stream.settings || {};
  const eff = stream.effective || {};
  const errors = {};
  const inputs = {};
  const field = (name, label, hint, control) => {
    errors[name] = h("p", { id: `st-${name}-error`, class: "field-error", hidden: true });
    control.setAttribute("aria-describedby", `st-${name}-hint st-${name}-error`);
    inputs[name] = control;
    return h("div", { class: "field" }, h("label", { for: `st-${name}` }, label), control,
      h("span", { id: `st-${name}-hint`, class: "hint" }, hint), errors[name]);
  };
  const chosen = chosenProfile(stream);
  const profile = h("select", { id: "st-profile", name: "profile" }, PROFILES.map((p) => h("option", { value: p, selected: p === chosen }, p)));
  const enabled = h("input", { id: "st-enabled", name: "enabled", type: "checkbox", checked: current.enabled !== false });
  const numbers = NUMBER_FIELDS.map(([name, label, hint, limits]) => field(name, label,
    `${hint} Empty: the configured value${eff[name] !== undefined ? ` (now ${eff[name]})` : ""}.`,
    h("input", { id: `st-${name}`, name, type: "number", inputmode: name === "false_alarm_target" ? "decimal" : "numeric",
      value: current[name] ?? "", placeholder: eff[name] !== undefined ? String(eff[name]) : "", ...limits })));
  const formError = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "panel", "aria-labelledby": "settings-title", novalidate: true },
    h("h2", { id: "settings-title" }, "Profile and settings"),
    h("p", { class: "hint" }, "Changes apply at once, without a restart; a new profile or window size starts a fresh detector (it warms up again)."),
    h("div", { class: "form-grid" },
      field("profile", "Profile", "sensitive, balanced or strict window profile.", profile),
      numbers,
      h("div", { class: "field" },
        h("span", { class: "field inline" }, enabled, h("label", { for: "st-enabled" }, "Score this stream")),
        h("span", { id: "st-enabled-hint", class: "hint" }, "Off: events are forwarded unscored; the detector is kept."),
        errors.enabled = h("p", { id: "st-enabled-error", class: "field-error", hidden: true }))),
    formError,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Save settings")));
  inputs.enabled = enabled;

  const showError = (name, text) => {
    errors[name].textContent = text;
    errors[name].hidden = false;
    inputs[name].setAttribute("aria-invalid", "true");
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    formError.replaceChildren();
    for (const name of FIELD_NAMES) {
      errors[name].hidden = true;
      inputs[name].removeAttribute("aria-invalid");
    }
    const changes = {};
    if (profile.value !== chosen) changes.profile = profile.value;
    for (const [name] of NUMBER_FIELDS) {
      const input = inputs[name];
      const raw = input.value.trim();
      if (raw === "" && input.validity.badInput) { showError(name, "Enter a number."); continue; }
      const value = raw === "" ? null : Number(raw);
      if (value !== null && !input.checkValidity()) {
        showError(name, name === "false_alarm_target" ? "Must be between 0 and 1 (both excluded)." : "Must be a whole number from 1 to 1,000,000.");
        continue;
      }
      if (value === null ? current[name] !== undefined : value !== current[name]) changes[name] = value;
    }
    if (enabled.checked !== (current.enabled !== false)) changes.enabled = enabled.checked;
    const invalid = form.querySelector("[aria-invalid='true']");
    if (invalid) { invalid.focus(); return; }
    if (!Object.keys(changes).length) {
      formError.replaceChildren(notice("Nothing changed.", "info"));
      return;
    }
    try {
      const updated = await api(`/v1/streams/${streamPath(stream.stream_id)}`, { method: "PATCH", body: changes });
      announce("Settings saved.");
      onSaved(updated, "Settings saved. The change is in the audit log.");
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      let placed = false;
      for (const f of err.fields) {
        const name = f.path.replace(/^body\./, "");
        if (errors[name]) { showError(name, f.message); placed = true; }
      }
      if (!placed && err.status === 409) {
        // "body: profile needs 0 < hop <= window <= baseline": next to each changed field it names
        const text = err.message.replace(/^body:\s*/, "");
        const named = Object.keys(changes).filter((name) => new RegExp(`\\b${name}\\b`).test(text));
        for (const name of named.length ? named : Object.keys(changes).filter((n) => errors[n]).slice(0, 1)) {
          showError(name, text);
          placed = true;
        }
      }
      if (!placed) formError.replaceChildren(notice(err.explain("save the settings"), "error"));
      form.querySelector("[aria-invalid='true']")?.focus();
    }
  });
  return form;
}

function readOnlySettings(stream) {
  const current = stream.settings || {};
  const set = Object.entries(current);
  return h("section", { class: "panel", "aria-labelledby": "settings-title" },
    h("h2", { id: "settings-title" }, "Profile and settings"),
    set.length ? h("dl", { class: "facts" }, set.flatMap(([k, v]) => [h("dt", null, k), h("dd", null, String(v))]))
      : h("p", null, "No settings changed through the API: the stream runs with the configuration's profile."),
    h("p", { class: "hint" }, "Changing them needs an admin key or token."));
}

/**
 * Buckets are in event time: "the last hour" is the hour before now. An incident's hour (50 minutes before
 * its last anomalous window to 10 after, as the gateway's fallback=latest_incident answers it) shows a
 * stream whose events carry older timestamps too.
 */
function scoreWindow(choice, latestIncident, now = new Date()) {
  if (choice === AROUND_INCIDENT && latestIncident) {
    const end = new Date(latestIncident.resolved_at || latestIncident.last_anomalous_at);
    return { since: new Date(end - 50 * 60000), until: new Date(end.getTime() + 10 * 60000) };
  }
  const seconds = Number(choice) || RECENT_SCORES_SECONDS;
  return { since: new Date(now - seconds * 1000), until: now };
}

/**
 * `now`: the end of a relative range (the page's start the first time: js/early.js asked for it then);
 * `fallback` "latest_incident": when the range holds no score, the gateway answers the hour of the stream's
 * latest incident instead (in the same round trip; the page's first scores ask so).
 */
async function loadScores(stream, choice, latestIncident, now = new Date(), fallback = undefined) {
  const { since, until } = scoreWindow(choice, latestIncident, now);
  return api(streamScoresPath(stream.stream_id, since, until, fallback));
}

function scoresPlot(stream, series, latestIncident, choice) {
  const around = choice === AROUND_INCIDENT && latestIncident;
  return timelinePlot(series, {
    label: `Scores of ${stream.stream_id}`,
    spanStart: around ? latestIncident.opened_at : null,
    spanEnd: around ? latestIncident.resolved_at || latestIncident.last_anomalous_at : null,
  });
}

export async function render(app, streamId) {
  let stream;
  try {
    stream = await api(streamApiPath(streamId));
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      setTitle("Stream not found");
      app.main.append(h("h1", null, "Stream not found"), notice(err.message, "error"), h("a", { href: "/streams" }, "All streams"));
      return;
    }
    throw err;
  }
  setTitle(streamName(stream.stream_id, stream.signal, stream.service));
  const heading = h("h1", null, streamName(stream.stream_id, stream.signal, stream.service));
  const factsSlot = h("div", null, facts(stream));
  const range = h("select", { id: "score-range" }, SCORE_RANGES.map(([v, t]) => h("option", { value: v }, t)));
  let latestIncident = null;
  const plotSlot = h("div", null, h("p", { class: "loading" }, "Loading scores…"));
  const settingsMessage = h("div", { "aria-live": "polite" });
  const settingsSlot = h("div", { class: "lazy-layout" });
  const incidentsBody = h("tbody");
  const incidentsTable = table({ caption: `Incidents of ${stream.stream_id}`, columns: INCIDENT_COLUMNS, rows: [] });
  incidentsTable.replaceChild(incidentsBody, incidentsTable.querySelector("tbody"));
  const incidentsProblem = h("div");

  const showSettings = () => settingsSlot.replaceChildren(app.can("streams.edit")
    ? settingsForm(stream, (updated, message) => {
      stream = updated;
      factsSlot.replaceChildren(facts(stream));
      settingsMessage.replaceChildren(notice(message, "ok"));
      showSettings();
    })
    : readOnlySettings(stream));
  showSettings();

  app.main.append(
    h("p", { class: "muted" }, h("a", { href: "/streams" }, "Streams"), ` / ${signalLabel(stream.signal)} / ${stream.service}`),
    heading, factsSlot,
    h("section", { "aria-labelledby": "scores-title" },
      h("h2", { id: "scores-title" }, "Recent scores"),
      h("div", { class: "field inline" }, h("label", { for: "score-range" }, "Show"), range),
      plotSlot),
    h("section", { class: "lazy-layout", "aria-labelledby": "incidents-title" },
      h("h2", { id: "incidents-title" }, "Incidents of this stream"), incidentsProblem, incidentsTable),
    settingsMessage, settingsSlot);

  async function drawScores(firstTime = false, incidentsLoading = null) {
    try {
      // the first time, js/early.js already asked for the recent scores, with the stream and its incidents
      const series = firstTime
        ? await loadScores(stream, range.value, latestIncident, pageStartedAt, "latest_incident")
        : await loadScores(stream, range.value, latestIncident);
      if (incidentsLoading) await incidentsLoading;
      // nothing in the last hour of event time: the gateway answered the hour of the latest incident
      if (series.around_incident_id && latestIncident) range.value = AROUND_INCIDENT;
      plotSlot.replaceChildren(scoresPlot(stream, series, latestIncident, range.value));
    } catch (err) {
      plotSlot.replaceChildren(notice(err instanceof ApiError ? err.explain("load the scores") : String(err), "error"));
    }
  }
  range.addEventListener("change", () => drawScores());

  async function loadIncidents() {
    try {
      const page = await api(streamIncidentsPath(stream.stream_id));
      incidentsProblem.replaceChildren();
      syncRows(incidentsBody, page.items, "No incidents on this stream.");
      const latest = page.items.reduce((a, b) => (!a || b.opened_at > a.opened_at ? b : a), null);
      if (latest && !latestIncident) {
        range.append(h("option", { value: AROUND_INCIDENT }, "around the latest incident"));
      }
      latestIncident = latest || latestIncident;
    } catch (err) {
      incidentsProblem.replaceChildren(notice(err instanceof ApiError ? err.explain("load the incidents") : String(err), "error"));
    }
  }

  async function refreshState() {
    try {
      const fresh = await api(streamApiPath(stream.stream_id));
      const changed = fresh.state !== stream.state || JSON.stringify(fresh.warmup) !== JSON.stringify(stream.warmup)
        || fresh.open_incident_id !== stream.open_incident_id || fresh.events_seen !== stream.events_seen;
      const focusInside = factsSlot.contains(document.activeElement);
      if (fresh.state !== stream.state) announce(`Stream is now ${fresh.state}.`);
      stream = { ...fresh, settings: fresh.settings };
      if (changed && !focusInside) factsSlot.replaceChildren(facts(stream));
    } catch {
      // the next tick tries again; a 401 already moved the tab to the sign-in page
    }
  }

  const incidentsLoading = loadIncidents();
  await Promise.all([incidentsLoading, drawScores(true, incidentsLoading)]);
  app.every(app.settings.poll_seconds, () => { refreshState(); loadIncidents(); });
}
