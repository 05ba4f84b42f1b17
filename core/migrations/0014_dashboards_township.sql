-- Dashboards for township supervisors (and community service centres): a login role mapped to a
-- region in dash.region_roles sees the communities in that region and the regions below it, the
-- firms that run them, and those communities' work orders. dashboards/access.py grant_township.

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

CREATE OR REPLACE VIEW dash.scope WITH (security_barrier) AS
SELECT c.id AS community_id
FROM communities c
WHERE pg_has_role(current_user, 'shouwang_regulator', 'USAGE')
   OR c.firm_id IN (SELECT r.firm_id FROM dash.firm_roles r WHERE r.role_name = current_user)
   OR c.id IN (SELECT community_id FROM dash.township_scope);

CREATE OR REPLACE VIEW dash.firms WITH (security_barrier) AS
SELECT f.id, f.code, f.name_zh AS name, f.name_en, f.contact_phone, f.complaint_phone
FROM firms f
WHERE pg_has_role(current_user, 'shouwang_regulator', 'USAGE')
   OR f.id IN (SELECT r.firm_id FROM dash.firm_roles r WHERE r.role_name = current_user)
   OR f.id IN (SELECT c.firm_id FROM communities c
               WHERE c.id IN (SELECT community_id FROM dash.township_scope));

CREATE OR REPLACE VIEW dash.work_orders WITH (security_barrier) AS
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
