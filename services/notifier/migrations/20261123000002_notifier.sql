-- The notifier's own tables: chats and what they want, the lots it has heard of, one-time link
-- codes, the durable outbound queue, and where long polling stopped.

CREATE TABLE chats (
    chat_id BIGINT PRIMARY KEY,
    -- 'private', 'group', 'supergroup' or 'channel': groups have their own rate limit.
    kind TEXT NOT NULL,
    subscribed BOOLEAN NOT NULL DEFAULT FALSE,
    -- Every keyword must appear in the lot's title or description (lower case).
    keywords TEXT[] NOT NULL DEFAULT '{}',
    min_price NUMERIC(78, 0),
    max_price NUMERIC(78, 0),
    account_id UUID,
    blocked_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX chats_subscribed ON chats (chat_id) WHERE subscribed;
CREATE INDEX chats_account ON chats (account_id) WHERE account_id IS NOT NULL;

CREATE TABLE lots (
    lot_id UUID PRIMARY KEY,
    seller UUID NOT NULL,
    title TEXT NOT NULL,
    start_price NUMERIC(78, 0) NOT NULL,
    ends_at TIMESTAMPTZ NOT NULL,
    -- 'scheduled', 'open', 'closed' or 'cancelled'.
    status TEXT NOT NULL DEFAULT 'scheduled'
);

CREATE TABLE link_codes (
    code TEXT PRIMARY KEY,
    account_id UUID NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at TIMESTAMPTZ
);

-- One row per (event, chat): the primary key makes every pair at most once, whatever the
-- redeliveries. status: 'pending' → 'sending' → 'sent'; or 'dropped' (chat blocked the bot),
-- 'failed' (gave up), 'uncertain' (the process stopped with the request in flight: never resent).
CREATE TABLE outbound (
    id BIGSERIAL UNIQUE,
    event_id UUID NOT NULL,
    chat_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    lot_id UUID,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at TIMESTAMPTZ,
    last_error TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, chat_id)
);

CREATE INDEX outbound_due ON outbound (next_attempt_at, id) WHERE status = 'pending';

CREATE TABLE telegram_state (
    key TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
