-- The transactional outbox: events are written here in the same transaction as the business
-- change, and a relay publishes them to RabbitMQ afterwards.
CREATE TABLE outbox (
    position     BIGSERIAL   PRIMARY KEY,
    event_id     UUID        NOT NULL UNIQUE,
    routing_key  TEXT        NOT NULL,
    envelope     JSONB       NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at TIMESTAMPTZ
);

CREATE INDEX outbox_pending ON outbox (position) WHERE published_at IS NULL;

-- The inbox: one row per (consumer, event) handled, written in the handler's transaction so that
-- a redelivered event is recognised and skipped.
CREATE TABLE inbox (
    consumer   TEXT        NOT NULL,
    event_id   UUID        NOT NULL,
    event_type TEXT        NOT NULL,
    handled_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
