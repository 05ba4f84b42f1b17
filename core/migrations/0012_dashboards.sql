-- Dashboards: what Grafana may read, and whose rows.
--
-- Grafana connects with a login role that is a member of shouwang_dashboards (NOLOGIN), which
-- may SELECT only the views of schema dash: exactly the columns the dashboards use. A firm's
-- login role is mapped to its firm in dash.firm_roles and sees the rows of its own communities
-- (work orders: its own work orders); a township's login role, mapped in dash.region_roles, sees
-- the communities under its region; a member of shouwang_regulator sees every row. The views
-- are security barriers, so no predicate a user writes can see a row before the scope filter
-- has removed it. dashboards/access.py creates the login roles.
--
-- Roles belong to the cluster, not to this database: create them only if missing (another
-- database in the same cluster, or a concurrent migration, may have made them already).

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'shouwang_dashboards') THEN
        BEGIN
            CREATE ROLE shouwang_dashboards NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'shouwang_regulator') THEN
        BEGIN
            CREATE ROLE shouwang_regulator NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END;
    END IF;
    IF NOT pg_has_role('shouwang_regulator', 'shouwang_dashboards', 'MEMBER') THEN
        BEGIN
            GRANT shouwang_dashboards TO shouwang_regulator;
        EXCEPTION WHEN unique_violation THEN NULL;
        END;
    END IF;
END
$$;

CREATE SCHEMA dash;
REVOKE ALL ON SCHEMA dash FROM PUBLIC;
GRANT USAGE ON SCHEMA dash TO shouwang_dashboards;

-- Which firm a login role reads for. Not readable by the dashboards role.
CREATE TABLE dash.firm_roles (
    role_name   name PRIMARY KEY,
    firm_id     int NOT NULL REFERENCES firms (id) ON DELETE CASCADE,
    granted_at  timestamptz NOT NULL DEFAULT now()
);

-- Which township or community service centre a login role reads for: the communities in that
-- region and the regions below it, the firms running them and those communities' work orders.
CREATE TABLE dash.region_roles (
    role_name   name PRIMARY KEY,
    region_id   int NOT NULL REFERENCES regions (id) ON DELETE CASCADE,
    granted_at  timestamptz NOT NULL DEFAULT now()
);

-- The communities under the current role's region (none for other roles).
CREATE VIEW dash.township_scope WITH (security_barrier) AS
WITH RECURSIVE under (id) AS (
    SELECT rr.region_id FROM dash.region_roles rr WHERE rr.role_name = current_user
    UNION
    SELECT r.id FROM regions r JOIN under u ON r.parent_id = u.id
)
SELECT c.id AS community_id FROM communities c WHERE c.region_id IN (SELECT id FROM under);

-- The communities the current role may see: all for a regulator, else its firm's or its region's.
CREATE VIEW dash.scope WITH (security_barrier) AS
SELECT c.id AS community_id
FROM communities c
WHERE pg_has_role(current_user, 'shouwang_regulator', 'USAGE')
   OR c.firm_id IN (SELECT r.firm_id FROM dash.firm_roles r WHERE r.role_name = current_user)
   OR c.id IN (SELECT community_id FROM dash.township_scope);

CREATE VIEW dash.firms WITH (security_barrier) AS
SELECT f.id, f.code, f.name_zh AS name, f.name_en, f.contact_phone, f.complaint_phone
FROM firms f
WHERE pg_has_role(current_user, 'shouwang_regulator', 'USAGE')
   OR f.id IN (SELECT r.firm_id FROM dash.firm_roles r WHERE r.role_name = current_user)
   OR f.id IN (SELECT c.firm_id FROM communities c
               WHERE c.id IN (SELECT community_id FROM dash.township_scope));

CREATE VIEW dash.communities WITH (security_barrier) AS
SELECT c.id, c.code, c.name_zh AS name, c.name_en, c.address,
       t.code AS township_code, t.name_zh AS township_name,
       f.id AS firm_id, f.code AS firm_code, f.name_zh AS firm_name
FROM communities c
JOIN regions r ON r.id = c.region_id
JOIN regions t ON t.id = CASE WHEN r.kind = 'community_centre' THEN r.parent_id ELSE r.id END
LEFT JOIN firms f ON f.id = c.firm_id
WHERE c.id IN (SELECT community_id FROM dash.scope);

CREATE VIEW dash.buildings WITH (security_barrier) AS
SELECT b.id, b.code, b.name, b.floors, c.id AS community_id, c.code AS community_code
FROM buildings b
JOIN communities c ON c.id = b.community_id
WHERE c.id IN (SELECT community_id FROM dash.scope);

CREATE VIEW dash.devices WITH (security_barrier) AS
SELECT d.id, d.uid, d.device_class, d.model, d.location, d.active, d.report_interval_s,
       (d.attributes ->> 'rated_speed')::double precision AS rated_speed,
       d.building_id, b.name AS building_name,
       c.id AS community_id, c.code AS community_code, c.name_zh AS community_name,
       t.code AS township_code, c.firm_id,
       mu.name_zh AS maintenance_unit, mu.phone AS maintenance_phone,
       p.last_seen, p.online AS reported_online
