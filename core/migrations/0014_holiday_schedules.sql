-- The State Council's yearly holiday schedules, loaded as data (core/holiday_schedule.py). Each
-- load of a changed schedule for a year is a new version; the newest version of a year is in
-- force. Rows are never updated or deleted: the table is the audit trail of who loaded what.
CREATE TABLE holiday_schedules (
    id          bigserial PRIMARY KEY,
    year        int NOT NULL CHECK (year BETWEEN 2000 AND 2100),
    version     int NOT NULL CHECK (version > 0),
    digest      text NOT NULL,
    notice      text NOT NULL,
    content     text NOT NULL,
    source      text NOT NULL,              -- the file name or 'api'
    loaded_by   text NOT NULL,
    loaded_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (year, version)
);
