-- Registry: who and what the platform knows about.
CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE regions (
    id          serial PRIMARY KEY,
    code        text NOT NULL UNIQUE,
    kind        text NOT NULL CHECK (kind IN ('county', 'township', 'community_centre')),
    parent_id   int REFERENCES regions (id),
    name_zh     text NOT NULL,
    name_en     text NOT NULL DEFAULT '',
    CHECK ((kind = 'county') = (parent_id IS NULL))
);

CREATE TABLE firms (
    id              serial PRIMARY KEY,
    code            text NOT NULL UNIQUE,
    name_zh         text NOT NULL,
    name_en         text NOT NULL DEFAULT '',
    credit_code     text,
    contact_phone   text,
    complaint_phone text
);

CREATE TABLE maintenance_units (
    id          serial PRIMARY KEY,
    code        text NOT NULL UNIQUE,
    kind        text NOT NULL CHECK (kind IN ('elevator', 'fire', 'water')),
    name_zh     text NOT NULL,
    name_en     text NOT NULL DEFAULT '',
    phone       text
);

CREATE TABLE communities (
    id          serial PRIMARY KEY,
    code        text NOT NULL UNIQUE,
    region_id   int NOT NULL REFERENCES regions (id),
    firm_id     int REFERENCES firms (id),
    name_zh     text NOT NULL,
    name_en     text NOT NULL DEFAULT '',
    address     text NOT NULL DEFAULT ''
);

CREATE TABLE buildings (
    id              serial PRIMARY KEY,
    community_id    int NOT NULL REFERENCES communities (id),
    code            text NOT NULL,
    name            text NOT NULL,
    floors          int NOT NULL CHECK (floors BETWEEN 1 AND 200),
    UNIQUE (community_id, code)
);

CREATE TABLE device_classes (
    name        text PRIMARY KEY
);

CREATE TABLE metrics (
    id              smallint PRIMARY KEY,
    device_class    text NOT NULL REFERENCES device_classes (name),
    name            text NOT NULL,
    unit            text NOT NULL,
    lo              double precision NOT NULL,
    hi              double precision NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('gauge', 'counter', 'state')),
    name_zh         text NOT NULL,
    name_en         text NOT NULL,
    UNIQUE (device_class, name),
    CHECK (lo < hi)
);

CREATE TABLE event_codes (
    device_class    text NOT NULL REFERENCES device_classes (name),
    code            text NOT NULL,
    name_zh         text NOT NULL,
    name_en         text NOT NULL,
    PRIMARY KEY (device_class, code)
);

-- A site gateway forwards devices that cannot speak MQTT themselves (batch form).
CREATE TABLE gateways (
    id              serial PRIMARY KEY,
    uid             text NOT NULL UNIQUE CHECK (uid ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    community_id    int NOT NULL REFERENCES communities (id)
);

CREATE TABLE devices (
    id                  serial PRIMARY KEY,
    uid                 text NOT NULL UNIQUE CHECK (uid ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    device_class        text NOT NULL REFERENCES device_classes (name),
    model               text NOT NULL DEFAULT '',
    community_id        int NOT NULL REFERENCES communities (id),
    building_id         int REFERENCES buildings (id),
    location            text NOT NULL DEFAULT '',
    maintenance_unit_id int REFERENCES maintenance_units (id),
    gateway_id          int REFERENCES gateways (id),
    install_date        date,
    report_interval_s   int NOT NULL DEFAULT 10 CHECK (report_interval_s > 0),
    attributes          jsonb NOT NULL DEFAULT '{}',
    active              boolean NOT NULL DEFAULT true,
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_community ON devices (community_id);

-- MQTT accounts. Passwords are kept only as Mosquitto-compatible PBKDF2 hashes.
CREATE TABLE mqtt_accounts (
    username        text PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('device', 'gateway')),
    device_id       int UNIQUE REFERENCES devices (id),
    gateway_id      int UNIQUE REFERENCES gateways (id),
    password_hash   text NOT NULL,
    issued_at       timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz,
    CHECK ((kind = 'device') = (device_id IS NOT NULL)),
    CHECK ((kind = 'gateway') = (gateway_id IS NOT NULL))
);