FROM devices d
JOIN communities c ON c.id = d.community_id
JOIN regions r ON r.id = c.region_id
JOIN regions t ON t.id = CASE WHEN r.kind = 'community_centre' THEN r.parent_id ELSE r.id END
LEFT JOIN buildings b ON b.id = d.building_id
LEFT JOIN maintenance_units mu ON mu.id = d.maintenance_unit_id
LEFT JOIN device_presence p ON p.device_id = d.id
WHERE c.id IN (SELECT community_id FROM dash.scope);

CREATE VIEW dash.readings WITH (security_barrier) AS
SELECT r.ts, d.uid AS device, d.device_class, r.metric_id, m.name AS metric, r.value
FROM readings r
JOIN devices d ON d.id = r.device_id
LEFT JOIN metrics m ON m.id = r.metric_id
WHERE d.community_id IN (SELECT community_id FROM dash.scope);

CREATE VIEW dash.latest_readings WITH (security_barrier) AS
SELECT l.ts, d.uid AS device, d.device_class, d.location, l.metric_id, m.name AS metric, l.value,
       c.code AS community_code, c.name_zh AS community_name, d.building_id
FROM latest_readings l
JOIN devices d ON d.id = l.device_id
LEFT JOIN metrics m ON m.id = l.metric_id
JOIN communities c ON c.id = d.community_id
WHERE c.id IN (SELECT community_id FROM dash.scope);

CREATE VIEW dash.events WITH (security_barrier) AS
SELECT e.ts, d.uid AS device, d.device_class, d.location, e.code, e.active,
       ec.name_zh AS name, ec.name_en,
       c.code AS community_code, c.name_zh AS community_name, d.building_id
FROM events e
JOIN devices d ON d.id = e.device_id
JOIN communities c ON c.id = d.community_id
LEFT JOIN event_codes ec ON ec.device_class = d.device_class AND ec.code = e.code
WHERE c.id IN (SELECT community_id FROM dash.scope);

CREATE VIEW dash.device_status WITH (security_barrier) AS
SELECT s.ts, d.uid AS device, d.device_class, s.online, s.reason,
       c.code AS community_code, d.building_id
FROM device_status s
JOIN devices d ON d.id = s.device_id
JOIN communities c ON c.id = d.community_id
WHERE c.id IN (SELECT community_id FROM dash.scope);

CREATE VIEW dash.alarms WITH (security_barrier) AS
SELECT a.id, d.uid AS device, d.device_class, d.location, a.event_code, a.severity, a.state,
       a.detector, a.opened_at, a.last_triggered_at, a.cleared_at, a.acknowledged_at,
       a.triggers, c.code AS community_code, c.name_zh AS community_name,
       t.code AS township_code, t.name_zh AS township_name, d.building_id
FROM alarms a
JOIN devices d ON d.id = a.device_id
JOIN communities c ON c.id = d.community_id
JOIN regions r ON r.id = c.region_id
JOIN regions t ON t.id = CASE WHEN r.kind = 'community_centre' THEN r.parent_id ELSE r.id END
WHERE c.id IN (SELECT community_id FROM dash.scope);

-- A work order is its firm's, whichever firm runs the community today.
CREATE VIEW dash.work_orders WITH (security_barrier) AS
SELECT w.id, w.alarm_id, d.uid AS device, d.device_class, d.location, w.event_code,
       w.severity, w.responsible_party, w.supervisor, w.status,
       w.opened_at, w.response_due, w.arrival_due, w.resolution_due,
       w.responded_at, w.on_site_at, w.closed_at, w.closed_reason,
       -- the earliest limit still running: what the order is due for next
       least(CASE WHEN w.responded_at IS NULL AND w.closed_at IS NULL THEN w.response_due END,
             CASE WHEN w.on_site_at IS NULL AND w.closed_at IS NULL THEN w.arrival_due END,
             CASE WHEN w.closed_at IS NULL THEN w.resolution_due END) AS next_due,
       w.emergency_fund, w.notify_regulator,
       c.code AS community_code, c.name_zh AS community_name,
       t.code AS township_code, t.name_zh AS township_name,
       f.code AS firm_code, f.name_zh AS firm_name, mu.name_zh AS maintenance_unit,
       d.building_id
FROM work_orders w
JOIN devices d ON d.id = w.device_id
JOIN communities c ON c.id = w.community_id
JOIN regions r ON r.id = c.region_id
JOIN regions t ON t.id = CASE WHEN r.kind = 'community_centre' THEN r.parent_id ELSE r.id END
LEFT JOIN firms f ON f.id = w.firm_id
LEFT JOIN maintenance_units mu ON mu.id = w.maintenance_unit_id
WHERE pg_has_role(current_user, 'shouwang_regulator', 'USAGE')
   OR w.firm_id IN (SELECT fr.firm_id FROM dash.firm_roles fr WHERE fr.role_name = current_user)
   OR w.community_id IN (SELECT community_id FROM dash.township_scope);

GRANT SELECT ON dash.firms, dash.communities, dash.buildings, dash.devices, dash.readings,
    dash.latest_readings, dash.events, dash.device_status, dash.alarms, dash.work_orders
    TO shouwang_dashboards;
