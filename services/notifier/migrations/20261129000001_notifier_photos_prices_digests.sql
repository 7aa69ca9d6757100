-- What the bot shows and sends since issue 17: the current price of each lot (for /lots), the
-- Telegram file id of a lot's first photo once uploaded ('' when the lot has none; NULL when not
-- known yet), and digests that stand in for a backlog of new-lot messages to one chat.

ALTER TABLE lots
    ADD COLUMN price NUMERIC(78, 0),
    ADD COLUMN bids INT NOT NULL DEFAULT 0,
    ADD COLUMN photo_file_id TEXT;

-- A new-lot message folded into a digest: status 'digested', and the digest's own row here.
ALTER TABLE outbound ADD COLUMN digest BIGINT REFERENCES outbound (id);

CREATE INDEX outbound_pending_new_lots ON outbound (chat_id) WHERE status = 'pending' AND kind = 'new_lot';
