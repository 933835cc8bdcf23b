// Building the DOM from data: elements and text nodes only, never an HTML string (the page's
// content-security policy enforces Trusted Types with no policy, so markup parsing would be refused).

const SVG_NS = "http://www.w3.org/2000/svg";

function apply(el, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "value" && "value" in el) {
      if (el instanceof HTMLInputElement) el.setAttribute("value", value); // the default a form reset restores
      el.value = value;
    } else if (name === "checked" || name === "selected") {
      el.setAttribute(name, ""); // the default (defaultChecked / defaultSelected) as well as the state
      el[name] = true;
    }
    else el.setAttribute(name, value === true ? "" : String(value));
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** h("a", {href: "/x", class: "c"}, "text", otherNode) */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

/** The same for SVG elements. */
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

export function byId(id) {
  return document.getElementById(id);
}

/** A status line under a form or a section: polite for progress, assertive for errors. */
export function notice(text, kind = "info") {
  return h("p", { class: ["notice", `notice-${kind}`], role: kind === "error" ? "alert" : "status" }, text);
}

/** Say something to screen-reader users without moving focus. */
export function announce(text) {
  const region = byId("announce");
  if (!region) return;
  region.textContent = "";
  // A fresh text node after clearing makes screen readers read the same sentence twice in a row too.
  window.setTimeout(() => { region.textContent = text; }, 50);
}

/** A table whose rows become labelled cards at phone width (the labels come from the headers). */
export function table({ caption, columns, rows, empty, className }) {
  const head = h("thead", null, h("tr", null, columns.map((c) => h("th", { scope: "col", class: c.className }, c.label))));
  const body = h("tbody");
  if (!rows.length) {
    body.appendChild(h("tr", { class: "empty" }, h("td", { colspan: columns.length }, empty || "Nothing to show.")));
  }
  for (const row of rows) body.appendChild(row);
  return h("table", { class: ["data", className] },
    caption ? h("caption", { class: "visually-hidden" }, caption) : null, head, body);
}

/** A cell that carries its column's label for the narrow layout. */
export function td(label, content, className) {
  return h("td", { "data-label": label, class: className }, content);
}

export function setTitle(text) {
  document.title = text ? `${text} · Driftlock` : "Driftlock";
}
