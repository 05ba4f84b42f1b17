-- Analytics: alarms and the work orders filed against the responsibility list.

CREATE TABLE responsibility_lists (
    version     text PRIMARY KEY,
    digest      text NOT NULL,
    content     text NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    published_by text NOT NULL DEFAULT 'system'
);

CREATE TABLE alarms (
    id                  bigserial PRIMARY KEY,
    device_id           int NOT NULL REFERENCES devices (id),
    event_code          text NOT NULL,
    severity            text NOT NULL CHECK (severity IN ('P0', 'P1', 'P2', 'P3')),
    state               text NOT NULL CHECK (state IN ('active', 'acknowledged', 'cleared')),
    detector            text NOT NULL,
    detail              jsonb NOT NULL DEFAULT '{}',
    opened_at           timestamptz NOT NULL,       -- when the condition was met (data time)
    last_triggered_at   timestamptz NOT NULL,
    normal_since        timestamptz,                -- condition normal since; clears after the hold
    cleared_at          timestamptz,
    cleared_reason      text,
    triggers            int NOT NULL DEFAULT 1,     -- re-triggers while open, counted not duplicated
    flaps               int NOT NULL DEFAULT 0,
    acknowledged_at     timestamptz,
    acknowledged_by     text,
    list_version        text NOT NULL,
    committed_at        timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- One open alarm per (device, event type).
CREATE UNIQUE INDEX alarms_one_open ON alarms (device_id, event_code) WHERE state <> 'cleared';
CREATE INDEX alarms_opened ON alarms (opened_at DESC);

CREATE TABLE work_orders (
    id                  bigserial PRIMARY KEY,
    alarm_id            bigint NOT NULL UNIQUE REFERENCES alarms (id),
    device_id           int NOT NULL REFERENCES devices (id),
    community_id        int NOT NULL REFERENCES communities (id),
    firm_id             int REFERENCES firms (id),
    maintenance_unit_id int REFERENCES maintenance_units (id),
    event_code          text NOT NULL,
    severity            text NOT NULL,
    responsible_party   text NOT NULL,
    supervisor          text NOT NULL,
    status              text NOT NULL CHECK (status IN ('occurred', 'responded', 'on_site', 'completed', 'false_alarm')),
    opened_at           timestamptz NOT NULL,
    response_due        timestamptz,
    arrival_due         timestamptz,
    resolution_due      timestamptz NOT NULL,
    responded_at        timestamptz,
    on_site_at          timestamptz,
    closed_at           timestamptz,
    closed_reason       text CHECK (closed_reason IN ('completed', 'false_alarm', 'device_recovered')),
    emergency_fund      boolean NOT NULL,
    notify_regulator    boolean NOT NULL,
    list_version        text NOT NULL,
    committed_at        timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX work_orders_open ON work_orders (community_id) WHERE closed_at IS NULL;

-- Every transition, time-stamped with who made it.
CREATE TABLE work_order_transitions (
    id              bigserial PRIMARY KEY,
    work_order_id   bigint NOT NULL REFERENCES work_orders (id),
    at              timestamptz NOT NULL,
    actor           text NOT NULL,
    from_status     text,
    to_status       text NOT NULL,
    note            text NOT NULL DEFAULT ''
);

CREATE TABLE work_order_breaches (
    work_order_id   bigint NOT NULL REFERENCES work_orders (id),
    limit_kind      text NOT NULL CHECK (limit_kind IN ('response', 'arrival', 'resolution')),
    due             timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL,
    PRIMARY KEY (work_order_id, limit_kind)
);

CREATE TABLE escalation_steps (
    work_order_id   bigint NOT NULL REFERENCES work_orders (id),
    step            int NOT NULL,
    notify          text NOT NULL,
    due_at          timestamptz NOT NULL,
    fired_at        timestamptz,
    cancelled_at    timestamptz,
    PRIMARY KEY (work_order_id, step)
);
