-- Maintenance windows: a maintenance unit or the firm announces that it is working on devices
-- from starts_at to ends_at (lifecycle/maintenance.py holds the rules and bounds). Alarms of a
-- device that opened inside one of its windows are recorded and shown, but notify does not send
-- them and the SLA figures (api/sla.py users: the firm-performance report, the public
-- disclosure) do not count their work orders. Overlapping windows of a device combine.
--
-- kind: 'service' the scheduled service (elevators half-monthly 半月保, overdue after 15 days),
-- 'annual_inspection' the statutory periodic inspection, 'repair' a corrective visit,
-- 'fire_drill' a fire-system test or drill. A window closed early has ends_at moved to the
-- closing time (closed_at, closed_by); one closed before it started has ends_at = starts_at and
-- covers nothing. The visit it records (performer, work_done) gives the devices' last service
-- dates (device_last_service).
CREATE TABLE maintenance_windows (
    id                  bigserial PRIMARY KEY,
    community_id        int NOT NULL REFERENCES communities (id),
    kind                text NOT NULL CHECK (kind IN ('service', 'annual_inspection', 'repair',
                            'fire_drill')),
    starts_at           timestamptz NOT NULL,
    ends_at             timestamptz NOT NULL,
    maintenance_unit_id int REFERENCES maintenance_units (id),  -- NULL: the firm's own staff
    performer           text NOT NULL CHECK (length(performer) BETWEEN 1 AND 200),
    work_done           text NOT NULL DEFAULT '' CHECK (length(work_done) <= 2000),
    opened_by           text NOT NULL,
    opened_at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    closed_at           timestamptz,
    closed_by           text,
    CHECK (ends_at >= starts_at)
);
CREATE INDEX maintenance_windows_community ON maintenance_windows (community_id, starts_at DESC);

CREATE TABLE maintenance_window_devices (
    window_id   bigint NOT NULL REFERENCES maintenance_windows (id) ON DELETE CASCADE,
    device_id   int NOT NULL REFERENCES devices (id),
    PRIMARY KEY (window_id, device_id)
);
CREATE INDEX maintenance_window_devices_device ON maintenance_window_devices (device_id);

-- Whether a device was under maintenance at a time: inside [starts_at, ends_at) of any of its
-- windows (lifecycle.maintenance.covers says the same in Python).
CREATE FUNCTION device_in_maintenance(device int, at timestamptz) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM maintenance_window_devices m
        JOIN maintenance_windows w ON w.id = m.window_id
        WHERE m.device_id = device AND w.starts_at <= at AND at < w.ends_at)
$$;

