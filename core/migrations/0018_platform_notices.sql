-- Notify: failures that can never succeed, and the platform operator's notices.

-- A failed delivery that no retry can mend (a malformed address, a channel kind this dispatcher
-- has no sender for, an address the mail server refuses for good): that notification is not
-- tried on that channel again.
ALTER TABLE deliveries ADD COLUMN permanent boolean NOT NULL DEFAULT false;
CREATE INDEX deliveries_permanent ON deliveries (outbox_id, channel_id) WHERE permanent;
-- Done without anyone accepting it: every channel of every recipient failed permanently.
ALTER TABLE outbox ADD COLUMN undeliverable boolean NOT NULL DEFAULT false;

-- What notify has to tell the platform operators on shift about platform alarms: one row per
-- alarm and news ('opened', 'cleared'), written by notify itself when it sees the alarm, then
-- claimed and delivered like the outbox. The alarm is named by id and opening time: no foreign
-- key, so the platform's alarm table can be pruned (or emptied) without touching this log, and
-- an id used again after that is a new alarm.
CREATE TABLE platform_notices (
    id                  bigserial PRIMARY KEY,
    created_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    platform_alarm_id   bigint NOT NULL,
    alarm_opened_at     timestamptz NOT NULL,
    kind                text NOT NULL CHECK (kind IN ('platform_alarm_opened',
                            'platform_alarm_cleared')),
    severity            text NOT NULL,
    payload             jsonb NOT NULL,
    claimed_by          text,
    claimed_until       timestamptz,
    attempts            int NOT NULL DEFAULT 0,
    done_at             timestamptz,
    superseded          boolean NOT NULL DEFAULT false,
    undeliverable       boolean NOT NULL DEFAULT false,
    UNIQUE (platform_alarm_id, alarm_opened_at, kind)
);
CREATE INDEX platform_notices_pending ON platform_notices (id) WHERE done_at IS NULL;

-- Every attempt to deliver a platform notice, and at most one accepted per notice and channel
-- (the shape of deliveries).
CREATE TABLE platform_deliveries (
    id              bigserial PRIMARY KEY,
    notice_id       bigint NOT NULL REFERENCES platform_notices (id),
    person_id       int REFERENCES people (id),
    channel_id      int NOT NULL REFERENCES contact_channels (id),
    attempt         int NOT NULL,
    status          text NOT NULL CHECK (status IN ('accepted', 'failed')),
    permanent       boolean NOT NULL DEFAULT false,
    http_status     int,
    error           text NOT NULL DEFAULT '',
    latency_ms      double precision NOT NULL,
    at              timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE UNIQUE INDEX platform_deliveries_accepted_once ON platform_deliveries (notice_id, channel_id)
    WHERE status = 'accepted';
CREATE INDEX platform_deliveries_notice ON platform_deliveries (notice_id);

-- Platform alarms already cleared when this ran are history: recorded as told, not announced.
INSERT INTO platform_notices (platform_alarm_id, alarm_opened_at, kind, severity, payload, done_at,
    superseded)
SELECT a.id, a.opened_at, k.kind, a.severity, '{}', clock_timestamp(), true
FROM platform_alarms a
CROSS JOIN (VALUES ('platform_alarm_opened'), ('platform_alarm_cleared')) AS k (kind)
WHERE a.state = 'cleared';
