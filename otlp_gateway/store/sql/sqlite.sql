-- The store's statements in SQLite's dialect, one per `-- name:` section, loaded by store/queries.py.
-- Parameters are sqlite3's named placeholders. postgres.sql has a section of the same name for every
-- section here, except `sqlite.` ones (none so far), which only the SQLite connector would use.
-- `/*where*/` is replaced by `WHERE` and the `..._where_...` conditions that apply, joined with AND.
-- Times are fixed-width UTC text (text order is time order), JSON is text, booleans are 0/1.

-- name: ping
SELECT 1

-- name: insert_anomalies
-- Run once per row (executemany). ON CONFLICT DO NOTHING, not INSERT OR IGNORE: OR IGNORE would also
-- skip rows failing a CHECK or NOT NULL constraint, silently; this skips only (stream, window) replays.
INSERT INTO anomalies (
    id, stream_id, signal, service, window_start, window_end, window_start_offset, window_end_offset,
    score, p_value, severity, novelty_bits_per_byte, novelty_bits_per_event, ncd,
    compression_ratio_baseline, compression_ratio_window, entropy_baseline, entropy_window, delta_bits,
    figures, explanation, evidence, detector, config_hash, seed, engine_version, is_drift, status,
    detected_at, incident_id)
VALUES (
    :id, :stream_id, :signal, :service, :window_start, :window_end, :window_start_offset,
    :window_end_offset, :score, :p_value, :severity, :novelty_bits_per_byte, :novelty_bits_per_event, :ncd,
    :compression_ratio_baseline, :compression_ratio_window, :entropy_baseline, :entropy_window, :delta_bits,
    :figures, :explanation, :evidence, :detector, :config_hash, :seed, :engine_version, :is_drift, :status,
    :detected_at, :incident_id)
ON CONFLICT DO NOTHING

-- name: query_anomalies
SELECT id, stream_id, signal, service, window_start_offset, window_end_offset, window_start, window_end,
    score, p_value, severity, figures, explanation, evidence, detector, config_hash, seed, engine_version,
    is_drift, status, detected_at, incident_id
FROM anomalies /*where*/
ORDER BY detected_at DESC, id DESC
LIMIT :limit

-- name: anomalies_where_stream_id
stream_id = :stream_id

-- name: anomalies_where_service
service = :service

-- name: anomalies_where_signal
signal = :signal

-- name: anomalies_where_severity
severity = :severity

-- name: anomalies_where_status
status = :status

-- name: anomalies_where_since
detected_at >= :since

-- name: anomalies_where_until
detected_at < :until

-- name: anomalies_where_before
(detected_at, id) < (:before_at, :before_id)

-- name: get_anomaly
SELECT id, stream_id, signal, service, window_start_offset, window_end_offset, window_start, window_end,
    score, p_value, severity, figures, explanation, evidence, detector, config_hash, seed, engine_version,
    is_drift, status, detected_at, incident_id
FROM anomalies WHERE id = :id

-- name: set_anomaly_status
UPDATE anomalies SET status = :status WHERE id = :id
RETURNING id, stream_id, signal, service, window_start_offset, window_end_offset, window_start, window_end,
    score, p_value, severity, figures, explanation, evidence, detector, config_hash, seed, engine_version,
    is_drift, status, detected_at, incident_id

-- name: upsert_stream
INSERT INTO streams (stream_id, signal, service, name, state, profile, settings, events_seen, updated_at)
VALUES (:stream_id, :signal, :service, :name, :state, :profile, :settings, :events_seen, :updated_at)
ON CONFLICT (stream_id) DO UPDATE SET signal = excluded.signal, service = excluded.service,
    name = excluded.name, state = excluded.state, profile = excluded.profile, settings = excluded.settings,
    events_seen = excluded.events_seen, updated_at = excluded.updated_at

-- name: list_streams
-- Keyset paging on the primary key: `after` is the last stream_id of the previous page ('' for the first);
-- `state` NULL for every state.
SELECT stream_id, signal, service, name, state, profile, settings, events_seen, updated_at
FROM streams WHERE stream_id > :after AND (:state IS NULL OR state = :state)
ORDER BY stream_id
LIMIT :limit

-- name: stream_services
-- The distinct services of the stored streams, in code-point order (the streams_service_idx index), at most
-- `limit`: the incidents list's service suggestions, without reading every stream's record.
SELECT DISTINCT service FROM streams ORDER BY service LIMIT :limit

