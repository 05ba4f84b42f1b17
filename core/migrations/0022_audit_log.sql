-- The audit log: every change to the registry, credentials, the roster and its channels, API
-- tokens, list and calendar versions, dashboard logins, and the alarm and work-order state a
-- person sets, with who made it, when, and the row before and after (docs/operations.md,
-- section 16, "Audit log").
--
-- Row triggers write it, so no path that changes these tables can forget to: the API, the CLI,
-- and SQL typed by hand alike. The caller names itself on its connection (core/audit.py):
--   shouwang.actor     who, e.g. 'Wang (firm_admin, token 12)' or 'cli:alice'
--   shouwang.via       'api' or 'cli' (anything else is recorded as 'sql')
--   shouwang.token_id  the API token, for via = 'api'
-- A session that names nobody is recorded as 'sql:<its login role>'. Alarms, work orders and
-- platform alarms are recorded only for a named actor: analytics changes them all the time
-- (re-triggers, clearing, escalation), and those changes have their own trail (the alarm's
-- columns, work_order_transitions).
--
-- Secrets never enter the log: a column whose name says password, secret, hash, passphrase,
-- private_key or api_key is shown as '(redacted)' (or null when it is null), so a rotation is
-- visible and its value is not; a contact channel's address that is a URL (webhooks and robots:
-- credentials in themselves) keeps its scheme and host only; a list's or a calendar's content
-- is replaced by its length (the table keeps every version). An update records only the columns
-- it changed; one that changes nothing is not recorded; a TRUNCATE is one entry.
--
-- A migration that adds a table to audit, or a column to an audited one, calls audit_attach
-- (below) for it; tests/core/test_audit_log.py checks that every secret column is known.
--
-- Nobody but these functions writes the log: the API may read it and nothing else; analytics
-- and notify may not read it (it holds the roster). audit_log_prune deletes what is past
-- retention, never less than 180 days (the Cybersecurity Law's minimum for network logs), and
-- is what ingest's hourly retention pass calls (SHOUWANG_AUDIT_RETENTION_DAYS).

CREATE TABLE audit_log (
    id              bigserial PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    xact            bigint NOT NULL DEFAULT txid_current(), -- changes made together share it
    actor           text NOT NULL,
    via             text NOT NULL CHECK (via IN ('api', 'cli', 'sql')),
    token_id        int,                    -- the API token (no foreign key: the log outlives it)
    db_role         text NOT NULL DEFAULT session_user,
    action          text NOT NULL CHECK (action IN ('insert', 'update', 'delete', 'truncate')),
    resource        text NOT NULL,          -- the table
    resource_id     text,                   -- the row's key; null for a truncate
    firm_ids        int[] NOT NULL DEFAULT '{}', -- the firms whose admins read it (before, after)
    community_id    int,
    region_id       int,
    before          jsonb,
    after           jsonb
);
-- Entries arrive in time order: a BRIN index serves retention and time ranges nearly for free.
CREATE INDEX audit_log_at ON audit_log USING brin (at);
CREATE INDEX audit_log_firms ON audit_log USING gin (firm_ids);
CREATE INDEX audit_log_resource ON audit_log (resource, resource_id, id);

-- A row image as the log keeps it: the secrets redacted, the URLs cut to scheme and host, the
-- long texts (a list's or a calendar's content: the table keeps every version) replaced by
-- their length.
CREATE FUNCTION audit_clean(j jsonb, secrets text[], urls text[], texts text[]) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    c text;
BEGIN
    IF j IS NULL THEN
        RETURN NULL;
    END IF;
    FOREACH c IN ARRAY secrets LOOP
        IF coalesce(j -> c, 'null') <> 'null' THEN
            j := jsonb_set(j, ARRAY[c], '"(redacted)"');
        END IF;
    END LOOP;
    FOREACH c IN ARRAY urls LOOP
        IF jsonb_typeof(j -> c) = 'string' AND j ->> c ~ '^[A-Za-z][A-Za-z0-9+.-]*:' THEN
            j := jsonb_set(j, ARRAY[c], to_jsonb(coalesce(array_to_string(regexp_match(j ->> c,
                '^([A-Za-z][A-Za-z0-9+.-]*://)(?:[^/?#]*@)?([^/?#@]*)'), '') || '/',
                split_part(j ->> c, ':', 1) || ':') || '…'));
        END IF;
    END LOOP;
    FOREACH c IN ARRAY texts LOOP
        IF jsonb_typeof(j -> c) = 'string' THEN
            j := jsonb_set(j, ARRAY[c], to_jsonb(format('(%s characters)', length(j ->> c))));
        END IF;
    END LOOP;
    RETURN j;
END $$;

-- The trigger. Its arguments (audit_attach writes them): the key column(s), comma-separated,
-- then the secret, URL and long-text columns, each list comma-separated ('' for none).
CREATE FUNCTION audit_record() RETURNS trigger
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
    WHEN 'buildings', 'devices', 'gateways', 'duty_shifts', 'community_maintenance_units' THEN
        community := (r ->> 'community_id')::int;
        IF o IS NOT NULL THEN
            SELECT c.firm_id INTO f1 FROM communities c WHERE c.id = (o ->> 'community_id')::int;
        END IF;
        IF n IS NOT NULL AND (o IS NULL OR n ->> 'community_id' <> o ->> 'community_id') THEN
            SELECT c.firm_id INTO f2 FROM communities c WHERE c.id = (n ->> 'community_id')::int;
        END IF;
    WHEN 'dash.region_roles' THEN
        region := (r ->> 'region_id')::int;
    WHEN 'alarms' THEN
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

-- (Re)attach the audit triggers to a table: key, the column(s) naming a row; only_named: record
-- only changes by a named actor (the WHEN is checked without calling the function); urls and
-- texts: columns to cut to scheme and host, and to replace by their length. The secret columns
-- are read from the table as it is now: a migration that adds a column to an audited table
-- calls this again (tests/core/test_audit_log.py checks that none is missed).
CREATE FUNCTION audit_attach(tbl regclass, key text, only_named boolean,
    urls text[] DEFAULT '{}', texts text[] DEFAULT '{}') RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
DECLARE
    secrets text;
    named text := CASE WHEN only_named
        THEN ' WHEN (current_setting(''shouwang.actor'', true) <> '''')' ELSE '' END;
BEGIN
    SELECT coalesce(string_agg(attname, ',' ORDER BY attnum), '') INTO secrets
    FROM pg_attribute WHERE attrelid = tbl AND attnum > 0 AND NOT attisdropped
        AND attname ~* '(^|_)(password|passwd|secret|hash|passphrase|private_key|api_key)(_|$)';
    EXECUTE format('DROP TRIGGER IF EXISTS audit ON %s', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS audit_truncate ON %s', tbl);
    EXECUTE format('CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON %s'
        ' FOR EACH ROW%s EXECUTE FUNCTION audit_record(%L, %L, %L, %L)', tbl, named, key,
        secrets, array_to_string(urls, ','), array_to_string(texts, ','));
    EXECUTE format('CREATE TRIGGER audit_truncate AFTER TRUNCATE ON %s'
        ' FOR EACH STATEMENT%s EXECUTE FUNCTION audit_record(%L, '''', '''', '''')', tbl, named,
        key);
