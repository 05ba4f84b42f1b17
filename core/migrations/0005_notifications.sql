-- Notifications: who is on duty, how to reach them, and the transactional outbox that the
-- dispatcher delivers from.

CREATE TABLE people (
    id          serial PRIMARY KEY,
    name        text NOT NULL,
    role        text NOT NULL CHECK (role IN ('duty_staff', 'project_manager', 'firm_manager',
                    'maintenance_staff', 'township_supervisor', 'county_supervisor')),
    firm_id     int REFERENCES firms (id),
    unit_id     int REFERENCES maintenance_units (id),
    region_id   int REFERENCES regions (id),
    language    text NOT NULL DEFAULT 'zh' CHECK (language IN ('zh', 'en')),
    active      boolean NOT NULL DEFAULT true
);

CREATE TABLE contact_channels (
    id          serial PRIMARY KEY,
    person_id   int NOT NULL REFERENCES people (id),
    kind        text NOT NULL CHECK (kind IN ('webhook', 'wecom', 'dingtalk', 'email', 'mqtt')),
    address     text NOT NULL,
    secret      text,
    UNIQUE (person_id, kind, address)
);

-- A shift: this person holds this role for this community from starts_at to ends_at.
-- Overlapping shifts are handovers: both people are on duty during the overlap.
CREATE TABLE duty_shifts (
    id              serial PRIMARY KEY,
    community_id    int NOT NULL REFERENCES communities (id),
    role            text NOT NULL,
    person_id       int NOT NULL REFERENCES people (id),
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    CHECK (ends_at > starts_at)
);
CREATE INDEX duty_shifts_lookup ON duty_shifts (community_id, role, starts_at, ends_at);

-- Written in the same transaction as the alarm or work-order change that causes it.
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind            text NOT NULL CHECK (kind IN ('alarm_opened', 'alarm_cleared', 'alarm_raised')),
    alarm_id        bigint NOT NULL REFERENCES alarms (id),
    work_order_id   bigint REFERENCES work_orders (id),
    community_id    int NOT NULL REFERENCES communities (id),
    severity        text NOT NULL,
    responsible_party text,
    payload         jsonb NOT NULL,
    claimed_by      text,
    claimed_until   timestamptz,
    done_at         timestamptz
);
CREATE INDEX outbox_pending ON outbox (id) WHERE done_at IS NULL;