-- name: get_stream
SELECT stream_id, signal, service, name, state, profile, settings, events_seen, updated_at
FROM streams WHERE stream_id = :stream_id

-- name: save_state
INSERT INTO detector_state (stream_id, snapshot, saved_at) VALUES (:stream_id, :snapshot, :saved_at)
ON CONFLICT (stream_id) DO UPDATE SET snapshot = excluded.snapshot, saved_at = excluded.saved_at

-- name: load_state
SELECT snapshot FROM detector_state WHERE stream_id = :stream_id

-- name: prune_streams
-- At most `limit` records of streams unseen since `cutoff`; a stream with settings changed through the
-- API keeps its record (an operator's choice outlives the stream's silence).
DELETE FROM streams WHERE stream_id IN (
    SELECT stream_id FROM streams WHERE updated_at < :cutoff AND settings = '{}' LIMIT :limit)

-- name: prune_states
DELETE FROM detector_state WHERE stream_id IN (
    SELECT stream_id FROM detector_state WHERE saved_at < :cutoff LIMIT :limit)

-- name: prune_scores
DELETE FROM stream_scores WHERE (stream_id, bucket_start) IN (
    SELECT stream_id, bucket_start FROM stream_scores WHERE bucket_start < :cutoff LIMIT :limit)

-- name: create_api_key
INSERT INTO api_keys (key_id, name, role, secret_hash, created_at, revoked_at, rotated_at, last_used_at)
VALUES (:key_id, :name, :role, :secret_hash, :created_at, :revoked_at, :rotated_at, :last_used_at)

-- name: get_api_key
SELECT key_id, name, role, secret_hash, created_at, revoked_at, rotated_at, last_used_at
FROM api_keys WHERE key_id = :key_id

-- name: list_api_keys
SELECT key_id, name, role, secret_hash, created_at, revoked_at, rotated_at, last_used_at
FROM api_keys ORDER BY created_at, key_id

-- name: update_api_key
UPDATE api_keys SET name = :name, role = :role, secret_hash = :secret_hash, created_at = :created_at,
    revoked_at = :revoked_at, rotated_at = :rotated_at, last_used_at = :last_used_at
WHERE key_id = :key_id

-- name: touch_api_key
UPDATE api_keys SET last_used_at = :at WHERE key_id = :key_id

-- name: append_audit
INSERT INTO audit_log (actor, action, target, before, after, at)
VALUES (:actor, :action, :target, :before, :after, :at)
RETURNING id

-- name: query_audit
SELECT id, actor, action, target, before, after, at
FROM audit_log /*where*/
ORDER BY at DESC, id DESC
LIMIT :limit

-- name: audit_where_since
at >= :since

-- name: audit_where_actor
actor = :actor

-- name: audit_where_target
-- One target's entries, e.g. an incident's trail (index audit_log_target_at_idx).
target = :target

-- name: audit_where_before
(at, id) < (:before_at, :before_id)

-- name: upsert_incidents
-- Run once per row (executemany). Forward only: a closed incident never changes again, and an open one
-- takes an update only if it is not older (more or as many anomalous windows, as far or further). The
-- operator's columns (acknowledged_*, pending_action) are never written here; closed_by only once.
INSERT INTO incidents (
    id, stream_id, seq, opened_offset, signal, service, name, profile, status, severity, opened_at,
    last_anomalous_at, last_anomalous_offset, resolved_at, anomalous_windows, min_p_value, summary, fields,
    evidence, closed_by, updated_at)
VALUES (
    :id, :stream_id, :seq, :opened_offset, :signal, :service, :name, :profile, :status, :severity,
    :opened_at, :last_anomalous_at, :last_anomalous_offset, :resolved_at, :anomalous_windows, :min_p_value,
    :summary, :fields, :evidence, :closed_by, :updated_at)
ON CONFLICT (id) DO UPDATE SET status = excluded.status, severity = excluded.severity,
    last_anomalous_at = excluded.last_anomalous_at, last_anomalous_offset = excluded.last_anomalous_offset,
    resolved_at = excluded.resolved_at, anomalous_windows = excluded.anomalous_windows,
    min_p_value = excluded.min_p_value, summary = excluded.summary, fields = excluded.fields,
    evidence = excluded.evidence, closed_by = COALESCE(incidents.closed_by, excluded.closed_by),
    updated_at = excluded.updated_at
WHERE incidents.status = 'open' AND (excluded.status <> 'open'
    OR (excluded.anomalous_windows, excluded.last_anomalous_offset)
        >= (incidents.anomalous_windows, incidents.last_anomalous_offset))

