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

-- The audit log places these tables' changes by their community_id: see
-- 0033_audit_placement.sql, which reads each audited table's placement from a table.

-- Privileges: the defaults of 0021_service_roles.sql (every stage reads; the API writes).
SELECT audit_attach('notice_boards', 'community_id', false);
SELECT audit_attach('notice_board_fees', 'community_id,position', false);
SELECT audit_attach('notice_board_contacts', 'community_id,kind', false);
SELECT audit_attach('elevator_spending', 'community_id,period_start', false);
