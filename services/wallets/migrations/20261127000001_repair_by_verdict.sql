-- Bids that `bids` declared abandoned: never recorded, and never to be. No hold may back them, so
-- a hold request for one that arrives late (a timed-out call still in flight) is refused.
CREATE TABLE abandoned_bids (
    bid_id       UUID        PRIMARY KEY,
    abandoned_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- When the auction closed: only a transaction mined at or after it can pay for the lot.
ALTER TABLE payments ADD COLUMN closed_at TIMESTAMPTZ;
UPDATE payments SET closed_at = created_at WHERE closed_at IS NULL;
ALTER TABLE payments ALTER COLUMN closed_at SET NOT NULL;

-- holds.previous_amount and holds.previous_bid_id are no longer written: repair restores the
-- state `bids` reports instead of one inferred here. They stay until no running version reads
-- them (a rolling update runs old and new side by side).
