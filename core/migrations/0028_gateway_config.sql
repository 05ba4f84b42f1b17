-- Site gateways, remote configuration and their own trouble (wire contract revision 5).
--
-- The networks a site gateway's devices may sit on are part of its registration: a pushed site
-- config may reach nothing outside them (checked by the platform before it sends the config, and
-- by the gateway before it applies it). An IP network in CIDR form (192.168.10.0/24) or a serial
-- port (/dev/ttyUSB0). Empty: nothing is declared, and no config can be pushed.
ALTER TABLE gateways ADD COLUMN networks text[] NOT NULL DEFAULT '{}'
    CHECK (cardinality(networks) <= 256);

-- Every config pushed to a gateway, versioned per gateway, and the gateway's answer: applied, or
-- refused with its problems. Ingest records the answer (``sw/v1/g/{gateway}/config``).
CREATE TABLE gateway_configs (
    id           bigserial PRIMARY KEY,
    gateway_id   int NOT NULL REFERENCES gateways (id) ON DELETE CASCADE,
    version      int NOT NULL CHECK (version > 0),
    config       text NOT NULL,
    networks     text[] NOT NULL,              -- the registration's, as sent with the config
    pushed_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    pushed_by    text NOT NULL,
    state        text NOT NULL DEFAULT 'pushed' CHECK (state IN ('pushed', 'applied', 'refused')),
    errors       jsonb NOT NULL DEFAULT '[]',
    answered_at  timestamptz,
    UNIQUE (gateway_id, version)
);

-- The config version a gateway runs, as its state reports it.
ALTER TABLE gateway_state ADD COLUMN config_version bigint;

GRANT SELECT, UPDATE ON gateway_configs TO shouwang_ingest;

-- Ingest raises (and clears) the platform alarms a gateway's own state calls for:
-- 'gateway_dropped' (subject: the gateway uid): its buffer's byte limit pushed out data that the
-- platform never received, a gap in the data; cleared once its backlog is down again.
-- 'gateway_clock' (subject: the gateway uid): its clock is off the platform's by more than the
-- platform's timestamp window (ingest_max_future_seconds); cleared once it is back within.
ALTER TABLE platform_alarms DROP CONSTRAINT platform_alarms_kind_check;
ALTER TABLE platform_alarms ADD CONSTRAINT platform_alarms_kind_check CHECK (kind IN (
    'feed_silent', 'mass_silence', 'detector_quarantined', 'stage_restarted', 'model_drift',
    'gateway_dropped', 'gateway_clock'));
GRANT SELECT, INSERT, UPDATE ON platform_alarms TO shouwang_ingest;

-- The audit log: who declared a site's networks and who pushed which config (its text by length).
SELECT audit_attach('gateways', 'id', false);
SELECT audit_attach('gateway_configs', 'id', true, texts => '{config}');