-- The last visit per device and kind of window: the start of the latest window that has
-- started and covers some time (the notice board's service dates and overdue flags).
CREATE VIEW device_last_service AS
SELECT m.device_id, w.kind, max(w.starts_at) AS last_at
FROM maintenance_window_devices m JOIN maintenance_windows w ON w.id = m.window_id
WHERE w.starts_at <= now() AND w.ends_at > w.starts_at
GROUP BY m.device_id, w.kind;

-- The audit log: whose a change is. audit_record as in 0022_audit_log.sql, with a window's firm
-- and community from its community_id, and a window's device's from the device.
CREATE OR REPLACE FUNCTION audit_record() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    who text := nullif(current_setting('shouwang.actor', true), '');
    how text := nullif(current_setting('shouwang.via', true), '');
    token text := nullif(current_setting('shouwang.token_id', true), '');
    res text := CASE WHEN TG_TABLE_SCHEMA = 'public' THEN TG_TABLE_NAME
                     ELSE TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME END;
    o jsonb;
    n jsonb;
    b jsonb;
    a jsonb;
    r jsonb;
    key text;
    firms int[];
    f1 int;
    f2 int;
    community int;
    region int;
BEGIN
    IF who IS NULL THEN
        who := 'sql:' || session_user;
        how := 'sql';
    ELSIF how IS NULL OR how NOT IN ('api', 'cli') THEN
        how := 'sql';
    END IF;
    IF how <> 'api' OR token !~ '^[0-9]{1,9}$' THEN
        token := NULL;
    END IF;
    IF TG_OP = 'TRUNCATE' THEN
        INSERT INTO audit_log (actor, via, token_id, action, resource)
        VALUES (left(who, 300), how, token::int, 'truncate', res);
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN o := to_jsonb(OLD); END IF;
    IF TG_OP <> 'DELETE' THEN n := to_jsonb(NEW); END IF;
    IF TG_OP = 'UPDATE' THEN
        SELECT jsonb_object_agg(k, o -> k), jsonb_object_agg(k, n -> k) INTO b, a
        FROM jsonb_object_keys(n) AS k WHERE (o -> k) IS DISTINCT FROM (n -> k);
        IF b IS NULL THEN
            RETURN NULL;  -- nothing changed
        END IF;
    ELSE
        b := o;
        a := n;
    END IF;
    IF TG_ARGV[1] <> '' OR TG_ARGV[2] <> '' OR TG_ARGV[3] <> '' THEN
        b := audit_clean(b, string_to_array(TG_ARGV[1], ','), string_to_array(TG_ARGV[2], ','),
            string_to_array(TG_ARGV[3], ','));
        a := audit_clean(a, string_to_array(TG_ARGV[1], ','), string_to_array(TG_ARGV[2], ','),
            string_to_array(TG_ARGV[3], ','));
    END IF;
    r := coalesce(n, o);
    IF strpos(TG_ARGV[0], ',') = 0 THEN
        key := r ->> TG_ARGV[0];
    ELSE
        SELECT string_agg(r ->> c, '/') INTO key FROM unnest(string_to_array(TG_ARGV[0], ',')) c;
    END IF;
    -- Whose it is: the firm before (f1) and after (f2) the change, the community, the region.
    CASE res
    WHEN 'regions' THEN
        region := (r ->> 'id')::int;
    WHEN 'firms' THEN
        f1 := (r ->> 'id')::int;
    WHEN 'communities', 'work_orders', 'people', 'dash.firm_roles' THEN
        community := (r ->> CASE res WHEN 'communities' THEN 'id' ELSE 'community_id' END)::int;
        region := (r ->> 'region_id')::int;
        f1 := (o ->> 'firm_id')::int;
        f2 := (n ->> 'firm_id')::int;
    WHEN 'buildings', 'devices', 'gateways', 'duty_shifts', 'community_maintenance_units',
        'maintenance_windows' THEN
        community := (r ->> 'community_id')::int;
        IF o IS NOT NULL THEN
            SELECT c.firm_id INTO f1 FROM communities c WHERE c.id = (o ->> 'community_id')::int;
        END IF;
        IF n IS NOT NULL AND (o IS NULL OR n ->> 'community_id' <> o ->> 'community_id') THEN
            SELECT c.firm_id INTO f2 FROM communities c WHERE c.id = (n ->> 'community_id')::int;
        END IF;
    WHEN 'dash.region_roles' THEN
        region := (r ->> 'region_id')::int;
    WHEN 'alarms', 'maintenance_window_devices' THEN
        SELECT d.community_id, c.firm_id INTO community, f1
        FROM devices d JOIN communities c ON c.id = d.community_id
        WHERE d.id = (r ->> 'device_id')::int;
    WHEN 'contact_channels' THEN
        IF o IS NOT NULL THEN
            SELECT p.firm_id INTO f1 FROM people p WHERE p.id = (o ->> 'person_id')::int;
        END IF;
        IF n IS NOT NULL AND (o IS NULL OR n ->> 'person_id' <> o ->> 'person_id') THEN
            SELECT p.firm_id INTO f2 FROM people p WHERE p.id = (n ->> 'person_id')::int;
        END IF;
    WHEN 'mqtt_accounts' THEN
        IF r ->> 'device_id' IS NOT NULL THEN
            SELECT d.community_id, c.firm_id INTO community, f1
            FROM devices d JOIN communities c ON c.id = d.community_id
            WHERE d.id = (r ->> 'device_id')::int;
        ELSIF r ->> 'gateway_id' IS NOT NULL THEN
            SELECT g.community_id, c.firm_id INTO community, f1
            FROM gateways g JOIN communities c ON c.id = g.community_id
            WHERE g.id = (r ->> 'gateway_id')::int;
        ELSE
            SELECT p.firm_id INTO f1 FROM people p WHERE p.id = (r ->> 'person_id')::int;
        END IF;
    WHEN 'api_tokens' THEN
        community := (r ->> 'community_id')::int;
        region := (r ->> 'region_id')::int;
        f1 := (r ->> 'firm_id')::int;
        IF f1 IS NULL AND community IS NOT NULL THEN
            SELECT c.firm_id INTO f1 FROM communities c WHERE c.id = community;
        END IF;
    ELSE
        NULL;  -- maintenance units, the platform's roster and alarms, lists, calendars
    END CASE;
    firms := CASE WHEN f1 IS NULL AND f2 IS NULL THEN '{}'::int[]
                  WHEN f1 IS NULL OR f2 IS NULL OR f1 = f2 THEN ARRAY[coalesce(f1, f2)]
                  ELSE ARRAY[least(f1, f2), greatest(f1, f2)] END;
    INSERT INTO audit_log (actor, via, token_id, action, resource, resource_id, firm_ids,
        community_id, region_id, before, after)
    VALUES (left(who, 300), how, token::int, lower(TG_OP), res, key, firms, community, region,
        b, a);
    RETURN NULL;
END $$;


-- Privileges: the defaults of 0021_service_roles.sql (every stage reads; the API writes).
SELECT audit_attach('maintenance_windows', 'id', false);
SELECT audit_attach('maintenance_window_devices', 'window_id,device_id', false);
