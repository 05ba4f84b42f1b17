-- Person logins for the duty pages (api/pages, docs/pages.md): a phone number and an argon2id
-- hash per person, server-side sessions, and each failed sign-in for the lockout and the rate
-- limits. Every change is in the audit log; the hash and the sessions' secrets are redacted
-- there by their column names.

CREATE TABLE person_logins (
    person_id       int PRIMARY KEY REFERENCES people (id),
    phone           text NOT NULL UNIQUE CHECK (phone ~ '^\+?[0-9]{5,20}$'),
    password_hash   text,                   -- argon2id (PHC string); null: cannot sign in
    password_set_at timestamptz,
    failures        int NOT NULL DEFAULT 0 CHECK (failures >= 0),  -- in a row, since the last success
    locked_until    timestamptz
);
SELECT audit_attach('person_logins', 'person_id', false);

-- A failed sign-in: the per-phone and per-client-address limits count these over a window.
CREATE TABLE login_failures (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    phone   text NOT NULL,
    client  text NOT NULL
);
CREATE INDEX login_failures_phone ON login_failures (phone, at);
CREATE INDEX login_failures_client ON login_failures (client, at);
SELECT audit_attach('login_failures', 'id', false);

-- A signed-in browser. The cookie holds a random value; only its SHA-256 is kept. A session from
-- a notification's link (via = 'link') is bound to that one alarm and its work order.
CREATE TABLE page_sessions (
    id              bigserial PRIMARY KEY,
    token_hash      bytea NOT NULL UNIQUE,
    csrf_secret     text NOT NULL,          -- the synchronizer token of its forms
    person_id       int NOT NULL REFERENCES people (id),
    via             text NOT NULL CHECK (via IN ('password', 'link')),
    alarm_id        bigint REFERENCES alarms (id),
    client          text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at      timestamptz NOT NULL,
    ended_at        timestamptz,            -- signed out
    CHECK ((via = 'link') = (alarm_id IS NOT NULL))
);
CREATE INDEX page_sessions_person ON page_sessions (person_id);
SELECT audit_attach('page_sessions', 'id', false);
