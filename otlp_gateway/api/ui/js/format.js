// Times, durations and numbers as an engineer reads them at night: absolute times always with their time
// zone (the reader's own or UTC, chosen in the footer), relative times beside them.

const TZ_SLOT = "driftlock.timezone";

export function timeZone() {
  const chosen = localStorage.getItem(TZ_SLOT);
  return chosen === "UTC" ? "UTC" : undefined; // undefined: the browser's own zone
}

export function setTimeZone(value) {
  if (value === "UTC") localStorage.setItem(TZ_SLOT, "UTC");
  else localStorage.removeItem(TZ_SLOT);
}

const formatters = new Map();

export function localZoneName() {
  // the local formatter the times use (no second DateTimeFormat to build): the browser's own zone
  return formatter(undefined).resolvedOptions().timeZone || "local";
}

function formatter(zone) {
  const key = zone || "local";
  if (!formatters.has(key)) {
    formatters.set(key, new Intl.DateTimeFormat("en-US", {
      timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
      minute: "2-digit", second: "2-digit", hourCycle: "h23", timeZoneName: "short",
    }));
  }
  return formatters.get(key);
}

/** "2026-11-01 13:00:05 GMT+1" (or "… UTC"): sortable, unambiguous. */
export function absolute(value) {
  if (!value) return "—";
  const date = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  const parts = Object.fromEntries(formatter(timeZone()).formatToParts(date).map((p) => [p.type, p.value]));
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second} ${parts.timeZoneName}`;
}

/** Hours and minutes only, for plot axes. */
export function clock(date, withSeconds = false) {
  const parts = Object.fromEntries(formatter(timeZone()).formatToParts(date).map((p) => [p.type, p.value]));
  return withSeconds ? `${parts.hour}:${parts.minute}:${parts.second}` : `${parts.hour}:${parts.minute}`;
}

export function zoneLabel(date = new Date()) {
  const parts = formatter(timeZone()).formatToParts(date);
  const zone = parts.find((p) => p.type === "timeZoneName");
  return zone ? zone.value : "";
}

const relative = new Intl.RelativeTimeFormat("en", { numeric: "auto" });
const STEPS = [["second", 60], ["minute", 60], ["hour", 24], ["day", 30], ["month", 12], ["year", Infinity]];

/** "3 minutes ago", "yesterday" (from `now`, a Date). */
export function ago(value, now = new Date()) {
  if (!value) return "";
  let delta = (new Date(value).getTime() - now.getTime()) / 1000;
  for (const [unit, size] of STEPS) {
    if (Math.abs(delta) < size) return relative.format(Math.round(delta), unit);
    delta /= size;
  }
  return "";
}

/** "45 s", "12 min", "2 h 5 min", "3 d 4 h". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 && m < 10 ? `${m} min ${s % 60} s` : `${m} min`;
  const hours = Math.floor(m / 60);
  if (hours < 24) return m % 60 ? `${hours} h ${m % 60} min` : `${hours} h`;
  const days = Math.floor(hours / 24);
  return hours % 24 ? `${days} d ${hours % 24} h` : `${days} d`;
}

/** p-values span many decades: "0.03", "4.1e-7", "< 1e-300". */
export function pValue(p) {
  if (p === null || p === undefined || !Number.isFinite(p)) return "—";
  if (p === 0) return "< 1e-300";
  if (p >= 0.001) return p.toPrecision(2).replace(/\.?0+$/, "");
  return p.toExponential(1);
}

export function count(n) {
  return n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US");
}

export const SEVERITIES = ["critical", "high", "medium", "low"];
export const STATUSES = ["open", "resolved", "accepted", "false_positive"];
export const SIGNALS = ["traces", "logs", "metrics"];

export function statusLabel(status) {
  return { open: "Open", resolved: "Resolved", accepted: "Accepted as normal", false_positive: "False positive" }[status] || status;
}

export function signalLabel(signal) {
  return { traces: "Traces", logs: "Logs", metrics: "Metrics" }[signal] || signal;
}

/** The part of a stream id after "signal/service/". */
export function streamName(streamId, signal, service) {
  const prefix = `${signal}/${service}/`;
  return streamId.startsWith(prefix) ? streamId.slice(prefix.length) : streamId;
}
