-- Accounts and the wallets linked to them. Addresses are stored in lowercase hex.
CREATE TABLE accounts (
    id         UUID        PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE wallets (
    address    TEXT        PRIMARY KEY CHECK (address ~ '^0x[0-9a-f]{40}$'),
    account_id UUID        NOT NULL REFERENCES accounts (id),
    linked_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX wallets_by_account ON wallets (account_id);

-- One row per wallet that ever held funds. Locking it (FOR UPDATE) serialises every change to
-- that wallet's holds, so concurrent holds on different lots cannot together exceed the balance.
CREATE TABLE ledger_wallets (
    address TEXT PRIMARY KEY
);

-- At most one hold per (wallet, lot). Amounts are wei, exact (NUMERIC(78,0) fits any U256).
CREATE TABLE holds (
    wallet           TEXT          NOT NULL REFERENCES ledger_wallets (address),
    lot_id           UUID          NOT NULL,
    status           TEXT          NOT NULL CHECK (status IN ('active', 'released', 'captured', 'settled')),
    amount           NUMERIC(78,0) NOT NULL CHECK (amount >= 0),
    -- The bid this amount backs, and whether `bids` has recorded it yet.
    bid_id           UUID,
    bid_recorded     BOOLEAN       NOT NULL DEFAULT false,
    -- The last recorded state, restored if the latest bid is never recorded.
    previous_amount  NUMERIC(78,0),
    previous_bid_id  UUID,
    payment_deadline TIMESTAMPTZ,
    created_at       TIMESTAMPTZ   NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ   NOT NULL DEFAULT now(),
    PRIMARY KEY (wallet, lot_id)
);
CREATE INDEX holds_by_lot ON holds (lot_id);
CREATE INDEX holds_unrecorded ON holds (updated_at) WHERE status = 'active' AND NOT bid_recorded;

-- Bids that `bids` has recorded (from auction.bid_accepted), whatever order events arrive in.
CREATE TABLE recorded_bids (
    bid_id      UUID        PRIMARY KEY,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Every hold operation by idempotency key, with the answer it got. `seq` is the order in which
-- operations took their wallet's lock, i.e. the serial order of the ledger.
CREATE TABLE hold_requests (
    idempotency_key TEXT        PRIMARY KEY,
    seq             BIGSERIAL   NOT NULL UNIQUE,
    operation       TEXT        NOT NULL,
    fingerprint     TEXT        NOT NULL,
    status_code     SMALLINT    NOT NULL,
    response        JSONB       NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Settlement: one row per sold lot.
CREATE TABLE payments (
    lot_id        UUID          PRIMARY KEY,
    winner        UUID          NOT NULL,
    winner_wallet TEXT          NOT NULL,
    seller_wallet TEXT          NOT NULL,
    amount        NUMERIC(78,0) NOT NULL,
    deadline      TIMESTAMPTZ   NOT NULL,
    status        TEXT          NOT NULL CHECK (status IN ('awaiting', 'confirmed', 'defaulted')),
    tx_hash       TEXT          UNIQUE,
    created_at    TIMESTAMPTZ   NOT NULL DEFAULT now(),
    settled_at    TIMESTAMPTZ
);
CREATE INDEX payments_due ON payments (deadline) WHERE status = 'awaiting';
