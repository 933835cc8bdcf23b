-- One target's audit trail (an incident's page shows its own): without this index the query walks the
-- whole log newest first to find an incident's few entries.
CREATE INDEX audit_log_target_at_idx ON audit_log (target, at DESC, id DESC);