-- name: query_incidents
-- Open first, then the most recently opened (the order of the index incidents_order_idx).
SELECT id, stream_id, seq, opened_offset, signal, service, name, profile, status, severity, opened_at,
    last_anomalous_at, last_anomalous_offset, resolved_at, anomalous_windows, min_p_value, summary, fields,
    evidence, acknowledged_by, acknowledged_at, closed_by, pending_action, updated_at
FROM incidents /*where*/
ORDER BY closed, opened_at DESC, id DESC
LIMIT :limit

-- name: incidents_where_status
status = :status

-- name: incidents_where_service
service = :service

-- name: incidents_where_signal
signal = :signal

-- name: incidents_where_severity
severity = :severity

-- name: incidents_where_stream_id
stream_id = :stream_id

-- name: incidents_where_since
opened_at >= :since

-- name: incidents_where_until
opened_at < :until

-- name: incidents_where_after
-- After the cursor's row in the list order: (closed ASC, opened_at DESC, id DESC).
closed > :after_closed OR (closed = :after_closed AND (opened_at, id) < (:after_at, :after_id))

-- name: get_incident
SELECT id, stream_id, seq, opened_offset, signal, service, name, profile, status, severity, opened_at,
    last_anomalous_at, last_anomalous_offset, resolved_at, anomalous_windows, min_p_value, summary, fields,
    evidence, acknowledged_by, acknowledged_at, closed_by, pending_action, updated_at
FROM incidents WHERE id = :id

-- name: acknowledge_incident
UPDATE incidents SET acknowledged_by = :actor, acknowledged_at = :at, updated_at = :at
WHERE id = :id AND status = 'open'
RETURNING id, stream_id, seq, opened_offset, signal, service, name, profile, status, severity, opened_at,
    last_anomalous_at, last_anomalous_offset, resolved_at, anomalous_windows, min_p_value, summary, fields,
    evidence, acknowledged_by, acknowledged_at, closed_by, pending_action, updated_at

