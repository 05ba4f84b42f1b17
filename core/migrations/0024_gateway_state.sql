-- Ingest: the last state each site gateway reported about itself on its status topic (wire
-- contract revision 4): online or not, its buffer's fill, the entries its byte limit pushed out
-- (a gap in the data an operator must see), its clock's offset from the platform's, and how
-- many of its devices answer. One row per gateway, replaced by a newer report; a last will
-- (no state) changes only online, reason and ts, keeping the last known numbers.
CREATE TABLE gateway_state (
    gateway_id       int PRIMARY KEY REFERENCES gateways (id) ON DELETE CASCADE,
    ts               timestamptz NOT NULL,
    received_at      timestamptz NOT NULL,
    online           boolean NOT NULL,
    reason           text NOT NULL DEFAULT '',
    buffer_entries   bigint,
    buffer_bytes     bigint,
    buffer_max_bytes bigint,
    dropped          bigint,
    clock_offset_ms  bigint,
    devices          int,
    devices_online   int
);

GRANT SELECT, INSERT, UPDATE ON gateway_state TO shouwang_ingest;
-- The API reads it; only what gateways report writes it.
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON gateway_state FROM shouwang_api;
