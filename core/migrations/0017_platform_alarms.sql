-- Platform alarms: the platform's own trouble, not a device's fault and not a firm's work order.
-- Kinds: 'feed_silent' (no data reaching analytics: ingest or the broker is down or lagging),
-- 'mass_silence' (a large share of devices went silent at once), 'detector_quarantined' (a
-- device's detector state failed and was set aside), 'stage_restarted' (the main job restarted a
-- stage that died). One open alarm per (kind, subject); re-triggers are counted.
CREATE TABLE platform_alarms (
    id              bigserial PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('feed_silent', 'mass_silence',
                        'detector_quarantined', 'stage_restarted')),
    subject         text NOT NULL DEFAULT '',   -- e.g. a device uid or a stage name
    severity        text NOT NULL CHECK (severity IN ('P0', 'P1', 'P2', 'P3')),
    state           text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'acknowledged', 'cleared')),
    opened_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_triggered_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    cleared_at      timestamptz,
    cleared_reason  text,
    triggers        int NOT NULL DEFAULT 1,
    acknowledged_at timestamptz,
    acknowledged_by text,
    detail          jsonb NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX platform_alarms_one_open ON platform_alarms (kind, subject)
    WHERE state <> 'cleared';

-- Who runs the platform itself (the county's IT contact, the vendor's on-call): a role of its
-- own, with shifts that cover the whole platform rather than a community.
ALTER TABLE people DROP CONSTRAINT people_role_check;
ALTER TABLE people ADD CONSTRAINT people_role_check CHECK (role IN ('duty_staff',
    'project_manager', 'firm_manager', 'maintenance_staff', 'township_supervisor',
    'county_supervisor', 'platform_operator'));

CREATE TABLE platform_shifts (
    id          serial PRIMARY KEY,
    person_id   int NOT NULL REFERENCES people (id),
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    CHECK (ends_at > starts_at)
);
CREATE INDEX platform_shifts_when ON platform_shifts (starts_at, ends_at);
