-- Least privilege: a database role for each long-running stage (docs/operations.md, "Database
-- roles"). Each is NOLOGIN; 'shouwang db login STAGE' makes a login role that is a member of it.
--
--   role                 may                                                     may not
--   shouwang_ingest      read the registry; write readings, events, status,      change the registry,
--                        rejects, latest values, presence; drop old chunks       alarms, people, tokens
--                        (a member of shouwang_telemetry: retention)
--   shouwang_analytics   read all but secrets and the roster; write alarms,      change the registry,
--                        work orders, escalations, the outbox, models, the       write readings, drop
--                        per-minute rollup, platform alarms                      chunks
--   shouwang_notify      read all but API tokens and broker accounts; write      change alarms, the
--                        the outbox, deliveries, groups, escalations,            registry, readings
--                        platform notices
--   shouwang_api         read all; write the registry, roster, channels,         write telemetry, drop
--                        tokens, accounts, lists, alarms and work orders          chunks, TRUNCATE, DDL
--   shouwang_telemetry   owns the hypertables readings, readings_1m, events, device_status and
--                        rejects (dropping a chunk takes their owner); NOLOGIN, never a login
--
-- Every other table stays with the role that runs the migrations (the owner: only 'shouwang
-- migrate', seeding and the CLI's administrative commands connect as it). Tables that later
-- migrations add are readable by analytics and notify and writable by the API by default (the
-- default privileges below, for tables the same owner creates); a migration that adds a table
-- grants anything else a stage needs.
--
-- Roles belong to the cluster, not to this database: create them only if missing (another
-- database in the same cluster, or a concurrent migration, may have made them already).

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['shouwang_telemetry', 'shouwang_ingest', 'shouwang_analytics',
                             'shouwang_notify', 'shouwang_api'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
            END;
        END IF;
    END LOOP;
    IF NOT pg_has_role('shouwang_ingest', 'shouwang_telemetry', 'MEMBER') THEN
        BEGIN
            GRANT shouwang_telemetry TO shouwang_ingest;
        EXCEPTION WHEN unique_violation THEN NULL;
        END;
    END IF;
    -- Giving a table away takes membership of the new owner (a superuser has it already).
    IF NOT pg_has_role(current_user, 'shouwang_telemetry', 'MEMBER') THEN
        EXECUTE format('GRANT shouwang_telemetry TO %I', current_user);
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO shouwang_ingest, shouwang_analytics, shouwang_notify, shouwang_api;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public
    TO shouwang_ingest, shouwang_analytics, shouwang_notify, shouwang_api;
-- `shouwang health --db` reads schema_migrations; every stage reads the catalogue.
GRANT SELECT ON schema_migrations, device_classes, metrics, event_codes
    TO shouwang_ingest, shouwang_analytics, shouwang_notify, shouwang_api;

-- Telemetry: owned by shouwang_telemetry, so that retention (ingest, a member) can drop chunks
-- and nothing else can.
ALTER TABLE readings OWNER TO shouwang_telemetry;
ALTER TABLE readings_1m OWNER TO shouwang_telemetry;
ALTER TABLE events OWNER TO shouwang_telemetry;
ALTER TABLE device_status OWNER TO shouwang_telemetry;
ALTER TABLE rejects OWNER TO shouwang_telemetry;

-- Ingest.
GRANT SELECT ON regions, firms, maintenance_units, communities, buildings, gateways, devices
    TO shouwang_ingest;
GRANT SELECT, INSERT, UPDATE ON latest_readings, device_presence, rejects_counted
    TO shouwang_ingest;
GRANT SELECT, INSERT ON rollup_dirty TO shouwang_ingest;

-- Analytics: everything but secrets and the roster, to read.
GRANT SELECT ON ALL TABLES IN SCHEMA public TO shouwang_analytics;
REVOKE SELECT ON api_tokens, mqtt_accounts, people, contact_channels, duty_shifts,
    platform_shifts FROM shouwang_analytics;
GRANT INSERT, UPDATE ON alarms, work_orders, escalation_steps, detector_models, rollup_state,
    platform_alarms TO shouwang_analytics;
GRANT INSERT ON work_order_transitions, work_order_breaches, outbox, change_log
    TO shouwang_analytics;
GRANT INSERT, UPDATE, DELETE ON readings_1m TO shouwang_analytics;
GRANT DELETE ON rollup_dirty TO shouwang_analytics;

-- Notify: everything but API tokens and broker accounts, to read.
GRANT SELECT ON ALL TABLES IN SCHEMA public TO shouwang_notify;
REVOKE SELECT ON api_tokens, mqtt_accounts FROM shouwang_notify;
GRANT INSERT, UPDATE ON outbox, deliveries, notify_groups, platform_notices, platform_deliveries
    TO shouwang_notify;
GRANT UPDATE ON escalation_steps TO shouwang_notify;

-- The API: reads everything; writes all but telemetry, the rollup, models and the catalogue.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO shouwang_api;
REVOKE INSERT, UPDATE, DELETE ON readings, readings_1m, events, device_status, rejects,
    latest_readings, device_presence, rejects_counted, rollup_dirty, rollup_state,
    detector_models, schema_migrations, device_classes, metrics, event_codes FROM shouwang_api;

-- Tables and sequences later migrations create (as this same owner).
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT ON TABLES TO shouwang_analytics, shouwang_notify;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO shouwang_api;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES
    TO shouwang_ingest, shouwang_analytics, shouwang_notify, shouwang_api;
