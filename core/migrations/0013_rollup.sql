-- Per-minute rollup of readings, for dashboards and reports over hours and days: one row per
-- device, metric and minute with count, sum, min, max and the minute's first and last values.
-- analytics/rollup.py keeps it: the last few minutes are recomputed on every pass, and minutes
-- that ingest marks in rollup_dirty (late readings) are recomputed when it next runs.
CREATE TABLE readings_1m (
    bucket      timestamptz NOT NULL,
    device_id   int NOT NULL,
    metric_id   smallint NOT NULL,
    n           int NOT NULL,
    sum         double precision NOT NULL,
    min         double precision NOT NULL,
    max         double precision NOT NULL,
    first       double precision NOT NULL,
    last        double precision NOT NULL,
    PRIMARY KEY (device_id, metric_id, bucket)
);
SELECT create_hypertable('readings_1m', 'bucket', chunk_time_interval => interval '7 days');
CREATE INDEX readings_1m_metric ON readings_1m (metric_id, bucket);
-- Each device reports only its class's metrics: tell the planner, or it guesses every pair.
CREATE STATISTICS readings_1m_device_metric (dependencies, ndistinct)
    ON device_id, metric_id FROM readings_1m;

-- Time ranges over every device: a BRIN index is nearly free to keep on time-ordered inserts.
CREATE INDEX readings_ts_brin ON readings USING brin (ts) WITH (pages_per_range = 16);

-- Minutes that received readings after the rollup had passed them.
CREATE TABLE rollup_dirty (
    bucket      timestamptz PRIMARY KEY
);

-- How far the rollup has gone: minutes before done_until are final unless marked dirty.
CREATE TABLE rollup_state (
    one         boolean PRIMARY KEY DEFAULT true CHECK (one),
    done_until  timestamptz NOT NULL
);

CREATE VIEW dash.readings_1m WITH (security_barrier) AS
SELECT r.bucket, d.uid AS device, d.device_class, r.metric_id, m.name AS metric, r.n,
       r.sum / r.n AS avg, r.min, r.max, r.first, r.last
FROM readings_1m r
JOIN devices d ON d.id = r.device_id
LEFT JOIN metrics m ON m.id = r.metric_id
WHERE d.community_id IN (SELECT community_id FROM dash.scope);
GRANT SELECT ON dash.readings_1m TO shouwang_dashboards;
