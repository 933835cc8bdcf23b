-- The store's statements in PostgreSQL's dialect, one per `-- name:` section, loaded by store/queries.py.
-- Parameters are psycopg's named placeholders. sqlite.sql has a section of the same name for every
-- section here, except the `postgres.` ones, which only the Postgres connector uses (a test checks).
-- `/*where*/` is replaced by `WHERE` and the `..._where_...` conditions that apply, joined with AND.

-- name: ping
SELECT 1

-- name: postgres.create_staging
-- Batches are COPYed into this per-connection table, then moved by insert_anomalies. Its columns are the
-- order rows are encoded in (checked when a connection is set up); JSON stays text until the move.
CREATE TEMP TABLE IF NOT EXISTS incoming_anomalies (
    id text, stream_id text, signal text, service text, window_start timestamptz, window_end timestamptz,
    window_start_offset int8, window_end_offset int8, score float8, p_value float8, severity text,
    novelty_bits_per_byte float8, novelty_bits_per_event float8, ncd float8,
    compression_ratio_baseline float8, compression_ratio_window float8, entropy_baseline float8,
    entropy_window float8, delta_bits float8, figures text, explanation text, evidence text, detector text,
    config_hash text, seed int8, engine_version text, is_drift bool, status text, detected_at timestamptz,
    incident_id text
) ON COMMIT DELETE ROWS

-- name: postgres.staging_columns
SELECT attname, atttypid FROM pg_attribute
WHERE attrelid = 'pg_temp.incoming_anomalies'::regclass AND attnum > 0 AND NOT attisdropped
ORDER BY attnum

-- name: postgres.copy_staging
COPY incoming_anomalies FROM STDIN (FORMAT BINARY)

-- name: insert_anomalies
-- ON CONFLICT DO NOTHING: a replayed (stream, window) is skipped, which makes spool drains idempotent.
INSERT INTO anomalies (
    id, stream_id, signal, service, window_start, window_end, window_start_offset, window_end_offset,
    score, p_value, severity, novelty_bits_per_byte, novelty_bits_per_event, ncd,
    compression_ratio_baseline, compression_ratio_window, entropy_baseline, entropy_window, delta_bits,
    figures, explanation, evidence, detector, config_hash, seed, engine_version, is_drift, status,
    detected_at, incident_id)
SELECT id, stream_id, signal, service, window_start, window_end, window_start_offset, window_end_offset,
    score, p_value, severity, novelty_bits_per_byte, novelty_bits_per_event, ncd,
    compression_ratio_baseline, compression_ratio_window, entropy_baseline, entropy_window, delta_bits,
    figures::jsonb, explanation::jsonb, evidence::jsonb, detector, config_hash, seed, engine_version,
    is_drift, status, detected_at, incident_id
FROM incoming_anomalies
ON CONFLICT DO NOTHING

-- name: query_anomalies
SELECT id, stream_id, signal, service, window_start_offset, window_end_offset, window_start, window_end,
    score, p_value, severity, figures, explanation, evidence, detector, config_hash, seed, engine_version,
    is_drift, status, detected_at, incident_id
FROM anomalies /*where*/
ORDER BY detected_at DESC, id DESC
LIMIT %(limit)s

-- name: anomalies_where_stream_id
stream_id = %(stream_id)s

-- name: anomalies_where_service
service = %(service)s

-- name: anomalies_where_signal
signal = %(signal)s

-- name: anomalies_where_severity
severity = %(severity)s

-- name: anomalies_where_status
status = %(status)s

-- name: anomalies_where_since
detected_at >= %(since)s

-- name: anomalies_where_until
detected_at < %(until)s

-- name: anomalies_where_before
(detected_at, id) < (%(before_at)s, %(before_id)s)

-- name: get_anomaly
SELECT id, stream_id, signal, service, window_start_offset, window_end_offset, window_start, window_end,
    score, p_value, severity, figures, explanation, evidence, detector, config_hash, seed, engine_version,
    is_drift, status, detected_at, incident_id
FROM anomalies WHERE id = %(id)s

