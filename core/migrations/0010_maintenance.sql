-- Maintenance: which units serve a community, and the maintenance they record (public
-- disclosure: units and their phones, last maintenance dates, elevator maintenance expenditure).

-- The maintenance unit under contract for a community, per kind of system. Devices keep their own
-- maintenance_unit_id (who is called for a fault); this is the contract the public sees.
CREATE TABLE community_maintenance_units (
    community_id        int NOT NULL REFERENCES communities (id),
    kind                text NOT NULL CHECK (kind IN ('elevator', 'fire', 'water')),
    maintenance_unit_id int NOT NULL REFERENCES maintenance_units (id),
    since               date,
    PRIMARY KEY (community_id, kind)
);

-- Registries seeded before this migration: the unit most of a community's devices of that kind
-- name becomes the community's contracted unit.
INSERT INTO community_maintenance_units (community_id, kind, maintenance_unit_id)
SELECT DISTINCT ON (d.community_id, u.kind) d.community_id, u.kind, u.id
FROM devices d JOIN maintenance_units u ON u.id = d.maintenance_unit_id
GROUP BY d.community_id, u.kind, u.id
ORDER BY d.community_id, u.kind, count(*) DESC, u.id;

-- One maintenance visit to one device. kind: 'routine' is the scheduled service (elevators:
-- half-monthly 半月保, overdue after 15 days; fire systems: monthly), 'quarterly', 'half_yearly'
-- and 'annual' the longer services, 'annual_inspection' the statutory periodic inspection, 'repair'
-- a corrective visit. cost_cny is NULL when no cost was recorded.
CREATE TABLE maintenance_records (
    id                  bigserial PRIMARY KEY,
    device_id           int NOT NULL REFERENCES devices (id),
    maintenance_unit_id int REFERENCES maintenance_units (id),
    kind                text NOT NULL CHECK (kind IN ('routine', 'quarterly', 'half_yearly',
                            'annual', 'annual_inspection', 'repair')),
    performed_at        timestamptz NOT NULL,
    cost_cny            numeric(12, 2) CHECK (cost_cny >= 0),
    note                text NOT NULL DEFAULT '',
    recorded_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (device_id, kind, performed_at)
);
CREATE INDEX maintenance_records_device ON maintenance_records (device_id, performed_at DESC);
