-- The live stream's changes are also kept for a while, numbered, so a client that reconnects
-- (SSE Last-Event-ID) is sent what it missed before the live changes.
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

CREATE OR REPLACE FUNCTION api_log_change(
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

CREATE OR REPLACE FUNCTION api_notify_alarm() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM api_log_change('alarm', lower(TG_OP), NEW.id,
        (SELECT community_id FROM devices WHERE id = NEW.device_id), NULL, NEW.device_id,
        NEW.event_code, NEW.severity, NEW.state);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION api_notify_work_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM api_log_change('work_order', lower(TG_OP), NEW.id, NEW.community_id,
        NEW.maintenance_unit_id, NEW.device_id, NEW.event_code, NEW.severity, NEW.status);
    RETURN NULL;
END $$;