-- name: set_anomaly_status
UPDATE anomalies SET status = %(status)s WHERE id = %(id)s
RETURNING id, stream_id, signal, service, window_start_offset, window_end_offset, window_start, window_end,
    score, p_value, severity, figures, explanation, evidence, detector, config_hash, seed, engine_version,
    is_drift, status, detected_at, incident_id

-- name: upsert_stream
INSERT INTO streams (stream_id, signal, service, name, state, profile, settings, events_seen, updated_at)
VALUES (%(stream_id)s, %(signal)s, %(service)s, %(name)s, %(state)s, %(profile)s, %(settings)s::jsonb,
        %(events_seen)s, %(updated_at)s)
ON CONFLICT (stream_id) DO UPDATE SET signal = EXCLUDED.signal, service = EXCLUDED.service,
    name = EXCLUDED.name, state = EXCLUDED.state, profile = EXCLUDED.profile, settings = EXCLUDED.settings,
    events_seen = EXCLUDED.events_seen, updated_at = EXCLUDED.updated_at

-- name: list_streams
-- Keyset paging on the primary key: `after` is the last stream_id of the previous page ('' for the first);
-- `state` NULL for every state.
SELECT stream_id, signal, service, name, state, profile, settings, events_seen, updated_at
FROM streams WHERE stream_id COLLATE "C" > %(after)s AND (CAST(%(state)s AS TEXT) IS NULL OR state = %(state)s)
ORDER BY stream_id COLLATE "C"
LIMIT %(limit)s

-- name: stream_services
-- The distinct services of the stored streams, in code-point order (as SQLite sorts them), at most `limit`:
-- the incidents list's service suggestions, without reading every stream's record.
SELECT DISTINCT service COLLATE "C" AS service FROM streams ORDER BY 1 LIMIT %(limit)s

-- name: get_stream
SELECT stream_id, signal, service, name, state, profile, settings, events_seen, updated_at
FROM streams WHERE stream_id = %(stream_id)s

-- name: save_state
INSERT INTO detector_state (stream_id, snapshot, saved_at) VALUES (%(stream_id)s, %(snapshot)s, %(saved_at)s)
ON CONFLICT (stream_id) DO UPDATE SET snapshot = EXCLUDED.snapshot, saved_at = EXCLUDED.saved_at

-- name: load_state
SELECT snapshot FROM detector_state WHERE stream_id = %(stream_id)s

-- name: prune_streams
-- At most `limit` records of streams unseen since `cutoff`; a stream with settings changed through the
-- API keeps its record (an operator's choice outlives the stream's silence).
DELETE FROM streams WHERE stream_id IN (
    SELECT stream_id FROM streams WHERE updated_at < %(cutoff)s AND settings = '{}'::jsonb
    LIMIT %(limit)s)

-- name: prune_states
DELETE FROM detector_state WHERE stream_id IN (
    SELECT stream_id FROM detector_state WHERE saved_at < %(cutoff)s LIMIT %(limit)s)

-- name: prune_scores
DELETE FROM stream_scores WHERE (stream_id, bucket_start) IN (
    SELECT stream_id, bucket_start FROM stream_scores WHERE bucket_start < %(cutoff)s LIMIT %(limit)s)

-- name: create_api_key
INSERT INTO api_keys (key_id, name, role, secret_hash, created_at, revoked_at, rotated_at, last_used_at)
VALUES (%(key_id)s, %(name)s, %(role)s, %(secret_hash)s, %(created_at)s, %(revoked_at)s, %(rotated_at)s,
        %(last_used_at)s)

-- name: get_api_key
SELECT key_id, name, role, secret_hash, created_at, revoked_at, rotated_at, last_used_at
FROM api_keys WHERE key_id = %(key_id)s

-- name: list_api_keys
SELECT key_id, name, role, secret_hash, created_at, revoked_at, rotated_at, last_used_at
FROM api_keys ORDER BY created_at, key_id

-- name: update_api_key
UPDATE api_keys SET name = %(name)s, role = %(role)s, secret_hash = %(secret_hash)s,
    created_at = %(created_at)s, revoked_at = %(revoked_at)s, rotated_at = %(rotated_at)s,
    last_used_at = %(last_used_at)s
WHERE key_id = %(key_id)s

