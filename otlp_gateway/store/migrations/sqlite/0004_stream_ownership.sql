-- Scale-out: which gateway process scores each stream (a lease), and which gateway processes are alive.
-- A lease is valid while its owner's instance row is fresh (expires_at in the future); the owner renews
-- that one row per heartbeat, so renewing costs one write per gateway, not one per stream.

CREATE TABLE gateway_instances (
    instance_id   TEXT PRIMARY KEY,
    -- Random per process: a second process started with the same instance id is noticed.
    token         TEXT NOT NULL,
    started_at    TEXT NOT NULL,
    heartbeat_at  TEXT NOT NULL,
    expires_at    TEXT NOT NULL
) STRICT;

CREATE TABLE stream_leases (
    stream_id     TEXT PRIMARY KEY,
    owner         TEXT NOT NULL,
    acquired_at   TEXT NOT NULL,
    -- Another gateway was sent this stream and asks for it: the owner hands it over (snapshot, then
    -- owner := requested_by) once the stream has gone quiet here.
    requested_by  TEXT,
    requested_at  TEXT
) STRICT;

CREATE INDEX stream_leases_owner_idx ON stream_leases (owner);
