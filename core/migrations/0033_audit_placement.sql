-- The audit log's placement of a change (whose it is: firm, community, region) read from a
-- table instead of written into audit_record: auditing a new table is audit_attach and one row
-- here, where 0030 had to re-create the whole function to add a table's name.
--
-- placed_by: region (the row is a region), firm (the row is a firm), own_firm (the row carries
-- firm_id, community_id or is the community, and region_id), firm_id (the row's firm_id, before
-- and after), community_id (the row's
-- community_id; the firm is that community's, before and after), region_id (the row's region_id),
-- device_id (the device's community and firm), person_id (the person's firm, before and after),
-- mqtt_account (a device's, a gateway's or a person's account), api_token (the token's own
-- scope). A table without a row is the platform's own: no firm, community or region.
CREATE TABLE audit_placement (
    resource    text PRIMARY KEY,  -- as audit_log.resource: schema-qualified outside public
    placed_by   text NOT NULL CHECK (placed_by IN ('region', 'firm', 'own_firm', 'firm_id',
                    'community_id', 'region_id', 'device_id', 'person_id', 'mqtt_account',
                    'api_token'))
);
REVOKE ALL ON audit_placement FROM PUBLIC;

INSERT INTO audit_placement (resource, placed_by) VALUES
    ('regions', 'region'),
    ('firms', 'firm'),
    ('communities', 'own_firm'),
    ('work_orders', 'own_firm'),
    ('people', 'own_firm'),
    ('dash.firm_roles', 'own_firm'),
    ('buildings', 'community_id'),
    ('devices', 'community_id'),
    ('gateways', 'community_id'),
    ('duty_shifts', 'community_id'),
    ('community_maintenance_units', 'community_id'),
    ('maintenance_windows', 'community_id'),
    ('notice_boards', 'community_id'),
    ('notice_board_fees', 'community_id'),
    ('notice_board_contacts', 'community_id'),
    ('elevator_spending', 'community_id'),
    ('dash.region_roles', 'region_id'),
    ('alarms', 'device_id'),
    ('maintenance_window_devices', 'device_id'),
    ('contact_channels', 'person_id'),
    ('mqtt_accounts', 'mqtt_account'),
    ('api_tokens', 'api_token'),
    -- audited before, never placed: their firm admins did not see these changes
    ('phone_accounts', 'firm_id'),
    ('person_logins', 'person_id'),
    ('page_sessions', 'person_id'),
    ('platform_shifts', 'person_id'),
    ('work_order_arrivals', 'person_id');

-- The trigger as in 0030_maintenance_windows.sql but for the placement, read from audit_placement.
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
    placed text;
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
    -- Whose it is: the firm before (f1) and after (f2) the change, the community, the region,
    -- by how audit_placement says this table's rows are placed.
    SELECT p.placed_by INTO placed FROM audit_placement p WHERE p.resource = res;
    CASE placed
    WHEN 'region' THEN
        region := (r ->> 'id')::int;
    WHEN 'firm' THEN
        f1 := (r ->> 'id')::int;
    WHEN 'own_firm' THEN
        community := (r ->> CASE res WHEN 'communities' THEN 'id' ELSE 'community_id' END)::int;
        region := (r ->> 'region_id')::int;
        f1 := (o ->> 'firm_id')::int;
        f2 := (n ->> 'firm_id')::int;
    WHEN 'firm_id' THEN
        f1 := (o ->> 'firm_id')::int;
        f2 := (n ->> 'firm_id')::int;
    WHEN 'community_id' THEN
        community := (r ->> 'community_id')::int;
        IF o IS NOT NULL THEN
            SELECT c.firm_id INTO f1 FROM communities c WHERE c.id = (o ->> 'community_id')::int;
        END IF;
        IF n IS NOT NULL AND (o IS NULL OR n ->> 'community_id' <> o ->> 'community_id') THEN
            SELECT c.firm_id INTO f2 FROM communities c WHERE c.id = (n ->> 'community_id')::int;
        END IF;
    WHEN 'region_id' THEN
        region := (r ->> 'region_id')::int;
    WHEN 'device_id' THEN
        SELECT d.community_id, c.firm_id INTO community, f1
        FROM devices d JOIN communities c ON c.id = d.community_id
        WHERE d.id = (r ->> 'device_id')::int;
    WHEN 'person_id' THEN
        IF o IS NOT NULL THEN
            SELECT p.firm_id INTO f1 FROM people p WHERE p.id = (o ->> 'person_id')::int;
        END IF;
        IF n IS NOT NULL AND (o IS NULL OR n ->> 'person_id' <> o ->> 'person_id') THEN
            SELECT p.firm_id INTO f2 FROM people p WHERE p.id = (n ->> 'person_id')::int;
        END IF;
    WHEN 'mqtt_account' THEN
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
    WHEN 'api_token' THEN
        community := (r ->> 'community_id')::int;
        region := (r ->> 'region_id')::int;
        f1 := (r ->> 'firm_id')::int;
        IF f1 IS NULL AND community IS NOT NULL THEN
            SELECT c.firm_id INTO f1 FROM communities c WHERE c.id = community;
        END IF;
    ELSE
        NULL;  -- no row in audit_placement: the platform's own (units, lists, calendars...)
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