-- name: touch_api_key
UPDATE api_keys SET last_used_at = %(at)s WHERE key_id = %(key_id)s

-- name: append_audit
INSERT INTO audit_log (actor, action, target, before, after, at)
VALUES (%(actor)s, %(action)s, %(target)s, %(before)s::jsonb, %(after)s::jsonb, %(at)s)
RETURNING id

-- name: query_audit
SELECT id, actor, action, target, before, after, at
FROM audit_log /*where*/
ORDER BY at DESC, id DESC
LIMIT %(limit)s

-- name: audit_where_since
at >= %(since)s

-- name: audit_where_actor
actor = %(actor)s

-- name: audit_where_target
-- One target's entries, e.g. an incident's trail (index audit_log_target_at_idx).
target = %(target)s

-- name: audit_where_before
(at, id) < (%(before_at)s, %(before_id)s)

-- name: upsert_incidents
-- Run once per row (executemany). Forward only: a closed incident never changes again, and an open one
-- takes an update only if it is not older (more or as many anomalous windows, as far or further). The
-- operator's columns (acknowledged_*, pending_action) are never written here; closed_by only once.
INSERT INTO incidents (
    id, stream_id, seq, opened_offset, signal, service, name, profile, status, severity, opened_at,
    last_anomalous_at, last_anomalous_offset, resolved_at, anomalous_windows, min_p_value, summary, fields,
    evidence, closed_by, updated_at)
VALUES (
    %(id)s, %(stream_id)s, %(seq)s, %(opened_offset)s, %(signal)s, %(service)s, %(name)s, %(profile)s,
    %(status)s, %(severity)s, %(opened_at)s, %(last_anomalous_at)s, %(last_anomalous_offset)s,
    %(resolved_at)s, %(anomalous_windows)s, %(min_p_value)s, %(summary)s, %(fields)s::jsonb,
    %(evidence)s::jsonb, %(closed_by)s, %(updated_at)s)
ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, severity = EXCLUDED.severity,
    last_anomalous_at = EXCLUDED.last_anomalous_at, last_anomalous_offset = EXCLUDED.last_anomalous_offset,
    resolved_at = EXCLUDED.resolved_at, anomalous_windows = EXCLUDED.anomalous_windows,
    min_p_value = EXCLUDED.min_p_value, summary = EXCLUDED.summary, fields = EXCLUDED.fields,
    evidence = EXCLUDED.evidence, closed_by = COALESCE(incidents.closed_by, EXCLUDED.closed_by),
    updated_at = EXCLUDED.updated_at
WHERE incidents.status = 'open' AND (EXCLUDED.status <> 'open'
    OR (EXCLUDED.anomalous_windows, EXCLUDED.last_anomalous_offset)
        >= (incidents.anomalous_windows, incidents.last_anomalous_offset))

-- name: query_incidents
-- Open first, then the most recently opened (the order of the index incidents_order_idx).
SELECT id, stream_id, seq, opened_offset, signal, service, name, profile, status, severity, opened_at,
    last_anomalous_at, last_anomalous_offset, resolved_at, anomalous_windows, min_p_value, summary, fields,
    evidence, acknowledged_by, acknowledged_at, closed_by, pending_action, updated_at
FROM incidents /*where*/
ORDER BY closed, opened_at DESC, id DESC
LIMIT %(limit)s

-- name: incidents_where_status
status = %(status)s

-- name: incidents_where_service
service = %(service)s

-- name: incidents_where_signal
signal = %(signal)s

-- name: incidents_where_severity
severity = %(severity)s

-- name: incidents_where_stream_id
stream_id = %(stream_id)s

-- name: incidents_where_since
opened_at >= %(since)s

-- name: incidents_where_until
opened_at < %(until)s

-- name: incidents_where_after
-- After the cursor's row in the list order: (closed ASC, opened_at DESC, id DESC).
closed > %(after_closed)s OR (closed = %(after_closed)s AND (opened_at, id) < (%(after_at)s, %(after_id)s))

-- name: get_incident
SELECT id, stream_id, seq, opened_offset, signal, service, name, profile, status, severity, opened_at,
    last_anomalous_at, last_anomalous_offset, resolved_at, anomalous_windows, min_p_value, summary, fields,
    evidence, acknowledged_by, acknowledged_at, closed_by, pending_action, updated_at