-- name: close_incident
-- An operator's closing action; only an open incident closes (else no row: the caller answers 409).
-- `closed_at` is event time (the incident's), `at` the wall-clock time of the action.
UPDATE incidents SET status = :status, resolved_at = :closed_at, closed_by = :actor, pending_action = :pending,
    updated_at = :at
WHERE id = :id AND status = 'open'
RETURNING id, stream_id, seq, opened_offset, signal, service, name, profile, status, severity, opened_at,
    last_anomalous_at, last_anomalous_offset, resolved_at, anomalous_windows, min_p_value, summary, fields,
    evidence, acknowledged_by, acknowledged_at, closed_by, pending_action, updated_at

-- name: pending_incident_actions
-- `stream_id` NULL for every stream.
SELECT id, stream_id, seq, opened_offset, signal, service, name, profile, status, severity, opened_at,
    last_anomalous_at, last_anomalous_offset, resolved_at, anomalous_windows, min_p_value, summary, fields,
    evidence, acknowledged_by, acknowledged_at, closed_by, pending_action, updated_at
FROM incidents
WHERE pending_action IS NOT NULL AND (:stream_id IS NULL OR stream_id = :stream_id)
ORDER BY stream_id, seq

-- name: clear_pending_action
UPDATE incidents SET pending_action = NULL WHERE id = :id

-- name: open_incident_ids
-- `stream_ids`: a JSON array of stream ids. The newest open incident of each.
SELECT stream_id, id FROM (
    SELECT stream_id, id, ROW_NUMBER() OVER (PARTITION BY stream_id ORDER BY opened_at DESC, id DESC) AS n
    FROM incidents
    WHERE status = 'open' AND stream_id IN (SELECT value FROM json_each(:stream_ids)))
WHERE n = 1

-- name: false_incident_counts
-- Per profile: incidents operators marked false positives, and the events their streams were scored on.
SELECT p.profile, COALESCE(f.false_positives, 0) AS false_positives, p.events AS events
FROM (SELECT profile, CAST(SUM(events_seen) AS BIGINT) AS events FROM streams GROUP BY profile) p
LEFT JOIN (SELECT profile, COUNT(*) AS false_positives FROM incidents
           WHERE status = 'false_positive' GROUP BY profile) f ON f.profile = p.profile

-- name: write_scores
-- Run once per row (executemany). Buckets are cumulative: a replayed older state (fewer windows) loses.
INSERT INTO stream_scores (stream_id, bucket_start, windows, anomalous, min_p, max_score)
VALUES (:stream_id, :bucket_start, :windows, :anomalous, :min_p, :max_score)
ON CONFLICT (stream_id, bucket_start) DO UPDATE SET windows = excluded.windows,
    anomalous = excluded.anomalous, min_p = excluded.min_p, max_score = excluded.max_score
WHERE excluded.windows >= stream_scores.windows

-- name: latest_score
SELECT stream_id, bucket_start, windows, anomalous, min_p, max_score FROM stream_scores
WHERE stream_id = :stream_id
ORDER BY bucket_start DESC
LIMIT 1

-- name: score_series
SELECT stream_id, bucket_start, windows, anomalous, min_p, max_score FROM stream_scores
WHERE stream_id = :stream_id AND bucket_start >= :since AND bucket_start < :until
ORDER BY bucket_start
LIMIT :limit


-- name: register_instance
-- Stream ownership (scale-out). One host shares an SQLite file, so the gateway's clock is the clock:
-- `now` and `expires_at` are passed in (`ttl` is for Postgres, unused here).
INSERT INTO gateway_instances (instance_id, token, started_at, heartbeat_at, expires_at)
VALUES (:instance_id, :token, :now, :now, :expires_at)
ON CONFLICT (instance_id) DO UPDATE SET token = excluded.token, started_at = excluded.started_at,
    heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at

-- name: renew_instance
UPDATE gateway_instances SET heartbeat_at = :now, expires_at = :expires_at
WHERE instance_id = :instance_id AND token = :token

-- name: retire_instance
DELETE FROM gateway_instances WHERE instance_id = :instance_id AND token = :token

-- name: prune_instances
-- Gateways gone for long (their leases were taken over or released long ago).
DELETE FROM gateway_instances WHERE expires_at < :cutoff

-- name: prune_orphan_leases
DELETE FROM stream_leases
WHERE NOT EXISTS (SELECT 1 FROM gateway_instances g WHERE g.instance_id = stream_leases.owner)

-- name: get_lease
SELECT l.stream_id, l.owner, l.acquired_at, l.requested_by, l.requested_at,
    COALESCE(g.expires_at > :now, 0) AS owner_alive, g.heartbeat_at AS owner_heartbeat_at
FROM stream_leases l LEFT JOIN gateway_instances g ON g.instance_id = l.owner
WHERE l.stream_id = :stream_id

-- name: insert_lease
INSERT INTO stream_leases (stream_id, owner, acquired_at) VALUES (:stream_id, :owner, :now)
ON CONFLICT (stream_id) DO NOTHING

-- name: take_lapsed_lease
-- Compare-and-set: only while `previous` still owns it and its heartbeat has still lapsed.
UPDATE stream_leases SET owner = :owner, acquired_at = :now, requested_by = NULL, requested_at = NULL
WHERE stream_id = :stream_id AND owner = :previous
    AND NOT EXISTS (SELECT 1 FROM gateway_instances g
                    WHERE g.instance_id = :previous AND g.expires_at > :now)

-- name: request_lease
UPDATE stream_leases SET requested_by = :requester, requested_at = :now
WHERE stream_id = :stream_id AND owner = :owner AND requested_by IS NOT :requester

-- name: withdraw_request
UPDATE stream_leases SET requested_by = NULL, requested_at = NULL
WHERE stream_id = :stream_id AND requested_by = :requester

-- name: withdraw_requests
UPDATE stream_leases SET requested_by = NULL, requested_at = NULL WHERE requested_by = :requester

-- name: transfer_lease
-- The handoff: the owner gives the lease to the gateway that asked, in one statement (nobody else can
-- slip in between a release and the requester's claim). Only to a requester still alive.
UPDATE stream_leases SET owner = requested_by, acquired_at = :now, requested_by = NULL, requested_at = NULL
WHERE stream_id = :stream_id AND owner = :owner
    AND EXISTS (SELECT 1 FROM gateway_instances g
                WHERE g.instance_id = stream_leases.requested_by AND g.expires_at > :now)

-- name: release_lease
DELETE FROM stream_leases WHERE stream_id = :stream_id AND owner = :owner

-- name: release_leases
DELETE FROM stream_leases WHERE owner = :owner

-- name: lease_requests
SELECT stream_id, requested_by FROM stream_leases
WHERE owner = :owner AND requested_by IS NOT NULL
ORDER BY stream_id

-- name: count_leases
SELECT count(*) AS n FROM stream_leases WHERE owner = :owner

-- name: owned_streams
SELECT stream_id FROM stream_leases WHERE owner = :owner
