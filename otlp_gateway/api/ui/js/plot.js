// The timeline plot, drawn as SVG here rather than with a charting library: one line, one threshold, a
// shaded span, a marker and some dots need ~200 lines, no dependency to vendor and audit, and nothing that
// conflicts with the strict content-security policy (no inline styles, no eval). The y axis is the
// window's surprise, -log10(p): higher is more unusual; the threshold is the profile's p bar.

import { h, svg } from "./dom.js";
import { absolute, clock, pValue, zoneLabel } from "./format.js";

const MARGIN = { top: 18, right: 14, bottom: 40, left: 46 };
const TICK_STEPS_S = [10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];
const MAX_SURPRISE = 300;

export function surprise(p) {
  if (p === null || p === undefined || !Number.isFinite(p)) return null;
  if (p <= 0) return MAX_SURPRISE;
  return Math.min(MAX_SURPRISE, -Math.log10(p));
}

function niceStep(range, target) {
  const raw = range / Math.max(1, target);
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * magnitude >= raw) return m * magnitude;
  return 10 * magnitude;
}

function timeTicks(t0, t1, width) {
  const target = Math.max(2, Math.floor(width / 95));
  const span = (t1 - t0) / 1000;
  const step = TICK_STEPS_S.find((s) => span / s <= target) || TICK_STEPS_S[TICK_STEPS_S.length - 1];
  const ticks = [];
  const stepMs = step * 1000;
  for (let t = Math.ceil(t0 / stepMs) * stepMs; t <= t1; t += stepMs) ticks.push(t);
  return { ticks, withSeconds: step < 60 };
}

/**
 * A plot of `series` ({bucket_seconds, threshold_p, points: [{t, min_p, windows, anomalous}]}).
 * options: {label, spanStart, spanEnd, changePoint} (ISO strings or null).
 * Returns a figure that redraws itself when its width changes.
 */
export function timelinePlot(series, options = {}) {
  const points = (series.points || []).map((p) => ({
    t: new Date(p.t).getTime(), y: surprise(p.min_p), p: p.min_p, windows: p.windows, anomalous: p.anomalous,
  })).filter((p) => Number.isFinite(p.t)).sort((a, b) => a.t - b.t);
  const thresholdY = surprise(series.threshold_p);
  const bucketMs = (series.bucket_seconds || 10) * 1000;
  const holder = h("div", { class: "plot" });
  const figure = h("figure", { class: "plot-figure" }, holder, legend(options), dataTable(points, series, options));
  if (!points.length) {
    holder.append(h("p", { class: "muted" }, "No scored windows in this period yet."));
    return figure;
  }
  let drawnWidth = 0;
  const draw = () => {
    const width = Math.max(280, Math.round(holder.clientWidth || 800));
    if (width === drawnWidth) return;
    drawnWidth = width;
    holder.replaceChildren(render(points, thresholdY, bucketMs, options, width));
  };
  new ResizeObserver(() => window.requestAnimationFrame(draw)).observe(holder);
  window.requestAnimationFrame(draw);
  return figure;
}

