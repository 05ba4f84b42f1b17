-- The community notice board (公示栏) the county plan asks of every community, shown in public
-- at /board/{community code} (api/pages/board.py, docs/pages.md): the property firm's project
-- lead and complaint phone, the service content and its fees, the elevator and fire maintenance
-- units with their contacts, and elevator maintenance spending per period. The firm sets it
-- (api/routes/notice_board.py; the API validates every field and these checks hold the bounds).
-- Everything here is published: a field the plan does not ask to be public has no column.

-- One board per community. complaint_phone NULL: the firm's complaint phone (firms).
CREATE TABLE notice_boards (
    community_id        int PRIMARY KEY REFERENCES communities (id) ON DELETE CASCADE,
    project_lead_name   text NOT NULL CHECK (length(project_lead_name) BETWEEN 1 AND 50),
    project_lead_phone  text NOT NULL CHECK (length(project_lead_phone) BETWEEN 3 AND 20),
    complaint_phone     text CHECK (length(complaint_phone) BETWEEN 3 AND 20),
    service_content_zh  text NOT NULL DEFAULT '' CHECK (length(service_content_zh) <= 1000),
    service_content_en  text NOT NULL DEFAULT '' CHECK (length(service_content_en) <= 2000),
    updated_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_by          text NOT NULL
);

-- The service fees, in the order shown. unit: what the amount is per (api/pages/board_view.py
-- names them): yuan per m² of floor area a month, per household a month, per parking space a
-- month, per month, per year, per visit, per hour, per kWh, per m³.
CREATE TABLE notice_board_fees (
    community_id    int NOT NULL REFERENCES notice_boards (community_id) ON DELETE CASCADE,
    position        smallint NOT NULL CHECK (position BETWEEN 1 AND 50),
    item_zh         text NOT NULL CHECK (length(item_zh) BETWEEN 1 AND 100),
    item_en         text NOT NULL DEFAULT '' CHECK (length(item_en) <= 200),
    amount_cny      numeric(12, 2) NOT NULL CHECK (amount_cny >= 0),
    unit            text NOT NULL CHECK (unit IN ('m2_month', 'household_month', 'space_month',
                        'month', 'year', 'visit', 'hour', 'kwh', 'm3')),
    note            text NOT NULL DEFAULT '' CHECK (length(note) <= 200),
    PRIMARY KEY (community_id, position)
);

-- The contact the maintenance unit under contract for a community (community_maintenance_units)
-- gives for it, per kind. Shown only while that unit is still the one under contract, so a new
-- contract never shows the old unit's contact.
CREATE TABLE notice_board_contacts (
    community_id        int NOT NULL REFERENCES notice_boards (community_id) ON DELETE CASCADE,
    kind                text NOT NULL CHECK (kind IN ('elevator', 'fire', 'water')),
    maintenance_unit_id int NOT NULL REFERENCES maintenance_units (id) ON DELETE CASCADE,
    contact_name        text NOT NULL CHECK (length(contact_name) BETWEEN 1 AND 50),
    contact_phone       text NOT NULL CHECK (length(contact_phone) BETWEEN 3 AND 20),
    PRIMARY KEY (community_id, kind)
);

-- Elevator maintenance spending the firm publishes per period: a month, a quarter or a year
-- (period_end exclusive), in yuan.
CREATE TABLE elevator_spending (
    community_id    int NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    period_start    date NOT NULL,
    period_end      date NOT NULL,
    amount_cny      numeric(12, 2) NOT NULL CHECK (amount_cny >= 0),
    note            text NOT NULL DEFAULT '' CHECK (length(note) <= 200),
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_by      text NOT NULL,
    PRIMARY KEY (community_id, period_start),
    CHECK (period_end > period_start)
);

-- The audit log: whose a change is. audit_record as in 0030_maintenance_windows.sql, with the
-- notice board's tables placed by their community_id.
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
        'maintenance_windows', 'notice_boards', 'notice_board_fees', 'notice_board_contacts',
        'elevator_spending' THEN
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
SELECT audit_attach('notice_boards', 'community_id', false);
SELECT audit_attach('notice_board_fees', 'community_id,position', false);
SELECT audit_attach('notice_board_contacts', 'community_id,kind', false);
SELECT audit_attach('elevator_spending', 'community_id,period_start', false);
