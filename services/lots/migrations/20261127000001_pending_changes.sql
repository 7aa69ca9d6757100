-- A seller's change (new rules, or withdrawal) while the auction engine decides on it: the engine
-- serialises changes with bids, so it, not this copy, says whether the change lands before the
-- first bid. Set before asking, cleared with the answer; a change whose answer was lost (a crash,
-- the engine away) is asked again by a background task until it gets one.
ALTER TABLE lots
    ADD COLUMN pending_change JSONB,
    ADD COLUMN pending_since  TIMESTAMPTZ;
CREATE INDEX lots_pending ON lots (pending_since) WHERE pending_change IS NOT NULL;
