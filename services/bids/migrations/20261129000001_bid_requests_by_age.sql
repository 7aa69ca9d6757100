-- Stored answers are deleted after `retention.idempotency`, oldest first.
CREATE INDEX IF NOT EXISTS bid_requests_by_age ON bid_requests (created_at);
