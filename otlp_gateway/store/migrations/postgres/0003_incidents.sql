-- Incidents (one per fault of a stream, made of its anomalous windows), the per-stream score series for
-- plots, the anomaly -> incident link, and the operator role of API keys.

CREATE TABLE incidents (
    id                     text PRIMARY KEY,
    stream_id              text NOT NULL,
    seq                    bigint NOT NULL,
    -- Stream offset of the first event of the window that opened it; with stream_id and seq it makes the
    -- id, so a replayed update never makes a second incident.
    opened_offset          bigint NOT NULL,
    signal                 text NOT NULL,
    service                text NOT NULL,
    name                   text NOT NULL,
    profile                text NOT NULL,
    status                 text NOT NULL
        CHECK (status IN ('open', 'resolved', 'accepted', 'false_positive')),
    severity               text NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    opened_at              timestamptz NOT NULL,
    last_anomalous_at      timestamptz NOT NULL,
    last_anomalous_offset  bigint NOT NULL,
    resolved_at            timestamptz,
    anomalous_windows      bigint NOT NULL,
    min_p_value            double precision NOT NULL,
    summary                text NOT NULL,
    fields                 jsonb NOT NULL DEFAULT '[]'::jsonb,
    evidence               jsonb NOT NULL DEFAULT '[]'::jsonb,
    acknowledged_by        text,
    acknowledged_at        timestamptz,
    closed_by              text,
    -- An operator's action the stream's detector has not taken yet (the stream was not live).
    pending_action         text CHECK (pending_action IN ('resolve', 'accept', 'false_positive')),
    updated_at             timestamptz NOT NULL,
    -- Pages list open incidents first: 0 while open, 1 once closed.
    closed                 smallint GENERATED ALWAYS AS (CASE WHEN status = 'open' THEN 0 ELSE 1 END) STORED,
    CONSTRAINT incidents_stream_seq_key UNIQUE (stream_id, seq, opened_offset)
);

-- The list order (open first, then newest opened) and its keyset cursor; one index per common filter.
CREATE INDEX incidents_order_idx ON incidents (closed, opened_at DESC, id DESC);
CREATE INDEX incidents_service_order_idx ON incidents (service, closed, opened_at DESC, id DESC);
CREATE INDEX incidents_stream_order_idx ON incidents (stream_id, closed, opened_at DESC, id DESC);
CREATE INDEX incidents_pending_idx ON incidents (stream_id) WHERE pending_action IS NOT NULL;

ALTER TABLE anomalies ADD COLUMN incident_id text;
CREATE INDEX anomalies_incident_idx ON anomalies (incident_id) WHERE incident_id IS NOT NULL;

-- Every scored window of a stream summed into 10 s buckets of event time (plots around an incident).
CREATE TABLE stream_scores (
    stream_id     text NOT NULL,
    bucket_start  timestamptz NOT NULL,
    windows       bigint NOT NULL,
    anomalous     bigint NOT NULL,
    min_p         double precision NOT NULL,
    max_score     double precision NOT NULL,
    PRIMARY KEY (stream_id, bucket_start)
);
CREATE INDEX stream_scores_bucket_idx ON stream_scores (bucket_start);

ALTER TABLE api_keys DROP CONSTRAINT api_keys_role_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_role_check CHECK (role IN ('admin', 'operator', 'read'));
