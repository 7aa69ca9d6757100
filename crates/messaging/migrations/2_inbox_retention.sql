-- Each consumer deletes its inbox rows past `broker.inbox_retention`, oldest first: this index
-- lets it find them without reading every row it keeps.
CREATE INDEX IF NOT EXISTS inbox_by_age ON inbox (consumer, handled_at);
