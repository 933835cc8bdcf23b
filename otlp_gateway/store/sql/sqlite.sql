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
    detected_at)
VALUES (
    :id, :stream_id, :signal, :service, :window_start, :window_end, :window_start_offset,
    :window_end_offset, :score, :p_value, :severity, :novelty_bits_per_byte, :novelty_bits_per_event, :ncd,
    :compression_ratio_baseline, :compression_ratio_window, :entropy_baseline, :entropy_window, :delta_bits,
    :figures, :explanation, :evidence, :detector, :config_hash, :seed, :engine_version, :is_drift, :status,
    :detected_at)
ON CONFLICT DO NOTHING

-- name: query_anomalies
SELECT id, stream_id, signal, service, window_start_offset, window_end_offset, window_start, window_end,
    score, p_value, severity, figures, explanation, evidence, detector, config_hash, seed, engine_version,
    is_drift, status, detected_at
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
    is_drift, status, detected_at
FROM anomalies WHERE id = :id

-- name: set_anomaly_status
UPDATE anomalies SET status = :status WHERE id = :id
RETURNING id, stream_id, signal, service, window_start_offset, window_end_offset, window_start, window_end,
    score, p_value, severity, figures, explanation, evidence, detector, config_hash, seed, engine_version,
    is_drift, status, detected_at

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

-- name: audit_where_before
(at, id) < (:before_at, :before_id)


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
