-- Stored answers are deleted after `retention.idempotency`, oldest first.
CREATE INDEX IF NOT EXISTS hold_requests_by_age ON hold_requests (created_at);
