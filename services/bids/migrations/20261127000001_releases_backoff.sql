-- Releases that fail back off and, after too many attempts, are parked with their last error for
-- an operator; neither blocks the releases queued behind them.
ALTER TABLE pending_releases
    ADD COLUMN next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    ADD COLUMN last_error      TEXT,
    ADD COLUMN parked_at       TIMESTAMPTZ;
CREATE INDEX pending_releases_due ON pending_releases (next_attempt_at) WHERE parked_at IS NULL;

-- Looking a bid up by id (the repair asks whether a hold's bid was recorded).
CREATE INDEX IF NOT EXISTS bids_by_id ON bids (bid_id);
