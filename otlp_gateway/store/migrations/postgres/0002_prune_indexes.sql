-- The pruning job deletes stream records and detector snapshots by age: index the ages.

CREATE INDEX streams_updated_idx ON streams (updated_at);
CREATE INDEX detector_state_saved_idx ON detector_state (saved_at);

-- Stream pages are ordered by code point (as SQLite and the API's cursor compare ids), not by the
-- database's locale: index that order.
CREATE INDEX streams_id_codepoint_idx ON streams (stream_id COLLATE "C");
