-- Notification routing: reminders, Alertmanager-style groups, duty-app MQTT accounts.
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check
    CHECK (kind IN ('alarm_opened', 'alarm_cleared', 'alarm_raised', 'escalation', 'reminder'));
-- A grouped notification goes out with its batch: every row of a batch carries the id of the
-- batch's first row, which is the one the dispatcher claims and delivers.
ALTER TABLE outbox ADD COLUMN batch_id bigint;
-- Done without sending: the alarm was acknowledged or cleared before a reminder or escalation
-- went out, or the notification was merged into another in its batch.
ALTER TABLE outbox ADD COLUMN superseded boolean NOT NULL DEFAULT false;
CREATE INDEX outbox_batches ON outbox (batch_id) WHERE batch_id IS NOT NULL;
CREATE INDEX outbox_alarm ON outbox (alarm_id, created_at);
-- At most one reminder of an alarm waits at a time, whatever number of dispatchers run.
CREATE UNIQUE INDEX outbox_one_pending_reminder ON outbox (alarm_id)
    WHERE kind = 'reminder' AND done_at IS NULL;

-- When each group last went out, locked while a dispatcher forms its next batch.
CREATE TABLE notify_groups (
    group_key       text PRIMARY KEY,
    last_sent_at    timestamptz
);

-- A duty app signs in to the broker as its person and reads only that person's topic.
ALTER TABLE mqtt_accounts DROP CONSTRAINT mqtt_accounts_kind_check;
ALTER TABLE mqtt_accounts ADD CONSTRAINT mqtt_accounts_kind_check
    CHECK (kind IN ('device', 'gateway', 'person'));
ALTER TABLE mqtt_accounts ADD COLUMN person_id int UNIQUE REFERENCES people (id);
ALTER TABLE mqtt_accounts ADD CONSTRAINT mqtt_accounts_person_check
    CHECK ((kind = 'person') = (person_id IS NOT NULL));
