-- Telemetry: readings, discrete events, device status, latest values and rejects.

CREATE TABLE readings (
    ts          timestamptz NOT NULL,
    device_id   int NOT NULL,
    metric_id   smallint NOT NULL,
    value       double precision NOT NULL
);
SELECT create_hypertable('readings', 'ts', chunk_time_interval => interval '1 day');
-- One reading per (device, metric, instant): redeliveries and duplicates are absorbed against it.
CREATE UNIQUE INDEX readings_identity ON readings (device_id, metric_id, ts DESC);
-- create_hypertable's default ts index is redundant next to the identity index for our queries.
DROP INDEX IF EXISTS readings_ts_idx;

CREATE TABLE events (
    ts          timestamptz NOT NULL,
    device_id   int NOT NULL,
    code        text NOT NULL,
    active      boolean NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}',
    received_at timestamptz NOT NULL DEFAULT now()
);
SELECT create_hypertable('events', 'ts', chunk_time_interval => interval '7 days');
CREATE UNIQUE INDEX events_identity ON events (device_id, code, ts DESC);

CREATE TABLE device_status (
    ts          timestamptz NOT NULL,
    device_id   int NOT NULL,
    online      boolean NOT NULL,
    reason      text NOT NULL DEFAULT ''
);
SELECT create_hypertable('device_status', 'ts', chunk_time_interval => interval '7 days');
CREATE UNIQUE INDEX device_status_identity ON device_status (device_id, ts DESC, online);

-- Current state of every device: its latest value per metric ...
CREATE TABLE latest_readings (
    device_id   int NOT NULL,
    metric_id   smallint NOT NULL,
    ts          timestamptz NOT NULL,
    value       double precision NOT NULL,
    PRIMARY KEY (device_id, metric_id)
);

-- ... and when it was last heard from, and whether it says it is online.
CREATE TABLE device_presence (
    device_id   int PRIMARY KEY,
    last_seen   timestamptz NOT NULL,
    online      boolean NOT NULL DEFAULT true,
    status_ts   timestamptz
);

CREATE TABLE rejects (
    received_at timestamptz NOT NULL,
    topic       text NOT NULL,
    device_uid  text,
    reason      text NOT NULL,
    detail      text NOT NULL,
    payload     bytea NOT NULL,
    payload_size int NOT NULL
);
SELECT create_hypertable('rejects', 'received_at', chunk_time_interval => interval '1 day');
CREATE INDEX rejects_reason ON rejects (reason, received_at DESC);
