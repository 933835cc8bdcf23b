-- Anomalies, stream settings/state, detector snapshots, API keys and the audit log.

CREATE TABLE anomalies (
    id                          text PRIMARY KEY,
    stream_id                   text NOT NULL,
    signal                      text NOT NULL,
    service                     text NOT NULL,
    window_start                timestamptz NOT NULL,
    window_end                  timestamptz NOT NULL,
    window_start_offset         bigint NOT NULL,
    window_end_offset           bigint NOT NULL,
    score                       double precision NOT NULL,
    p_value                     double precision NOT NULL,
    severity                    text NOT NULL
        CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    -- The standard detector figures as columns (queryable, chartable); every figure also in `figures`.
    novelty_bits_per_byte       double precision,
    novelty_bits_per_event      double precision,
    ncd                         double precision,
    compression_ratio_baseline  double precision,
    compression_ratio_window    double precision,
    entropy_baseline            double precision,
    entropy_window              double precision,
    delta_bits                  double precision,
    figures                     jsonb NOT NULL DEFAULT '{}'::jsonb,
    explanation                 jsonb NOT NULL DEFAULT '{}'::jsonb,
    evidence                    jsonb NOT NULL DEFAULT '[]'::jsonb,
    detector                    text NOT NULL,
    config_hash                 text NOT NULL,
    seed                        bigint NOT NULL,
    engine_version              text NOT NULL,
    is_drift                    boolean NOT NULL DEFAULT false,
    status                      text NOT NULL DEFAULT 'open'
        CHECK (status IN ('open', 'acknowledged', 'confirmed', 'false_positive', 'dismissed')),
    detected_at                 timestamptz NOT NULL,
    -- The idempotency key: replaying a window (spool drain, restart) never duplicates it.
    CONSTRAINT anomalies_stream_window_key UNIQUE (stream_id, window_start_offset)
);

-- Keyset pagination is on (detected_at, id), newest first; one index per common filter.
CREATE INDEX anomalies_detected_idx ON anomalies (detected_at DESC, id DESC);
CREATE INDEX anomalies_stream_detected_idx ON anomalies (stream_id, detected_at DESC, id DESC);
CREATE INDEX anomalies_service_detected_idx ON anomalies (service, detected_at DESC, id DESC);
CREATE INDEX anomalies_window_start_idx ON anomalies (stream_id, window_start);

CREATE TABLE streams (
    stream_id    text PRIMARY KEY,
    signal       text NOT NULL,
    service      text NOT NULL,
    name         text NOT NULL,
    state        text NOT NULL CHECK (state IN ('warming', 'active', 'drifted', 'evicted')),
    profile      text NOT NULL,
    settings     jsonb NOT NULL DEFAULT '{}'::jsonb,
    events_seen  bigint NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL
);

CREATE INDEX streams_service_idx ON streams (service);

-- Detector snapshots, so a stream survives restarts and can move to another replica.
CREATE TABLE detector_state (
    stream_id  text PRIMARY KEY,
    snapshot   bytea NOT NULL,
    saved_at   timestamptz NOT NULL
);

CREATE TABLE api_keys (
    key_id        text PRIMARY KEY,
    name          text NOT NULL,
    role          text NOT NULL CHECK (role IN ('admin', 'read')),
    secret_hash   text NOT NULL,
    created_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    rotated_at    timestamptz,
    last_used_at  timestamptz
);

CREATE TABLE audit_log (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    actor   text NOT NULL,
    action  text NOT NULL,
    target  text NOT NULL,
    before  jsonb,
    after   jsonb,
    at      timestamptz NOT NULL
);

CREATE INDEX audit_log_at_idx ON audit_log (at DESC, id DESC);
CREATE INDEX audit_log_actor_at_idx ON audit_log (actor, at DESC, id DESC);
