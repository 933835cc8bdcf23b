// Small pieces shared by the pages: badges, times, the confirmation dialog, copy to clipboard, masked text.

import { byId, h } from "./dom.js";
import { absolute, ago, statusLabel } from "./format.js";

export function severityBadge(severity) {
  return h("span", { class: ["badge", `sev-${severity}`] }, severity || "—");
}

export function statusBadge(status) {
  return h("span", { class: ["badge", `status-${status}`] }, statusLabel(status));
}

export function ackBadge(incident) {
  if (!incident.acknowledged_at) return null;
  return h("span", { class: "badge ack", title: `Acknowledged by ${incident.acknowledged_by} at ${absolute(incident.acknowledged_at)}` },
    "Acknowledged");
}

/** Absolute time with its zone, and how long ago, in a <time> element. */
export function when(iso, now = new Date()) {
  if (!iso) return h("span", { class: "muted" }, "—");
  return h("time", { datetime: iso, class: "when" },
    h("span", { class: "abs" }, absolute(iso)), " ", h("span", { class: "rel" }, `(${ago(iso, now)})`));
}

/**
 * Ask before doing something that changes state. Resolves {ok, note}. Uses the page's one <dialog>:
 * focus is trapped while it is open and returns to the button that opened it.
 */
export function confirmAction({ title, text, confirmLabel = "Confirm", danger = false, withNote = false }) {
  const dialog = byId("confirm");
  const note = byId("confirm-note");
  byId("confirm-title").textContent = title;
  byId("confirm-text").textContent = text;
  byId("confirm-note-row").hidden = !withNote;
  note.value = "";
  const ok = byId("confirm-ok");
  ok.textContent = confirmLabel;
  ok.className = danger ? "danger" : "";
  const opener = document.activeElement;
  const form = byId("confirm-form");
  return new Promise((resolve) => {
    // Answered when the dialog closes, by its buttons (submit) or Escape (cancel): both come in the same
    // task as the closing. Its "close" event comes a task later, so a dialog reopened in between (Escape,
    // then Enter on the same button) would take the first one's late close event as its own answer.
    const answer = (ok) => {
      form.removeEventListener("submit", onSubmit);
      dialog.removeEventListener("cancel", onCancel);
      dialog.removeEventListener("close", onClose);
      if (opener && opener.isConnected) opener.focus();
      resolve({ ok, note: note.value.trim() });
    };
    const onSubmit = (event) => answer(event.submitter?.value === "ok");
    const onCancel = () => answer(false);
    const onClose = () => { if (!dialog.open) answer(dialog.returnValue === "ok"); }; // closed by code
    form.addEventListener("submit", onSubmit);
    dialog.addEventListener("cancel", onCancel);
    dialog.addEventListener("close", onClose);
    dialog.returnValue = "cancel";
    dialog.showModal();
    (withNote ? note : byId("confirm-cancel")).focus();
  });
}

/** A button that copies `getText()` and says so. */
export function copyButton(getText, label = "Copy") {
  const button = h("button", { type: "button", class: "secondary small" }, label);
  button.addEventListener("click", async () => {
    const text = getText();
    let copied = false;
    try {
      await navigator.clipboard.writeText(text);
      copied = true;
    } catch {
      copied = false;
    }
    button.textContent = copied ? "Copied" : "Select and copy by hand";
    window.setTimeout(() => { button.textContent = label; }, 2500);
  });
  return button;
}

// What the engine puts in place of volatile parts of a text (detectors/canonical/_mask.py).
const MASK = /<(?:N\d+|F\d+|IP|TS|UUID|HEX|EMAIL|CUT)>/g;
const MASK_MEANING = {
  IP: "an IP address", TS: "a timestamp", UUID: "a UUID", HEX: "a hex identifier", EMAIL: "an e-mail address",
  CUT: "the rest of a very long text",
};

function maskTitle(token) {
  const name = token.slice(1, -1);
  if (name[0] === "N") return `masked: an integer with ${name.slice(1)} digit(s)`;
  if (name[0] === "F") return `masked: a decimal number with ${name.slice(1)} integer digit(s)`;
  return `masked: ${MASK_MEANING[name] || "a volatile value"}`;
}

/** The real text with its masked parts marked (and explained on hover / to screen readers). */
export function maskedText(text) {
  const out = h("span", { class: "masked-text" });
  let last = 0;
  for (const match of text.matchAll(MASK)) {
    if (match.index > last) out.append(text.slice(last, match.index));
    const title = maskTitle(match[0]);
    out.append(h("mark", { class: "mask", title }, match[0], h("span", { class: "visually-hidden" }, ` (${title})`)));
    last = match.index + match[0].length;
  }
  if (last < text.length) out.append(text.slice(last));
  return out;
}
