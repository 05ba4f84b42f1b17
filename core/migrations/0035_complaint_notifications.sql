-- Complaints reach the people on duty (docs/pages.md, "Complaints"; docs/operations.md §10).
-- lifecycle/complaints.py writes a 'complaint_filed' row in the same transaction as the
-- complaint's work order; notify delivers it like an alarm's notice, to whoever holds the entry's
-- responsible party's duty for the community. A complaint has no alarm: its rows name the work
-- order instead, and only the complaint kinds may lack an alarm (nor may they carry one).
-- 'complaint_escalation' is an escalation step of a complaint's work order that fell due before
-- anyone took it on (notify.outbox.fire_escalations).
--
-- Grants: nothing new. The API (which files complaints) writes every table but telemetry's and
-- the catalogue's, the outbox and escalation_steps included (0021); notify reads work_orders and
-- writes the outbox (0021). The payload carries what the message needs, so notify never reads
-- the complaint itself (nor the resident's phone in it).

ALTER TABLE outbox ALTER COLUMN alarm_id DROP NOT NULL;
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check
    CHECK (kind IN ('alarm_opened', 'alarm_cleared', 'alarm_raised', 'escalation', 'reminder',
        'voice_call', 'complaint_filed', 'complaint_escalation'));
ALTER TABLE outbox ADD CONSTRAINT outbox_alarm_or_complaint CHECK (
    CASE WHEN kind IN ('complaint_filed', 'complaint_escalation')
        THEN alarm_id IS NULL AND work_order_id IS NOT NULL
        ELSE alarm_id IS NOT NULL END);
-- One notice per filed complaint; an escalation finds it here to copy its payload.
CREATE UNIQUE INDEX outbox_one_complaint_filed ON outbox (work_order_id)
    WHERE kind = 'complaint_filed';
