-- Complaints and repair requests filed by residents from the notice board (docs/pages.md,
-- "Complaints"). Each opens a work order against a complaint entry of the responsibility list
-- (kind: complaint): such a work order has no alarm and no device.

ALTER TABLE work_orders ADD COLUMN source text NOT NULL DEFAULT 'alarm'
    CHECK (source IN ('alarm', 'complaint'));
ALTER TABLE work_orders ALTER COLUMN alarm_id DROP NOT NULL;
ALTER TABLE work_orders ALTER COLUMN device_id DROP NOT NULL;
-- A work order is filed for an alarm of a device, or for a complaint (neither).
ALTER TABLE work_orders ADD CONSTRAINT work_orders_alarm_or_complaint CHECK (
    (source = 'alarm' AND alarm_id IS NOT NULL AND device_id IS NOT NULL)
    OR (source = 'complaint' AND alarm_id IS NULL AND device_id IS NULL));

-- The change stream (0011) carries a work order's device: none for a complaint.
ALTER TABLE change_log ALTER COLUMN device_id DROP NOT NULL;

CREATE TABLE complaints (
    id              bigserial PRIMARY KEY,
    -- What the resident gets to follow it: 16 characters of base32 (80 random bits).
    tracking_code   text NOT NULL UNIQUE CHECK (tracking_code ~ '^[A-Z2-7]{16}$'),
    community_id    int NOT NULL REFERENCES communities (id),
    work_order_id   bigint NOT NULL UNIQUE REFERENCES work_orders (id),
    category        text NOT NULL,   -- the code of the list's complaint entry
    location        text NOT NULL CHECK (length(location) BETWEEN 1 AND 200),
    description     text NOT NULL CHECK (length(description) BETWEEN 1 AND 2000),
    photo_type      text CHECK (photo_type IN ('image/jpeg', 'image/png')),
    photo           bytea,
    -- Personal data, for the firm only (never on a public page): the resident's phone, and a
    -- hash of the address the complaint came from (rate limits only; not the address itself).
    phone           text NOT NULL CHECK (phone ~ '^[0-9]{7,15}$'),
    client_hash     text NOT NULL,
    filed_at        timestamptz NOT NULL,
    CHECK ((photo IS NULL) = (photo_type IS NULL))
);
CREATE INDEX complaints_phone ON complaints (phone, filed_at);
CREATE INDEX complaints_client ON complaints (client_hash, filed_at);
CREATE INDEX complaints_community ON complaints (community_id, filed_at);

-- The dashboards' work orders: a complaint's has no device (0012 joined devices).
CREATE OR REPLACE VIEW dash.work_orders WITH (security_barrier) AS
SELECT w.id, w.alarm_id, d.uid AS device, d.device_class, d.location, w.event_code,
       w.severity, w.responsible_party, w.supervisor, w.status,
       w.opened_at, w.response_due, w.arrival_due, w.resolution_due,
       w.responded_at, w.on_site_at, w.closed_at, w.closed_reason,
       least(CASE WHEN w.responded_at IS NULL AND w.closed_at IS NULL THEN w.response_due END,
             CASE WHEN w.on_site_at IS NULL AND w.closed_at IS NULL THEN w.arrival_due END,
             CASE WHEN w.closed_at IS NULL THEN w.resolution_due END) AS next_due,
       w.emergency_fund, w.notify_regulator,
       c.code AS community_code, c.name_zh AS community_name,
       t.code AS township_code, t.name_zh AS township_name,
       f.code AS firm_code, f.name_zh AS firm_name, mu.name_zh AS maintenance_unit,
       d.building_id
FROM work_orders w
LEFT JOIN devices d ON d.id = w.device_id
JOIN communities c ON c.id = w.community_id
JOIN regions r ON r.id = c.region_id
JOIN regions t ON t.id = CASE WHEN r.kind = 'community_centre' THEN r.parent_id ELSE r.id END
LEFT JOIN firms f ON f.id = w.firm_id
LEFT JOIN maintenance_units mu ON mu.id = w.maintenance_unit_id
WHERE pg_has_role(current_user, 'shouwang_regulator', 'USAGE')
   OR w.firm_id IN (SELECT fr.firm_id FROM dash.firm_roles fr WHERE fr.role_name = current_user)
   OR w.community_id IN (SELECT community_id FROM dash.township_scope);
