// The first requests of a page, started while the shell is still being parsed. This is a classic script
// (not a module), which the server writes into the shell (allowed by its hash in the page's policy) before
// the stylesheet and the page's module: the parser runs it as it meets it, so who is signed in and the
// page's first data are on their way before the page's code has been compiled. (As an async module it ran
// only when the renderer got round to it, often just before the page's own modules, ~100 ms after it had
// arrived on a cold load; as a file of its own it waited for a round trip.) It defines no global name but
// `driftlockEarly`, which js/first.js exports to the modules; the pages ask for the same paths through
// api(), which takes these answers instead of asking again.

(() => {
  "use strict";

  const CREDENTIAL_SLOT = "driftlock.credential";
  const SETTINGS_DEFAULTS = { auth_required: true, trace_url_template: null, poll_seconds: 5, jwt_accepted: false };

  /** The gateway's settings for the pages, written into the shell by the server (no round trip). */
  const settings = readSettings();

  function readSettings() {
    const meta = document.querySelector('meta[name="driftlock-settings"]');
    try {
      return { ...SETTINGS_DEFAULTS, ...(meta ? JSON.parse(meta.content) : {}) };
    } catch {
      return { ...SETTINGS_DEFAULTS };
    }
  }

  function credential() {
    return sessionStorage.getItem(CREDENTIAL_SLOT) || "";
  }

  function setCredential(value) {
    sessionStorage.setItem(CREDENTIAL_SLOT, value.trim());
  }

  function clearCredential() {
    sessionStorage.removeItem(CREDENTIAL_SLOT);
  }

  /** Build a query string from an object, leaving out empty values. */
  function query(params) {
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) {
      if (value !== undefined && value !== null && value !== "") search.set(name, String(value));
    }
    const text = search.toString();
    return text ? `?${text}` : "";
  }

  const enc = encodeURIComponent;

  /** A stream id in a URL path: its slashes stay (the routes take the rest of the path). */
  function streamPath(streamId) {
    return streamId.split("/").map(encodeURIComponent).join("/");
  }

  /** The one way a request to the API goes out (credential in the header only, never cached). */
  function send(path, { method = "GET", body, signal } = {}) {
    const headers = { Accept: "application/json" };
    const key = credential();
    // Without a credential the request goes out bare: a gateway with api.auth_required=false answers it.
    if (key) headers.Authorization = `Bearer ${key}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(path, {
      method, headers, signal, cache: "no-store", credentials: "omit",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  // --- the pages, and what each asks first

  /** The page of each URL path: its name (js/pages/<name>.js) and the parameters taken from the path. */
  const ROUTES = [
    [/^\/$/, "incidents"],
    [/^\/incidents\/([^/]+)$/, "incident"],
    [/^\/streams$/, "streams"],
    [/^\/streams\/(.+)$/, "stream"],
    [/^\/admin\/keys$/, "keys"],
    [/^\/admin\/audit$/, "audit"],
    [/^\/signin$/, "signin"],
  ];

  function route(pathname) {
    const path = pathname.replace(/\/+$/, "") || "/";
    for (const [pattern, page] of ROUTES) {
      const match = path.match(pattern);
      if (match) return { page, params: match.slice(1).map(decodeURIComponent) };
    }
    return null;
  }

  const INCIDENTS_PAGE_SIZE = 50;
  const INCIDENT_FILTERS = ["status", "service", "signal", "severity", "range", "since", "until"];
  const RANGE_SECONDS = { "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800, "30d": 2592000 };
  const STREAM_INCIDENTS = 20;

  /** The incidents list's state as the URL holds it. */
  function incidentsState(search = location.search) {
    const params = new URLSearchParams(search);
    const state = Object.fromEntries(INCIDENT_FILTERS.map((name) => [name, params.get(name) || ""]));
    state.cursor = params.get("cursor") || "";
    return state;
  }

  /** The /v1/incidents request of an incidents list state (a relative range ends at `now`). */
  function incidentsPath(state, now = new Date()) {
    const params = { status: state.status, service: state.service, signal: state.signal, severity: state.severity,
      limit: INCIDENTS_PAGE_SIZE, cursor: state.cursor };
    if (RANGE_SECONDS[state.range]) params.since = new Date(now - RANGE_SECONDS[state.range] * 1000).toISOString();
    if (state.range === "custom") {
      params.since = state.since;
      params.until = state.until;
    }
    return `/v1/incidents${query(params)}`;
  }

  const incidentPath = (id) => `/v1/incidents/${enc(id)}`;
  const incidentAuditPath = (id) => `${incidentPath(id)}/audit`;
  const streamApiPath = (id) => `/v1/streams/${streamPath(id)}`;
  const streamIncidentsPath = (id) => `/v1/incidents${query({ stream_id: id, limit: STREAM_INCIDENTS })}`;
  const RECENT_SCORES_SECONDS = 3600;
  /** When this script ran: a stream page's first "recent scores" end here, so they are asked for at once. */
  const pageStartedAt = new Date();
  /** `fallback`: "latest_incident" for the page's first scores (its last hour, or else its latest incident's). */
  const streamScoresPath = (id, since, until, fallback) =>
    `${streamApiPath(id)}/scores${query({ since: since.toISOString(), until: until.toISOString(), fallback })}`;

  /** The API paths a page asks for before anything else, as it will ask for them. */
  function firstPaths(page, params) {
    switch (page) {
      case "incidents": {
        const state = incidentsState();
        // a relative range ends when the page asks, not now: that request is the page's own
        return RANGE_SECONDS[state.range] ? [] : [incidentsPath(state)];
      }
      case "incident":
        return [incidentPath(params[0]), incidentAuditPath(params[0])];
      case "stream":
        return [streamApiPath(params[0]), streamIncidentsPath(params[0]),
          streamScoresPath(params[0], new Date(pageStartedAt - RECENT_SCORES_SECONDS * 1000), pageStartedAt,
            "latest_incident")];
      default:
        return [];
    }
  }

  const started = new Map();

  // Each answer is read to its end here too: when the page takes it, its code goes on in the same task
  // (a resolved promise), not after another round of the renderer's tasks and frames per answer.
  function start(path) {
    const answer = send(path).then(async (response) => ({ response, text: await response.text() }));
    answer.catch(() => {}); // a failure is the page's to report when it takes the answer, not an unhandled one
    started.set(path, answer);
  }

  /** The answer ({response, text}) to a GET of `path` started here, once (a later GET of it asks again). */
  function takeStarted(path) {
    const response = started.get(path);
    started.delete(path);
    return response;
  }

  // Without a credential a gateway that requires one would only answer 401: the pages send the tab to the
  // sign-in page instead.
  if (credential() || !settings.auth_required) {
    start("/v1/me");
    const here = route(location.pathname);
    if (here) for (const path of firstPaths(here.page, here.params)) start(path);
  }

  window.driftlockEarly = Object.freeze({
    settings, credential, setCredential, clearCredential, query, enc, streamPath, send, route, takeStarted,
    INCIDENTS_PAGE_SIZE, INCIDENT_FILTERS, RANGE_SECONDS, STREAM_INCIDENTS, RECENT_SCORES_SECONDS, pageStartedAt,
    incidentsState, incidentsPath, incidentPath, incidentAuditPath, streamApiPath, streamIncidentsPath,
    streamScoresPath,
  });
})();
