-- Escalation steps that fall due become notifications to the step's party.
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check
    CHECK (kind IN ('alarm_opened', 'alarm_cleared', 'alarm_raised', 'escalation'));
ALTER TABLE outbox ADD COLUMN notify_party text;
