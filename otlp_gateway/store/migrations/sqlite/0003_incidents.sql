-- Incidents, the per-stream score series, the anomaly -> incident link, and the operator role of API
-- keys (SQLite cannot change a CHECK constraint: api_keys is rebuilt).

CREATE TABLE incidents (
    id                     TEXT PRIMARY KEY,
    stream_id              TEXT NOT NULL,
    seq                    INTEGER NOT NULL,
    opened_offset          INTEGER NOT NULL,
    signal                 TEXT NOT NULL,
    service                TEXT NOT NULL,
    name                   TEXT NOT NULL,
    profile                TEXT NOT NULL,
    status                 TEXT NOT NULL
        CHECK (status IN ('open', 'resolved', 'accepted', 'false_positive')),
    severity               TEXT NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    opened_at              TEXT NOT NULL,
    last_anomalous_at      TEXT NOT NULL,
    last_anomalous_offset  INTEGER NOT NULL,
    resolved_at            TEXT,
    anomalous_windows      INTEGER NOT NULL,
    min_p_value            REAL NOT NULL,
    summary                TEXT NOT NULL,
    fields                 TEXT NOT NULL DEFAULT '[]',
    evidence               TEXT NOT NULL DEFAULT '[]',
    acknowledged_by        TEXT,
    acknowledged_at        TEXT,
    closed_by              TEXT,
    pending_action         TEXT CHECK (pending_action IN ('resolve', 'accept', 'false_positive')),
    updated_at             TEXT NOT NULL,
    closed                 INTEGER GENERATED ALWAYS AS (CASE WHEN status = 'open' THEN 0 ELSE 1 END) STORED,
    CONSTRAINT incidents_stream_seq_key UNIQUE (stream_id, seq, opened_offset)
) STRICT;

CREATE INDEX incidents_order_idx ON incidents (closed, opened_at DESC, id DESC);
CREATE INDEX incidents_service_order_idx ON incidents (service, closed, opened_at DESC, id DESC);
CREATE INDEX incidents_stream_order_idx ON incidents (stream_id, closed, opened_at DESC, id DESC);
CREATE INDEX incidents_pending_idx ON incidents (stream_id) WHERE pending_action IS NOT NULL;

ALTER TABLE anomalies ADD COLUMN incident_id TEXT;
CREATE INDEX anomalies_incident_idx ON anomalies (incident_id) WHERE incident_id IS NOT NULL;

CREATE TABLE stream_scores (
    stream_id     TEXT NOT NULL,
    bucket_start  TEXT NOT NULL,
    windows       INTEGER NOT NULL,
    anomalous     INTEGER NOT NULL,
    min_p         REAL NOT NULL,
    max_score     REAL NOT NULL,
    PRIMARY KEY (stream_id, bucket_start)
) STRICT, WITHOUT ROWID;
CREATE INDEX stream_scores_bucket_idx ON stream_scores (bucket_start);

CREATE TABLE api_keys_0003 (
    key_id        TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'read')),
    secret_hash   TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    revoked_at    TEXT,
    rotated_at    TEXT,
    last_used_at  TEXT
) STRICT;
INSERT INTO api_keys_0003 (key_id, name, role, secret_hash, created_at, revoked_at, rotated_at, last_used_at)
    SELECT key_id, name, role, secret_hash, created_at, revoked_at, rotated_at, last_used_at FROM api_keys;
DROP TABLE api_keys;
ALTER TABLE api_keys_0003 RENAME TO api_keys;
