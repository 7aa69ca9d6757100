-- The catalogue: each lot, its rules, and the live summary kept from `auction.*` events.
CREATE TABLE lots (
    id                UUID          PRIMARY KEY,
    seller            UUID          NOT NULL,
    seller_wallet     TEXT          NOT NULL,
    title             TEXT          NOT NULL,
    description       TEXT          NOT NULL,
    asset             TEXT          NOT NULL,
    start_price       NUMERIC(78,0) NOT NULL,
    increment         JSONB         NOT NULL,
    reserve           NUMERIC(78,0),
    buy_now           NUMERIC(78,0),
    starts_at         TIMESTAMPTZ   NOT NULL,
    ends_at           TIMESTAMPTZ   NOT NULL,
    latest_end        TIMESTAMPTZ   NOT NULL,
    snipe_window_secs INT           NOT NULL,
    extension_secs    INT           NOT NULL,
    status            TEXT          NOT NULL CHECK (status IN ('scheduled', 'open', 'closed', 'cancelled')),
    first_bid_at      TIMESTAMPTZ,
    -- Live summary, from auction.* events (never older than `last_seq`).
    price             NUMERIC(78,0),
    bid_count         BIGINT        NOT NULL DEFAULT 0,
    current_end       TIMESTAMPTZ   NOT NULL,
    reserve_met       BOOLEAN,
    outcome           TEXT,
    last_seq          BIGINT        NOT NULL DEFAULT 0,
    created_at        TIMESTAMPTZ   NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ   NOT NULL DEFAULT now(),
    search            TSVECTOR GENERATED ALWAYS AS (
        setweight(to_tsvector('simple', title), 'A') || setweight(to_tsvector('simple', description), 'B')
    ) STORED
);
CREATE INDEX lots_search ON lots USING GIN (search);
CREATE INDEX lots_newest ON lots (created_at DESC, id DESC);
CREATE INDEX lots_ending ON lots (current_end, id) WHERE status IN ('scheduled', 'open');
CREATE INDEX lots_by_seller ON lots (seller);

CREATE TABLE photos (
    id           UUID        PRIMARY KEY,
    lot_id       UUID        NOT NULL REFERENCES lots (id),
    position     INT         NOT NULL,
    object_key   TEXT        NOT NULL,
    content_type TEXT        NOT NULL,
    width        INT         NOT NULL,
    height       INT         NOT NULL,
    bytes        INT         NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX photos_by_lot ON photos (lot_id, position);
