-- The pruning job deletes stream records and detector snapshots by age: index the ages.

CREATE INDEX streams_updated_idx ON streams (updated_at);
CREATE INDEX detector_state_saved_idx ON detector_state (saved_at);
