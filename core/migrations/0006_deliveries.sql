-- Every attempt to deliver a notification, and at most one accepted delivery per channel.
CREATE TABLE deliveries (
    id              bigserial PRIMARY KEY,
    outbox_id       bigint NOT NULL REFERENCES outbox (id),
    person_id       int REFERENCES people (id),
    channel_id      int NOT NULL REFERENCES contact_channels (id),
    attempt         int NOT NULL,
    status          text NOT NULL CHECK (status IN ('accepted', 'failed')),
    http_status     int,
    error           text NOT NULL DEFAULT '',
    latency_ms      double precision NOT NULL,
    at              timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE UNIQUE INDEX deliveries_accepted_once ON deliveries (outbox_id, channel_id) WHERE status = 'accepted';
ALTER TABLE outbox ADD COLUMN attempts int NOT NULL DEFAULT 0;
