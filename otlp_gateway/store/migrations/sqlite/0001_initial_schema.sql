-- The Postgres schema in SQLite's dialect. Timestamps are UTC text 'YYYY-MM-DDTHH:MM:SS.ffffffZ'
-- (fixed width, so text order is time order); JSON is text; booleans are 0/1.

CREATE TABLE anomalies (
    id                          TEXT PRIMARY KEY,
    stream_id                   TEXT NOT NULL,
    signal                      TEXT NOT NULL,
    service                     TEXT NOT NULL,
    window_start                TEXT NOT NULL,
    window_end                  TEXT NOT NULL,
    window_start_offset         INTEGER NOT NULL,
    window_end_offset           INTEGER NOT NULL,
    score                       REAL NOT NULL,
    p_value                     REAL NOT NULL,
    severity                    TEXT NOT NULL
        CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    novelty_bits_per_byte       REAL,
    novelty_bits_per_event      REAL,
    ncd                         REAL,
    compression_ratio_baseline  REAL,
    compression_ratio_window    REAL,
    entropy_baseline            REAL,
    entropy_window              REAL,
    delta_bits                  REAL,
    figures                     TEXT NOT NULL DEFAULT '{}',
    explanation                 TEXT NOT NULL DEFAULT '{}',
    evidence                    TEXT NOT NULL DEFAULT '[]',
    detector                    TEXT NOT NULL,
    config_hash                 TEXT NOT NULL,
    seed                        INTEGER NOT NULL,
    engine_version              TEXT NOT NULL,
    is_drift                    INTEGER NOT NULL DEFAULT 0 CHECK (is_drift IN (0, 1)),
    status                      TEXT NOT NULL DEFAULT 'open'
        CHECK (status IN ('open', 'acknowledged', 'confirmed', 'false_positive', 'dismissed')),
    detected_at                 TEXT NOT NULL,
    CONSTRAINT anomalies_stream_window_key UNIQUE (stream_id, window_start_offset)
) STRICT;

CREATE INDEX anomalies_detected_idx ON anomalies (detected_at DESC, id DESC);
CREATE INDEX anomalies_stream_detected_idx ON anomalies (stream_id, detected_at DESC, id DESC);
CREATE INDEX anomalies_service_detected_idx ON anomalies (service, detected_at DESC, id DESC);
CREATE INDEX anomalies_window_start_idx ON anomalies (stream_id, window_start);

CREATE TABLE streams (
    stream_id    TEXT PRIMARY KEY,
    signal       TEXT NOT NULL,
    service      TEXT NOT NULL,
    name         TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('warming', 'active', 'drifted', 'evicted')),
    profile      TEXT NOT NULL,
    settings     TEXT NOT NULL DEFAULT '{}',
    events_seen  INTEGER NOT NULL DEFAULT 0,
    updated_at   TEXT NOT NULL
) STRICT;

CREATE INDEX streams_service_idx ON streams (service);

CREATE TABLE detector_state (
    stream_id  TEXT PRIMARY KEY,
    snapshot   BLOB NOT NULL,
    saved_at   TEXT NOT NULL
) STRICT;

CREATE TABLE api_keys (
    key_id        TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'read')),
    secret_hash   TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    revoked_at    TEXT,
    rotated_at    TEXT,
    last_used_at  TEXT
) STRICT;

CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    before  TEXT,
    after   TEXT,
    at      TEXT NOT NULL
) STRICT;

CREATE INDEX audit_log_at_idx ON audit_log (at DESC, id DESC);
CREATE INDEX audit_log_actor_at_idx ON audit_log (actor, at DESC, id DESC);