FROM incidents WHERE id = %(id)s

-- name: acknowledge_incident
UPDATE incidents SET acknowledged_by = %(actor)s, acknowledged_at = %(at)s, updated_at = %(at)s
WHERE id = %(id)s AND status = 'open'
RETURNING id, stream_id, seq, opened_offset, signal, service, name, profile, status, severity, opened_at,
    last_anomalous_at, last_anomalous_offset, resolved_at, anomalous_windows, min_p_value, summary, fields,
    evidence, acknowledged_by, acknowledged_at, closed_by, pending_action, updated_at

-- name: close_incident
-- An operator's closing action; only an open incident closes (else no row: the caller answers 409).
-- `closed_at` is event time (the incident's), `at` the wall-clock time of the action.
UPDATE incidents SET status = %(status)s, resolved_at = %(closed_at)s, closed_by = %(actor)s,
    pending_action = %(pending)s, updated_at = %(at)s
WHERE id = %(id)s AND status = 'open'
RETURNING id, stream_id, seq, opened_offset, signal, service, name, profile, status, severity, opened_at,
    last_anomalous_at, last_anomalous_offset, resolved_at, anomalous_windows, min_p_value, summary, fields,
    evidence, acknowledged_by, acknowledged_at, closed_by, pending_action, updated_at

-- name: pending_incident_actions
-- `stream_id` NULL for every stream.
SELECT id, stream_id, seq, opened_offset, signal, service, name, profile, status, severity, opened_at,
    last_anomalous_at, last_anomalous_offset, resolved_at, anomalous_windows, min_p_value, summary, fields,
    evidence, acknowledged_by, acknowledged_at, closed_by, pending_action, updated_at
FROM incidents
WHERE pending_action IS NOT NULL AND (CAST(%(stream_id)s AS TEXT) IS NULL OR stream_id = %(stream_id)s)
ORDER BY stream_id, seq

-- name: clear_pending_action
UPDATE incidents SET pending_action = NULL WHERE id = %(id)s

-- name: open_incident_ids
-- `stream_ids`: a JSON array of stream ids. The newest open incident of each.
SELECT DISTINCT ON (stream_id) stream_id, id FROM incidents
WHERE status = 'open' AND stream_id IN (SELECT jsonb_array_elements_text(CAST(%(stream_ids)s AS jsonb)))
ORDER BY stream_id, opened_at DESC, id DESC

-- name: false_incident_counts
-- Per profile: incidents operators marked false positives, and the events their streams were scored on.
SELECT p.profile, COALESCE(f.false_positives, 0) AS false_positives, p.events AS events
FROM (SELECT profile, CAST(SUM(events_seen) AS BIGINT) AS events FROM streams GROUP BY profile) p
LEFT JOIN (SELECT profile, COUNT(*) AS false_positives FROM incidents
           WHERE status = 'false_positive' GROUP BY profile) f ON f.profile = p.profile

-- name: write_scores
-- Run once per row (executemany). Buckets are cumulative: a replayed older state (fewer windows) loses.
INSERT INTO stream_scores (stream_id, bucket_start, windows, anomalous, min_p, max_score)
VALUES (%(stream_id)s, %(bucket_start)s, %(windows)s, %(anomalous)s, %(min_p)s, %(max_score)s)
ON CONFLICT (stream_id, bucket_start) DO UPDATE SET windows = EXCLUDED.windows,
    anomalous = EXCLUDED.anomalous, min_p = EXCLUDED.min_p, max_score = EXCLUDED.max_score
WHERE EXCLUDED.windows >= stream_scores.windows

-- name: latest_score
SELECT stream_id, bucket_start, windows, anomalous, min_p, max_score FROM stream_scores
WHERE stream_id = %(stream_id)s
ORDER BY bucket_start DESC
LIMIT 1

-- name: score_series
SELECT stream_id, bucket_start, windows, anomalous, min_p, max_score FROM stream_scores
WHERE stream_id = %(stream_id)s AND bucket_start >= %(since)s AND bucket_start < %(until)s
ORDER BY bucket_start
LIMIT %(limit)s


-- name: register_instance
-- Stream ownership (scale-out). Times come from the database's clock, so gateways whose clocks differ
-- still agree on whether a lease is valid; `now` and `expires_at` are for SQLite, unused here.
INSERT INTO gateway_instances (instance_id, token, started_at, heartbeat_at, expires_at)
VALUES (%(instance_id)s, %(token)s, now(), now(), now() + make_interval(secs => %(ttl)s))
ON CONFLICT (instance_id) DO UPDATE SET token = EXCLUDED.token, started_at = EXCLUDED.started_at,
    heartbeat_at = EXCLUDED.heartbeat_at, expires_at = EXCLUDED.expires_at

-- name: renew_instance
UPDATE gateway_instances SET heartbeat_at = now(), expires_at = now() + make_interval(secs => %(ttl)s)
WHERE instance_id = %(instance_id)s AND token = %(token)s

-- name: retire_instance
DELETE FROM gateway_instances WHERE instance_id = %(instance_id)s AND token = %(token)s

-- name: prune_instances
-- Gateways gone for long (their leases were taken over or released long ago).
DELETE FROM gateway_instances WHERE expires_at < %(cutoff)s

-- name: prune_orphan_leases
DELETE FROM stream_leases l
WHERE NOT EXISTS (SELECT 1 FROM gateway_instances g WHERE g.instance_id = l.owner)

-- name: get_lease
SELECT l.stream_id, l.owner, l.acquired_at, l.requested_by, l.requested_at,
    COALESCE(g.expires_at > now(), false) AS owner_alive, g.heartbeat_at AS owner_heartbeat_at
FROM stream_leases l LEFT JOIN gateway_instances g ON g.instance_id = l.owner
WHERE l.stream_id = %(stream_id)s

-- name: insert_lease
INSERT INTO stream_leases (stream_id, owner, acquired_at) VALUES (%(stream_id)s, %(owner)s, now())
ON CONFLICT (stream_id) DO NOTHING

-- name: take_lapsed_lease
-- Compare-and-set: only while `previous` still owns it and its heartbeat has still lapsed.
UPDATE stream_leases SET owner = %(owner)s, acquired_at = now(), requested_by = NULL, requested_at = NULL
WHERE stream_id = %(stream_id)s AND owner = %(previous)s
    AND NOT EXISTS (SELECT 1 FROM gateway_instances g
                    WHERE g.instance_id = %(previous)s AND g.expires_at > now())

-- name: request_lease
UPDATE stream_leases SET requested_by = %(requester)s, requested_at = now()
WHERE stream_id = %(stream_id)s AND owner = %(owner)s AND requested_by IS DISTINCT FROM %(requester)s

-- name: withdraw_request
UPDATE stream_leases SET requested_by = NULL, requested_at = NULL
WHERE stream_id = %(stream_id)s AND requested_by = %(requester)s

-- name: withdraw_requests
UPDATE stream_leases SET requested_by = NULL, requested_at = NULL WHERE requested_by = %(requester)s

-- name: transfer_lease
-- The handoff: the owner gives the lease to the gateway that asked, in one statement (nobody else can
-- slip in between a release and the requester's claim). Only to a requester still alive.
UPDATE stream_leases SET owner = requested_by, acquired_at = now(), requested_by = NULL, requested_at = NULL
WHERE stream_id = %(stream_id)s AND owner = %(owner)s
    AND EXISTS (SELECT 1 FROM gateway_instances g
                WHERE g.instance_id = stream_leases.requested_by AND g.expires_at > now())

-- name: release_lease
DELETE FROM stream_leases WHERE stream_id = %(stream_id)s AND owner = %(owner)s

-- name: release_leases
DELETE FROM stream_leases WHERE owner = %(owner)s

-- name: lease_requests
SELECT stream_id, requested_by FROM stream_leases
WHERE owner = %(owner)s AND requested_by IS NOT NULL
ORDER BY stream_id

-- name: count_leases
SELECT count(*) AS n FROM stream_leases WHERE owner = %(owner)s

-- name: owned_streams
SELECT stream_id FROM stream_leases WHERE owner = %(owner)s
