// Talking to /v1: the credential kept for this tab (sessionStorage), one error type, one place that
// decides what a 401 means for the page.

const CREDENTIAL_SLOT = "driftlock.credential";
const FLASH_SLOT = "driftlock.flash";

export function credential() {
  return sessionStorage.getItem(CREDENTIAL_SLOT) || "";
}

export function setCredential(value) {
  sessionStorage.setItem(CREDENTIAL_SLOT, value.trim());
}

export function clearCredential() {
  sessionStorage.removeItem(CREDENTIAL_SLOT);
}

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
  const headers = { Accept: "application/json" };
  const key = credential();
  // Without a credential the request goes out bare: a gateway with api.auth_required=false answers it.
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method, headers, signal, cache: "no-store", credentials: "omit",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, { detail: err.message || "network error" });
  }
  const text = await response.text();
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

/** Build a query string from an object, leaving out empty values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

export const enc = encodeURIComponent;

/** A stream id in a URL path: its slashes stay (the routes take the rest of the path). */
export function streamPath(streamId) {
  return streamId.split("/").map(encodeURIComponent).join("/");
}
