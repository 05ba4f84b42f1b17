-- What duty and maintenance staff record on a work order from the duty pages (api/pages):
-- the arrival on site (an optional location and photo) and a handover to a colleague on shift.
-- The work order's own state moves through lifecycle/work_orders.py as for every caller; these
-- tables only keep what that state has no place for.

CREATE TABLE work_order_arrivals (
    id              bigserial PRIMARY KEY,
    work_order_id   bigint NOT NULL REFERENCES work_orders (id),
    person_id       int NOT NULL REFERENCES people (id),
    at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    latitude        double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude       double precision CHECK (longitude BETWEEN -180 AND 180),
    photo_type      text CHECK (photo_type IN ('image/jpeg', 'image/png', 'image/webp')),
    photo           bytea CHECK (octet_length(photo) <= 8388608),
    CHECK ((photo IS NULL) = (photo_type IS NULL)),
    CHECK ((latitude IS NULL) = (longitude IS NULL))
);
CREATE INDEX work_order_arrivals_wo ON work_order_arrivals (work_order_id);
SELECT audit_attach('work_order_arrivals', 'id', false, texts => '{photo}');

-- The latest row of a work order names who holds it now.
CREATE TABLE work_order_handovers (
    id              bigserial PRIMARY KEY,
    work_order_id   bigint NOT NULL REFERENCES work_orders (id),
    from_person     int NOT NULL REFERENCES people (id),
    to_person       int NOT NULL REFERENCES people (id),
    at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    note            text NOT NULL DEFAULT '' CHECK (length(note) <= 2000),
    CHECK (from_person <> to_person)
);
CREATE INDEX work_order_handovers_wo ON work_order_handovers (work_order_id, id);
SELECT audit_attach('work_order_handovers', 'id', false);
