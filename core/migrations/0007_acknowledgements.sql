-- Single-use acknowledgement links: a token's id is recorded when used, so it works once.
CREATE TABLE ack_tokens_used (
    token_id    text PRIMARY KEY,
    alarm_id    bigint NOT NULL REFERENCES alarms (id),
    used_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    used_by     text NOT NULL
);
