-- HTTP API: bearer tokens, work-order comments, and change notifications for the live stream.

-- A token's secret is shown once when issued; only its SHA-256 digest is kept. Each role has
-- exactly the scope columns it needs (see docs/api.md).
CREATE TABLE api_tokens (
    id                  serial PRIMARY KEY,
    token_hash          bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    role                text NOT NULL CHECK (role IN ('county_regulator', 'township', 'firm_admin',
                            'duty_staff', 'maintenance_unit')),
    name                text NOT NULL CHECK (name <> ''),
    region_id           int REFERENCES regions (id),
    firm_id             int REFERENCES firms (id),
    community_id        int REFERENCES communities (id),
    maintenance_unit_id int REFERENCES maintenance_units (id),
    created_at          timestamptz NOT NULL DEFAULT now(),
    revoked_at          timestamptz,
    CHECK (CASE role
        WHEN 'county_regulator' THEN firm_id IS NULL AND community_id IS NULL
            AND maintenance_unit_id IS NULL
        WHEN 'township' THEN region_id IS NOT NULL AND firm_id IS NULL AND community_id IS NULL
            AND maintenance_unit_id IS NULL
        WHEN 'firm_admin' THEN firm_id IS NOT NULL AND region_id IS NULL AND community_id IS NULL
            AND maintenance_unit_id IS NULL
        WHEN 'duty_staff' THEN (firm_id IS NULL) <> (community_id IS NULL) AND region_id IS NULL
            AND maintenance_unit_id IS NULL
        WHEN 'maintenance_unit' THEN maintenance_unit_id IS NOT NULL AND region_id IS NULL
            AND firm_id IS NULL AND community_id IS NULL
    END)
);

CREATE TABLE work_order_comments (
    id              bigserial PRIMARY KEY,
    work_order_id   bigint NOT NULL REFERENCES work_orders (id),
    author          text NOT NULL,
    token_id        int REFERENCES api_tokens (id),
    body            text NOT NULL CHECK (body <> ''),
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX work_order_comments_order ON work_order_comments (work_order_id, id);

CREATE INDEX alarms_device ON alarms (device_id, id DESC);
CREATE INDEX work_orders_community ON work_orders (community_id, id DESC);
CREATE INDEX work_orders_unit ON work_orders (maintenance_unit_id, id DESC);
CREATE INDEX outbox_community ON outbox (community_id, id DESC);

-- Every committed change of an alarm or work order is numbered in change_log (kept 7 days, so
-- a stream client that reconnects is sent what it missed) and announced on channel
-- 'shouwang_changes' (delivered at commit); the API's /v1/stream fans it out to the callers whose
-- scope covers it.
CREATE TABLE change_log (
    seq                 bigserial PRIMARY KEY,
    at                  timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind                text NOT NULL CHECK (kind IN ('alarm', 'work_order')),
    op                  text NOT NULL,
    id                  bigint NOT NULL,
    community_id        int,
    maintenance_unit_id int,
    device_id           int NOT NULL,
    event_code          text NOT NULL,
    severity            text NOT NULL,
    state               text NOT NULL
);
CREATE INDEX change_log_at ON change_log (at);

CREATE FUNCTION api_log_change(
    kind text, op text, id bigint, community int, unit int, device int, code text, sev text,
    state text
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    INSERT INTO change_log (kind, op, id, community_id, maintenance_unit_id, device_id,
        event_code, severity, state)
    VALUES (kind, op, id, community, unit, device, code, sev, state) RETURNING seq INTO n;
    PERFORM pg_notify('shouwang_changes', json_build_object(
        'seq', n, 'kind', kind, 'op', op, 'id', id, 'community_id', community,
        'maintenance_unit_id', unit, 'device_id', device, 'event_code', code, 'severity', sev,
        'state', state)::text);
END $$;

CREATE FUNCTION api_notify_alarm() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM api_log_change('alarm', lower(TG_OP), NEW.id,
        (SELECT community_id FROM devices WHERE id = NEW.device_id), NULL, NEW.device_id,
        NEW.event_code, NEW.severity, NEW.state);
    RETURN NULL;
END $$;

CREATE FUNCTION api_notify_work_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM api_log_change('work_order', lower(TG_OP), NEW.id, NEW.community_id,
        NEW.maintenance_unit_id, NEW.device_id, NEW.event_code, NEW.severity, NEW.status);
    RETURN NULL;
END $$;

CREATE TRIGGER alarms_notify AFTER INSERT OR UPDATE ON alarms
    FOR EACH ROW EXECUTE FUNCTION api_notify_alarm();
CREATE TRIGGER work_orders_notify AFTER INSERT OR UPDATE ON work_orders
    FOR EACH ROW EXECUTE FUNCTION api_notify_work_order();
