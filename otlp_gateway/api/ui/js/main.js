// The shell: who is signed in, the gateway's readiness, the navigation, and the page's module rendering
// into <main>. Pages are plain links (each a full load of this small shell); within a page, filters and
// live updates change the DOM without reloading. Each page's entry, js/bundle/<page>.js (built by
// tools/build_ui.mjs; this module lands in a chunk every page shares), calls boot() with its page module.

import { api, ApiError, clearCredential, credential, onUnauthorized, setFlash, takeFlash } from "./api.js";
import { byId, clear, h, notice } from "./dom.js";
import { route, settings } from "./first.js";
import { localZoneName, setTimeZone, timeZone } from "./format.js";

// The navigation entry each page belongs to (the URL paths are in js/first.js).
const SECTIONS = { incidents: "incidents", incident: "incidents", streams: "streams", stream: "streams",
  keys: "keys", audit: "audit", signin: "" };
const HEALTH_EVERY_MS = 15000;

/** What every page gets: the settings, the caller (null when not signed in) and helpers. */
export const app = {
  settings,
  me: null,
  can(capability) {
    return Boolean(this.me && this.me.capabilities.includes(capability));
  },
  main: null,
  timers: [],
  /** Run `fn` every `seconds` while the tab is visible (and once when it becomes visible again). */
  every(seconds, fn) {
    const id = window.setInterval(() => { if (!document.hidden) fn(); }, seconds * 1000);
    document.addEventListener("visibilitychange", () => { if (!document.hidden) fn(); });
    this.timers.push(id);
  },
};

function showBanner(text, kind = "error") {
  const banner = byId("banner");
  banner.textContent = text;
  banner.className = `banner banner-${kind}`;
  banner.hidden = !text;
}

function goToSignIn(message) {
  setFlash(message, "error");
  const next = location.pathname + location.search;
  location.assign(`/signin?next=${encodeURIComponent(next)}`);
}

async function loadMe() {
  if (!credential() && app.settings.auth_required) {
    // Nothing to present: asking would only earn a 401 (and a console error); the pages need a sign-in.
    app.me = null;
    return new ApiError(401, { detail: "credentials required" });
  }
  try {
    app.me = await api("/v1/me", { quiet401: true });
  } catch (err) {
    app.me = null;
    if (!(err instanceof ApiError) || err.status !== 401) throw err;
    return err;
  }
  return null;
}

function renderSession() {
  const who = byId("who");
  const signin = byId("signin-link");
  const signout = byId("signout");
  for (const item of document.querySelectorAll("[data-needs]")) item.hidden = !app.can(item.dataset.needs);
  if (!app.me) {
    who.textContent = "Not signed in";
    signin.hidden = location.pathname === "/signin";
    signout.hidden = true;
    return;
  }
  const anonymous = app.me.actor === "anonymous";
  who.textContent = anonymous ? "No sign-in needed (auth off)" : `${app.me.actor} · ${app.me.role}`;
  signin.hidden = !anonymous || location.pathname === "/signin";
  signout.hidden = !credential();
}

async function refreshHealth() {
  const pill = byId("health");
  try {
    const response = await fetch("/ui/status.json", { cache: "no-store" });
    const body = await response.json();
    const ready = body.ready;
    pill.textContent = ready ? "Ready" : `Not ready (${body.phase})`;
    pill.className = `pill ${ready ? "pill-ok" : "pill-bad"}`;
    const reasons = Object.entries(body.reasons || {}).map(([k, v]) => `${k}: ${v}`).join("; ");
    pill.title = ready ? "The gateway accepts and forwards telemetry" : reasons || "See /readyz";
  } catch {
    pill.textContent = "Unreachable";
    pill.className = "pill pill-bad";
    pill.title = "The gateway did not answer /readyz";
  }
}

function markNavigation(section) {
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

/** The footer's "your time zone (Europe/Berlin)": its own Intl call (a cold renderer's first costs ICU's
 * start-up, 27-33 ms) is made after the page's first paint, off the critical path; below the fold anyway. */
function nameLocalZone() {
  byId("tz-choice").options[0].textContent = `your time zone (${localZoneName()})`;
}

function wireFooter() {
  const choice = byId("tz-choice");
  choice.value = timeZone() === "UTC" ? "UTC" : "local";
  choice.addEventListener("change", () => {
    setTimeZone(choice.value);
    location.reload();
  });
  byId("signout").addEventListener("click", () => {
    clearCredential();
    setFlash("Signed out. The credentials were removed from this tab.", "info");
    location.assign("/signin");
  });
}

/** Render page `name` of the current URL with `module` (js/pages/<name>.js: its render(app, ...params)). */
export async function boot(name, module) {
  app.main = byId("main");
  wireFooter();
  if (settings.version) byId("version").textContent = ` · v${settings.version}`;
  onUnauthorized((err) => goToSignIn(err.explain("continue")));
  const here = route(location.pathname);
  let refused = null;
  try {
    refused = await loadMe();
  } catch (err) {
    showBanner(err instanceof ApiError ? err.explain("check your sign-in") : String(err));
  }
  renderSession();
  const flash = takeFlash();
  if (flash) showBanner(flash.text, flash.kind);
  if (!here || here.page !== name) {
    clear(app.main).append(h("h1", null, "Page not found"), h("p", null, h("a", { href: "/" }, "Go to the incidents")));
    afterPaint();
    return;
  }
  const section = SECTIONS[here.page];
  markNavigation(section);
  if (refused && section) {
    goToSignIn(credential() ? refused.explain("continue")
      : "Sign in with an API key or a token to see this gateway's incidents.");
    return;
  }
  clear(app.main);
  try {
    await module.render(app, ...here.params);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return; // already on its way to the sign-in page
    const known = err instanceof ApiError;
    app.main.append(notice(known ? err.explain("load this page") : `This page failed: ${err}`, "error"));
    if (!known) {
      afterPaint();
      throw err; // a bug: let it reach the console (the browser tests fail on it)
    }
  }
  performance.mark("driftlock:rendered");
  document.documentElement.dataset.ready = "true";
  // and once the browser has drawn it (a plot is drawn in the next animation frame): the task after that
  // frame (bench/bench_ui.py reports both marks)
  window.requestAnimationFrame(() => window.setTimeout(() => {
    performance.mark("driftlock:painted");
    afterPaint();
  }, 0));
}

/** What the header and footer show besides the page, once the page has been drawn: the gateway's readiness
 * (a request and the header's relayout; the pill shows "…" until then) and the footer's zone name. */
function afterPaint() {
  refreshHealth();
  window.setInterval(refreshHealth, HEALTH_EVERY_MS);
  nameLocalZone();
}