function render(points, thresholdY, bucketMs, options, width) {
  const height = width < 560 ? 210 : 260;
  const innerW = width - MARGIN.left - MARGIN.right;
  const innerH = height - MARGIN.top - MARGIN.bottom;
  const spanStart = options.spanStart ? new Date(options.spanStart).getTime() : null;
  const spanEnd = options.spanEnd ? new Date(options.spanEnd).getTime() : null;
  const change = options.changePoint ? new Date(options.changePoint).getTime() : null;
  let t0 = points[0].t;
  let t1 = points[points.length - 1].t + bucketMs;
  for (const t of [spanStart, spanEnd, change]) {
    if (t !== null && Number.isFinite(t)) { t0 = Math.min(t0, t); t1 = Math.max(t1, t); }
  }
  if (t1 <= t0) t1 = t0 + bucketMs;
  const ys = points.map((p) => p.y).filter((y) => y !== null);
  const yMax = Math.max(3, (thresholdY || 0) * 1.3, ...ys.map((y) => y * 1.08));
  const x = (t) => MARGIN.left + ((t - t0) / (t1 - t0)) * innerW;
  const y = (v) => MARGIN.top + innerH - (v / yMax) * innerH;

  const title = options.label || "Surprise of each 10 s bucket's most unusual window";
  const description = describe(points, thresholdY, options);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-labelledby": "plot-title plot-desc" },
    svg("title", { id: "plot-title" }, title), svg("desc", { id: "plot-desc" }, description));

  if (spanStart !== null) {
    const end = spanEnd !== null ? spanEnd : t1;
    root.append(svg("rect", { class: "span", x: x(spanStart), y: MARGIN.top, width: Math.max(2, x(end) - x(spanStart)), height: innerH }));
  }
  // the grid lines, the ticks and the small dots are one path each: fewer elements for a cold renderer's
  // first layout and paint (only the text and the anomalous buckets stay elements of their own)
  let gridPath = "";
  const yAxis = svg("g", { class: "axis" });
  const step = niceStep(yMax, innerH / 45);
  for (let v = 0; v <= yMax + 1e-9; v += step) {
    gridPath += `M${MARGIN.left},${y(v).toFixed(1)}H${width - MARGIN.right}`;
    yAxis.append(svg("text", { x: MARGIN.left - 6, y: y(v) + 4, "text-anchor": "end" }, String(Math.round(v * 10) / 10)));
  }
  yAxis.append(svg("text", { x: 12, y: MARGIN.top + innerH / 2, transform: `rotate(-90 12 ${MARGIN.top + innerH / 2})`, "text-anchor": "middle" },
    "−log₁₀ p"));
  const xAxis = svg("g", { class: "axis" });
  const { ticks, withSeconds } = timeTicks(t0, t1, innerW);
  let tickPath = "";
  for (const t of ticks) {
    tickPath += `M${x(t).toFixed(1)},${MARGIN.top + innerH}v5`;
    xAxis.append(svg("text", { x: x(t), y: MARGIN.top + innerH + 18, "text-anchor": "middle" }, clock(new Date(t), withSeconds)));
  }
  xAxis.append(svg("text", { x: width - MARGIN.right, y: height - 4, "text-anchor": "end" }, `time (${zoneLabel(new Date(t0))})`));
  xAxis.append(svg("path", { d: `M${MARGIN.left},${MARGIN.top + innerH}H${width - MARGIN.right}${tickPath}` }));
  root.append(svg("path", { class: "grid", d: gridPath }), yAxis, xAxis);

  // the series: one path, broken where a bucket had no scored window
  let d = "";
  let previous = null;
  for (const p of points) {
    if (p.y === null) { previous = null; continue; }
    const mid = p.t + bucketMs / 2;
    const gap = previous !== null && p.t - previous > bucketMs * 1.5;
    d += `${previous === null || gap ? "M" : "L"}${x(mid).toFixed(1)},${y(p.y).toFixed(1)}`;
    previous = p.t;
  }
  root.append(svg("path", { class: "series", d }));
  let dots = "";
  for (const p of points) {
    if (p.y === null) continue;
    const mid = x(p.t + bucketMs / 2);
    if (p.anomalous > 0) root.append(svg("circle", { class: "anomalous", cx: mid, cy: y(p.y), r: 4 }));
    else if (points.length <= 60) dots += `M${(mid - 2).toFixed(1)},${y(p.y).toFixed(1)}a2,2 0 1,0 4,0a2,2 0 1,0 -4,0`;
  }
  if (dots) root.append(svg("path", { class: "point", d: dots }));
  if (thresholdY !== null) {
    root.append(svg("line", { class: "threshold", x1: MARGIN.left, x2: width - MARGIN.right, y1: y(thresholdY), y2: y(thresholdY) }));
    root.append(svg("text", { class: "threshold-label", x: width - MARGIN.right - 4, y: y(thresholdY) - 5, "text-anchor": "end" },
      `threshold p = ${pValue(10 ** -thresholdY)}`));
  }
  if (change !== null) {
    root.append(svg("line", { class: "change", x1: x(change), x2: x(change), y1: MARGIN.top - 4, y2: MARGIN.top + innerH }));
    const anchor = x(change) > width - 120 ? "end" : "start";
    root.append(svg("text", { class: "change-label", x: x(change) + (anchor === "start" ? 5 : -5), y: MARGIN.top + 8, "text-anchor": anchor },
      "change point"));
  }
  return root;
}

function describe(points, thresholdY, options) {
  const above = points.filter((p) => p.y !== null && thresholdY !== null && p.y >= thresholdY).length;
  const anomalous = points.filter((p) => p.anomalous > 0).length;
  const parts = [`${points.length} buckets from ${absolute(new Date(points[0].t))} to ${absolute(new Date(points[points.length - 1].t))}`,
    `${anomalous} with anomalous windows`, `${above} above the threshold`];
  if (options.changePoint) parts.push(`change point at ${absolute(options.changePoint)}`);
  if (options.spanStart) parts.push(`incident from ${absolute(options.spanStart)} to ${options.spanEnd ? absolute(options.spanEnd) : "now"}`);
  return `${parts.join("; ")}.`;
}

function legend(options) {
  const item = (cls, text) => h("li", null, h("span", { class: ["key", cls], "aria-hidden": "true" }), text);
  return h("ul", { class: "legend", "aria-label": "Legend" },
    item("key-series", "surprise (−log₁₀ of the bucket's lowest p-value)"),
    item("key-threshold", "threshold"),
    item("key-anomalous", "bucket with anomalous windows"),
    options.spanStart ? item("key-span", "incident") : null,
    options.changePoint ? item("key-change", "change point") : null);
}

/**
 * The plotted data as a table, in a closed <details>: its rows (hundreds, each with a formatted time) are
 * built when it is first opened, not while the page renders (on a cold load they cost more than the plot).
 */
function dataTable(points, series, options) {
  const body = h("tbody");
  const details = h("details", { class: "plot-data" },
    h("summary", null, `The plotted data as a table (${points.length} buckets of ${series.bucket_seconds || 10} s)`),
    h("table", { class: "data" },
      h("thead", null, h("tr", null, ["Bucket start", "Lowest p", "Windows", "Anomalous"].map((t) => h("th", { scope: "col" }, t)))),
      body),
    options.changePoint ? h("p", null, `Change point: ${absolute(options.changePoint)}`) : null);
  const fill = () => {
    if (!details.open || body.firstChild) return;
    body.append(...points.map((p) => h("tr", null,
      h("td", null, absolute(new Date(p.t))), h("td", { class: "num" }, pValue(p.p)),
      h("td", { class: "num" }, String(p.windows ?? "")), h("td", { class: "num" }, String(p.anomalous ?? "")))));
  };
  details.addEventListener("toggle", fill);
  return details;
}
