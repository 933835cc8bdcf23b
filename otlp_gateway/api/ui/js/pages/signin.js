// Sign in with an API key (dlk_...) or a JWT. The credential is checked with /v1/me before it is kept, and
// kept in this tab only (sessionStorage: closing the tab forgets it; other tabs do not see it).

import { api, ApiError, clearCredential, credential, setCredential } from "../api.js";
import { byId, h, notice, setTitle } from "../dom.js";

function safeNext() {
  const next = new URLSearchParams(location.search).get("next") || "/";
  // Only a path on this origin: never an absolute or protocol-relative URL.
  return next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\") ? next : "/";
}

export async function render(app) {
  setTitle("Sign in");
  const input = h("input", { id: "credential", name: "credential", type: "password", required: true, autocomplete: "off",
    spellcheck: "false", "aria-describedby": "credential-hint", placeholder: "dlk_… or eyJ…" });
  const result = h("div", { "aria-live": "polite" });
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h("form", { class: "panel signin", novalidate: true },
    h("div", { class: "field" },
      h("label", { for: "credential" }, "API key or token"),
      input,
      h("span", { id: "credential-hint", class: "hint" },
        app.settings.jwt_accepted ? "An API key (dlk_<id>.<secret>) or an HS256 JWT issued for this gateway."
          : "An API key (dlk_<id>.<secret>). Create the first admin key with: otlp-gateway api-keys create --role admin")),
    h("div", { class: "actions" }, button));
  const intro = [h("h1", null, "Sign in")];
  if (!app.settings.auth_required) {
    intro.push(notice("This gateway does not require credentials (api.auth_required: false): every page works without signing in. "
      + "Sign in only to act under a key's name in the audit log.", "info"));
    intro.push(h("p", null, h("a", { href: safeNext() }, "Continue without signing in")));
  } else if (app.me && credential()) {
    intro.push(notice(`You are signed in as ${app.me.actor} (${app.me.role}). Signing in again replaces these credentials in this tab.`, "info"));
  }
  app.main.append(...intro, form, result);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = input.value.trim();
    result.replaceChildren();
    input.removeAttribute("aria-invalid");
    if (!value) {
      input.setAttribute("aria-invalid", "true");
      result.append(notice("Paste an API key or a token first.", "error"));
      input.focus();
      return;
    }
    const previous = credential();
    setCredential(value);
    button.disabled = true;
    try {
      const me = await api("/v1/me", { quiet401: true });
      input.value = "";
      result.append(notice(`Signed in as ${me.actor} (${me.role}).`, "ok"));
      location.assign(safeNext());
    } catch (err) {
      if (previous) setCredential(previous); else clearCredential();
      input.setAttribute("aria-invalid", "true");
      result.append(notice(err instanceof ApiError ? err.explain("sign in") : String(err), "error"));
      input.focus();
    } finally {
      button.disabled = false;
    }
  });
  if (!byId("banner").hidden) byId("banner").focus?.();
  input.focus();
}
