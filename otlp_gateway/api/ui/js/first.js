// What js/early.js (a classic script the shell runs before any module) set up, as a module: the settings,
// the credential kept for the tab, the one way a request goes out, the pages' routes and API paths, and the
// answers to the page's first requests, which early.js started while the shell was still being parsed.

const early = window.driftlockEarly;

export const {
  settings, credential, setCredential, clearCredential, query, enc, streamPath, send, route, takeStarted,
  INCIDENTS_PAGE_SIZE, INCIDENT_FILTERS, RANGE_SECONDS, STREAM_INCIDENTS, RECENT_SCORES_SECONDS, pageStartedAt,
  incidentsState, incidentsPath, incidentPath, incidentAuditPath, streamApiPath, streamIncidentsPath,
  streamScoresPath,
} = early;
