// API keys (admin): create, rotate, revoke. A new or rotated secret is shown once, with a copy button; the
// gateway keeps only its hash.

import { api, ApiError, enc } from "../api.js";
import { announce, h, notice, setTitle, table, td } from "../dom.js";
import { confirmAction, copyButton, when } from "../widgets.js";

function secretPanel(title, issued) {
  const field = h("input", { id: "new-secret", type: "text", readonly: true, value: issued.secret, "aria-describedby": "secret-hint",
    spellcheck: "false", autocomplete: "off" });
  field.addEventListener("focus", () => field.select());
  return h("section", { class: "panel", "aria-labelledby": "secret-title" },
    h("h2", { id: "secret-title" }, title),
    h("p", { id: "secret-hint" }, `The secret of “${issued.key.name}” (${issued.key.role}) is shown now and never again: copy it into your secret store.`),
    h("div", { class: "secret" }, h("label", { for: "new-secret", class: "visually-hidden" }, "New API key"), field,
      copyButton(() => issued.secret, "Copy key")));
}

function keyState(key) {
  if (key.revoked_at) return h("span", { class: "badge status-false_positive" }, "revoked");
  return h("span", { class: "badge status-resolved" }, "active");
}

export async function render(app) {
  setTitle("API keys");
  if (!app.can("keys.manage")) {
    app.main.append(h("h1", null, "API keys"),
      notice(`Managing API keys needs an admin key or token; you are signed in as ${app.me ? `${app.me.actor} (${app.me.role})` : "nobody"}.`, "error"));
    return;
  }
  const issuedSlot = h("div");
  const message = h("div", { "aria-live": "polite" });
  const listSlot = h("div");
  const roleSelect = h("select", { id: "key-role", name: "role" },
    app.me.roles.map((role) => h("option", { value: role, selected: role === "read" }, role)));
  const nameInput = h("input", { id: "key-name", name: "name", type: "text", required: true, maxlength: 100,
    pattern: "[\\w .@:\\/+\\-]+", "aria-describedby": "key-name-hint key-name-error", autocomplete: "off" });
  const nameError = h("p", { id: "key-name-error", class: "field-error", hidden: true });
  const create = h("form", { class: "panel", "aria-labelledby": "create-title", novalidate: true },
    h("h2", { id: "create-title" }, "Create a key"),
    h("div", { class: "form-grid" },
      h("div", { class: "field" }, h("label", { for: "key-name" }, "Name"), nameInput,
        h("span", { id: "key-name-hint", class: "hint" }, "Who or what uses it, e.g. grafana or alice@example.com"), nameError),
      h("div", { class: "field" }, h("label", { for: "key-role" }, "Role"), roleSelect,
        h("span", { class: "hint" }, "read: look only; admin: everything, including keys"))),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Create key")));
  app.main.append(h("h1", null, "API keys"), issuedSlot, message, create, h("h2", null, "Keys"), listSlot);

  async function refresh() {
    const page = await api("/v1/api-keys");
    const keys = [...page.items].sort((a, b) => (a.revoked_at ? 1 : 0) - (b.revoked_at ? 1 : 0)
      || b.created_at.localeCompare(a.created_at));
    const rows = keys.map((key) => h("tr", { dataset: { key: key.key_id } },
      td("Name", h("strong", null, key.name), "wide"),
      td("Key id", h("code", null, key.key_id)),
      td("Role", key.role),
      td("State", keyState(key)),
      td("Created", when(key.created_at)),
      td("Rotated", when(key.rotated_at)),
      td("Last used", when(key.last_used_at)),
      td("Actions", key.revoked_at ? h("span", { class: "muted" }, "—") : h("div", { class: "actions" },
        h("button", { type: "button", class: "secondary small", dataset: { action: "rotate", key: key.key_id, name: key.name } }, "Rotate"),
        h("button", { type: "button", class: "danger small", dataset: { action: "revoke", key: key.key_id, name: key.name } }, "Revoke")), "wide")));
    listSlot.replaceChildren(table({ caption: "API keys", rows, empty: "No keys yet.",
      columns: ["Name", "Key id", "Role", "State", "Created", "Rotated", "Last used", "Actions"].map((label) => ({ label })) }));
  }

  const fail = (what) => (err) => {
    message.replaceChildren(notice(err instanceof ApiError ? err.explain(what) : String(err), "error"));
  };

  create.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.replaceChildren();
    nameError.hidden = true;
    nameInput.removeAttribute("aria-invalid");
    if (!nameInput.checkValidity()) {
      nameError.textContent = nameInput.value.trim() ? "Use letters, digits, spaces and . @ : / + - only (at most 100)." : "Give the key a name.";
      nameError.hidden = false;
      nameInput.setAttribute("aria-invalid", "true");
      nameInput.focus();
      return;
    }
    try {
      const issued = await api("/v1/api-keys", { method: "POST", body: { name: nameInput.value.trim(), role: roleSelect.value } });
      create.reset();
      issuedSlot.replaceChildren(secretPanel("New key created", issued));
      announce(`Key ${issued.key.name} created; its secret is shown once.`);
      document.getElementById("new-secret").focus();
      await refresh();
    } catch (err) {
      const bad = err instanceof ApiError && err.fields.find((f) => f.path === "body.name");
      if (bad) {
        nameError.textContent = bad.message;
        nameError.hidden = false;
        nameInput.setAttribute("aria-invalid", "true");
        nameInput.focus();
      } else fail("create the key")(err);
    }
  });

  listSlot.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const { action, key, name } = button.dataset;
    const rotate = action === "rotate";
    const { ok } = await confirmAction({
      title: rotate ? `Rotate “${name}”?` : `Revoke “${name}”?`,
      text: rotate ? "A new secret is issued for the same key id and role; the current secret stops working at once."
        : "The key stops working at once, for good. This cannot be undone.",
      confirmLabel: rotate ? "Rotate key" : "Revoke key", danger: !rotate,
    });
    if (!ok) return;
    message.replaceChildren();
    try {
      const answer = await api(`/v1/api-keys/${enc(key)}/${action}`, { method: "POST" });
      if (rotate) {
        issuedSlot.replaceChildren(secretPanel("Key rotated", answer));
        document.getElementById("new-secret").focus();
      } else {
        issuedSlot.replaceChildren();
        message.replaceChildren(notice(`Key “${name}” revoked.`, "ok"));
      }
      announce(rotate ? `Key ${name} rotated; its new secret is shown once.` : `Key ${name} revoked.`);
      await refresh();
    } catch (err) {
      fail(`${action} the key`)(err);
    }
  });

  await refresh();
}
