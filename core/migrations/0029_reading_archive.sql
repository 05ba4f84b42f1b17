-- Readings at rest: the archive of readings older than SHOUWANG_ARCHIVE_AFTER_DAYS
-- (ingest/archive.py).
--
-- Where TimescaleDB has native compression (its community edition), ingest configures that on
-- `readings` instead and this table stays empty. Its Apache edition has none, so ingest's archive
-- pass rewrites each `readings` chunk (a UTC day) past the age into one row per device, metric
-- and hour (or day, below), in one transaction with dropping the chunk: a reading is in
-- `readings` or here, never both and never neither. A late reading for an archived hour lands in
-- `readings` again (a new chunk for its day) and the next pass merges it into the day's rows.
--
-- A row holds its n readings in time order, reading i (from 0) given as a straight line plus a
-- correction, in arrays that PostgreSQL compresses (TOAST):
--   time   first_ts + round(i * ts_slope) + ts_off[i] microseconds; ts_slope is the mean step, so
--          a steady reporting interval leaves corrections of a few milliseconds at most;
--   value  when every value is a decimal with at most `scale` digits (the devices' own rounding):
--          (v0 + round(i * v_slope) + v_off[i]) / 10^scale, all integers but the slope, so a
--          steady or steadily rising value leaves small corrections;
--          when they are not (scale NULL), the values as they are in raw.
-- Both are direct (no running sums), so reading a row back costs one pass over its arrays.
-- Decoding gives back each value: ingest checks round(v * 10^s) / 10^s = v before it chooses a
-- scale, and readings_archive_unpack computes the same expression (-0 comes back as 0).
CREATE TABLE readings_archive (
    device_id   int NOT NULL,
    metric_id   smallint NOT NULL,
    period      timestamptz NOT NULL,  -- the hour, or the UTC day
    first_ts    timestamptz NOT NULL,
    last_ts     timestamptz NOT NULL,
    n           int NOT NULL CHECK (n > 0),
    ts_slope    float8 NOT NULL,
    ts_off      bigint[] NOT NULL,
    scale       smallint CHECK (scale BETWEEN 0 AND 6),
    v0          bigint,
    v_slope     float8,
    v_off       bigint[],
    raw         float8[],
    PRIMARY KEY (device_id, metric_id, period),
    CHECK ((scale IS NULL) = (v_off IS NULL) AND (scale IS NULL) = (raw IS NOT NULL))
);
-- PostgreSQL compresses a row's arrays only once the row passes about 2 kB: a row holds an hour
-- of a metric that reports every 15 s or more often, else its whole UTC day. Compressed arrays
-- stay in the row (storage MAIN: out of line only past a page), which saves a TOAST row and
-- index entry each.
ALTER TABLE readings_archive SET (toast_tuple_target = 128);
ALTER TABLE readings_archive ALTER COLUMN ts_off SET STORAGE MAIN,
    ALTER COLUMN v_off SET STORAGE MAIN, ALTER COLUMN raw SET STORAGE MAIN;
-- Ranges over every device (the rollup's refills) find their hours without the primary key.
CREATE INDEX readings_archive_period ON readings_archive USING brin (period);
ALTER TABLE readings_archive OWNER TO shouwang_telemetry;
REVOKE INSERT, UPDATE, DELETE ON readings_archive FROM shouwang_api;
GRANT SELECT ON readings_archive TO shouwang_analytics, shouwang_notify, shouwang_api;

-- One archive row's readings, in time order.
CREATE FUNCTION readings_archive_unpack(
    first_ts timestamptz, ts_slope float8, ts_off bigint[],
    scale smallint, v0 bigint, v_slope float8, v_off bigint[], raw float8[]
) RETURNS TABLE (ts timestamptz, value float8)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT first_ts + interval '1 microsecond' * (round((x.o - 1) * ts_slope)::bigint + x.t),
           CASE WHEN scale IS NULL THEN x.r
                ELSE (v0 + round((x.o - 1) * v_slope)::bigint + x.v)::float8
                     / 10::float8 ^ scale END
    FROM unnest(ts_off, v_off, raw) WITH ORDINALITY AS x (t, v, r, o)
$$;

-- Every reading from lo (inclusive) to hi (exclusive), recent and archived alike: what a query over
-- a time range reads instead of `readings`. An SQL function that PostgreSQL inlines, so a
-- caller's conditions on device_id and metric_id reach both tables' indexes; an archive row is
-- unpacked only when its hour or day overlaps the range.
CREATE FUNCTION readings_between(lo timestamptz, hi timestamptz)
RETURNS TABLE (ts timestamptz, device_id int, metric_id smallint, value float8)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT r.ts, r.device_id, r.metric_id, r.value FROM readings r WHERE r.ts >= lo AND r.ts < hi
    UNION ALL
    SELECT u.ts, a.device_id, a.metric_id, u.value
    FROM readings_archive a,
         LATERAL readings_archive_unpack(a.first_ts, a.ts_slope, a.ts_off,
                                         a.scale, a.v0, a.v_slope, a.v_off, a.raw) u
    WHERE a.period > lo - interval '1 day' AND a.period < hi
      AND a.last_ts >= lo AND a.first_ts < hi
      AND u.ts >= lo AND u.ts < hi
$$;

-- All readings, for the queries that name no time range (kept short by their own conditions).
-- Tables named in a view are read with its owner's rights (dash.readings' logins may not read
-- `readings` itself), those in a function with the caller's: so the union is spelled out here.
CREATE VIEW readings_all AS
SELECT r.ts, r.device_id, r.metric_id, r.value FROM readings r
UNION ALL
SELECT u.ts, a.device_id, a.metric_id, u.value
FROM readings_archive a,
     LATERAL readings_archive_unpack(a.first_ts, a.ts_slope, a.ts_off,
                                     a.scale, a.v0, a.v_slope, a.v_off, a.raw) u;
GRANT SELECT ON readings_all TO shouwang_ingest, shouwang_analytics, shouwang_notify, shouwang_api;

CREATE OR REPLACE VIEW dash.readings WITH (security_barrier) AS
SELECT r.ts, d.uid AS device, d.device_class, r.metric_id, m.name AS metric, r.value
FROM readings_all r
JOIN devices d ON d.id = r.device_id
LEFT JOIN metrics m ON m.id = r.metric_id
WHERE d.community_id IN (SELECT community_id FROM dash.scope);
