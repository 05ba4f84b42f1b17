-- Repeating duty-roster patterns (docs/api.md, "Roster patterns"): named daily slots (早, 中,
-- 夜, ...) held by teams that rotate every few days, for one role of one community, from a
-- start date to an end date (Beijing local dates, at most 366 days apart). The rules are
-- lifecycle/roster_patterns.py; the API checks a pattern with them and writes its shifts as
-- ordinary duty_shifts rows in the same transaction, so notify routes alarms to them like any
-- shift and needs nothing of this table.
--
-- A shift made by a pattern carries the pattern (pattern_id) and its slot's name (slot). Changing
-- a pattern replaces its shifts that have not started yet; deleting it removes those and marks
-- the pattern deleted (deleted_at): shifts that have started stay as history, still naming their
-- pattern and slot.

CREATE TABLE roster_patterns (
    id                  serial PRIMARY KEY,
    community_id        int NOT NULL REFERENCES communities (id),
    role                text NOT NULL CHECK (role IN ('duty_staff', 'project_manager',
                            'firm_manager', 'maintenance_staff', 'township_supervisor',
                            'county_supervisor')),
    name                text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    starts_on           date NOT NULL,
    ends_on             date NOT NULL,
    rotate_every_days   int NOT NULL CHECK (rotate_every_days BETWEEN 1 AND 366),
    -- [{"name": "早", "start": "07:00", "minutes": 480}, ...]: Beijing wall-clock starts
    slots               jsonb NOT NULL CHECK (jsonb_typeof(slots) = 'array'),
    -- [[person id, ...], ...]: slot k of rotation period p is held by team (k + p) mod teams
    teams               jsonb NOT NULL CHECK (jsonb_typeof(teams) = 'array'),
    created_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    deleted_at          timestamptz,
    CHECK (ends_on >= starts_on AND ends_on <= starts_on + 366)
);
CREATE INDEX roster_patterns_community ON roster_patterns (community_id) WHERE deleted_at IS NULL;

ALTER TABLE duty_shifts ADD COLUMN pattern_id int REFERENCES roster_patterns (id)
    ON DELETE SET NULL;
ALTER TABLE duty_shifts ADD COLUMN slot text CHECK (length(slot) BETWEEN 1 AND 20);
CREATE INDEX duty_shifts_pattern ON duty_shifts (pattern_id, starts_at)
    WHERE pattern_id IS NOT NULL;

-- The default privileges of 0021 let the API write it and analytics and notify read it; the
-- roster is not analytics' to read (as duty_shifts), and notify reads only duty_shifts.
REVOKE ALL ON roster_patterns FROM shouwang_analytics;
GRANT SELECT, INSERT, UPDATE, DELETE ON roster_patterns TO shouwang_api;
GRANT USAGE, SELECT ON SEQUENCE roster_patterns_id_seq TO shouwang_api;

-- Audited, placed in its community's firm (0033); duty_shifts again for its new columns.
SELECT audit_attach('roster_patterns', 'id', false);
SELECT audit_attach('duty_shifts', 'id', false);
INSERT INTO audit_placement (resource, placed_by) VALUES ('roster_patterns', 'community_id');