END $$;

SELECT audit_attach('regions', 'id', false);
SELECT audit_attach('firms', 'id', false);
SELECT audit_attach('maintenance_units', 'id', false);
SELECT audit_attach('communities', 'id', false);
SELECT audit_attach('buildings', 'id', false);
SELECT audit_attach('gateways', 'id', false);
SELECT audit_attach('devices', 'id', false);
SELECT audit_attach('community_maintenance_units', 'community_id,kind', false);
SELECT audit_attach('mqtt_accounts', 'username', false);
SELECT audit_attach('people', 'id', false);
SELECT audit_attach('contact_channels', 'id', false, urls => '{address}');
SELECT audit_attach('duty_shifts', 'id', false);
SELECT audit_attach('platform_shifts', 'id', false);
SELECT audit_attach('api_tokens', 'id', false);
SELECT audit_attach('responsibility_lists', 'version', false, texts => '{content}');
SELECT audit_attach('holiday_schedules', 'id', false, texts => '{content}');
SELECT audit_attach('dash.firm_roles', 'role_name', false);
SELECT audit_attach('dash.region_roles', 'role_name', false);
SELECT audit_attach('alarms', 'id', true);
SELECT audit_attach('work_orders', 'id', true);
SELECT audit_attach('platform_alarms', 'id', true);

-- Retention: what is older than keep_days (at least 180), at most max_rows a call, oldest first.
CREATE FUNCTION audit_log_prune(keep_days int, max_rows int DEFAULT 50000) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    n bigint;
BEGIN
    IF keep_days IS NULL OR keep_days < 180 THEN
        RAISE EXCEPTION 'the audit log is kept at least 180 days, not %', keep_days
            USING HINT = 'set SHOUWANG_AUDIT_RETENTION_DAYS to 180 or more';
    END IF;
    DELETE FROM audit_log WHERE id IN (
        SELECT id FROM audit_log WHERE at < now() - make_interval(days => keep_days)
        ORDER BY at LIMIT greatest(max_rows, 1));
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

REVOKE ALL ON FUNCTION audit_record(), audit_log_prune(int, int),
    audit_attach(regclass, text, boolean, text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_log_prune(int, int) TO shouwang_ingest;
-- The API reads the log (GET /v1/audit) and never writes it; analytics and notify never see it.
REVOKE ALL ON audit_log FROM shouwang_api, shouwang_analytics, shouwang_notify;
GRANT SELECT ON audit_log TO shouwang_api;
