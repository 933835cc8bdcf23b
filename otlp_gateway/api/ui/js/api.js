// Talking to /v1: one error type, one place that decides what a 401 means for the page. The credential
// kept for this tab (sessionStorage) and the request itself are in js/early.js (through js/first.js), which
// starts a page's first requests before the rest of the code has loaded.

import { send, takeStarted } from "./first.js";

export { clearCredential, credential, enc, query, setCredential, streamPath } from "./first.js";

const FLASH_SLOT = "driftlock.flash";

/** A message shown once on the next page (e.g. why the sign-in page was opened). */
export function setFlash(text, kind = "info") {
  sessionStorage.setItem(FLASH_SLOT, JSON.stringify({ text, kind }));
}

export function takeFlash() {
  const raw = sessionStorage.getItem(FLASH_SLOT);
  sessionStorage.removeItem(FLASH_SLOT);
  try {
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    super((body && body.detail) || (status ? `HTTP ${status}` : "the gateway did not answer"));
    this.status = status;
    this.code = (body && body.error) || "";
    this.fields = (body && body.fields) || [];
    this.retryAfter = retryAfter;
  }

  /** A sentence for the person at the screen. */
  explain(what) {
    switch (this.status) {
      case 0:
        return `Could not reach the gateway to ${what}. Is it running? (${this.message})`;
      case 401:
        return `The gateway refused the credentials: ${this.message}`;
      case 403:
        return `Your credentials may not ${what}: ${this.message}`;
      case 429:
        return `Too many requests; the gateway asks to wait ${this.retryAfter || 1} s before trying again.`;
      case 503:
        return `The gateway cannot ${what} right now: ${this.message}`;
      default:
        return `Could not ${what}: ${this.message}`;
    }
  }
}

let unauthorizedHandler = null;

/** Called with the ApiError of any 401, after which the request still rejects. */
export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

export async function api(path, { method = "GET", body, signal, quiet401 = false } = {}) {
  let response;
  let text;
  try {
    // a GET the page's first requests already made (js/early.js) takes that answer, already read
    const early = method === "GET" ? takeStarted(path) : undefined;
    if (early) ({ response, text } = await early);
    else response = await send(path, { method, body, signal });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, { detail: err.message || "network error" });
  }
  if (text === undefined) text = await response.text();
  let parsed = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = { detail: text.slice(0, 200) };
    }
  }
  if (!response.ok) {
    const err = new ApiError(response.status, parsed, response.headers.get("Retry-After"));
    if (response.status === 401 && !quiet401 && unauthorizedHandler) unauthorizedHandler(err);
    throw err;
  }
  return parsed;
}
