-- The live state of every lot's auction. `rules` is the lot's rules as `lots` published them.
CREATE TABLE lots (
    lot_id          UUID          PRIMARY KEY,
    seller          UUID          NOT NULL,
    seller_wallet   TEXT          NOT NULL,
    title           TEXT          NOT NULL,
    rules           JSONB         NOT NULL,
    status          TEXT          NOT NULL CHECK (status IN ('scheduled', 'open', 'closed', 'cancelled')),
    starts_at       TIMESTAMPTZ   NOT NULL,
    ends_at         TIMESTAMPTZ   NOT NULL,
    price           NUMERIC(78,0),
    leader          UUID,
    leader_wallet   TEXT,
    leader_max      NUMERIC(78,0),
    leader_hold_bid UUID,
    bid_count       BIGINT        NOT NULL DEFAULT 0,
    -- The last per-lot sequence number handed out; events are numbered 1, 2, 3, … with no gaps.
    seq             BIGINT        NOT NULL DEFAULT 0,
    outcome         JSONB,
    closed_at       TIMESTAMPTZ,
    created_at      TIMESTAMPTZ   NOT NULL DEFAULT now()
);
CREATE INDEX lots_to_open ON lots (starts_at) WHERE status = 'scheduled';
CREATE INDEX lots_to_close ON lots (ends_at) WHERE status = 'open';

CREATE TABLE bids (
    bid_id    UUID          PRIMARY KEY,
    lot_id    UUID          NOT NULL REFERENCES lots (lot_id),
    seq       BIGINT        NOT NULL,
    bidder    UUID          NOT NULL,
    wallet    TEXT          NOT NULL,
    amount    NUMERIC(78,0) NOT NULL,
    proxy     BOOLEAN       NOT NULL,
    placed_at TIMESTAMPTZ   NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (lot_id, seq)
);

-- The per-lot event log clients replay from (`GET /lots/{id}/events?since=N`).
CREATE TABLE lot_events (
    lot_id     UUID        NOT NULL,
    seq        BIGINT      NOT NULL,
    event_type TEXT        NOT NULL,
    envelope   JSONB       NOT NULL,
    PRIMARY KEY (lot_id, seq)
);

-- Bid requests by (bidder, Idempotency-Key): the bid id chosen for the request and, once
-- decided, the answer, so that a retry returns it and changes nothing.
CREATE TABLE bid_requests (
    bidder          UUID        NOT NULL,
    idempotency_key TEXT        NOT NULL,
    bid_id          UUID        NOT NULL,
    fingerprint     TEXT        NOT NULL,
    status_code     SMALLINT,
    response        JSONB,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (bidder, idempotency_key)
);

-- Holds to release in `wallets`, written in the same transaction as the bid that made them
-- unnecessary, and worked off by a task until `wallets` confirms.
CREATE TABLE pending_releases (
    id         BIGSERIAL   PRIMARY KEY,
    wallet     TEXT        NOT NULL,
    lot_id     UUID        NOT NULL,
    bid_id     UUID        NOT NULL,
    attempts   INT         NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
