-- The bid a `place` request was for, so that repairing an orphaned hold can also forget the
-- request: a retry of that bid then places a fresh hold instead of replaying a stale answer.
ALTER TABLE hold_requests ADD COLUMN bid_id UUID;
CREATE INDEX hold_requests_by_bid ON hold_requests (bid_id) WHERE bid_id IS NOT NULL;
