-- Analytics: a platform alarm for a learned model whose false alarms drift above its target.
-- 'model_drift' (subject: the list entry's event code): over the last days the entry's
-- multivariate alarms judged false (closed as false alarms, or recovered on their own before
-- anyone responded) came at several times the entry's target rate per device-day. Cleared once
-- the rate is back within bounds.
ALTER TABLE platform_alarms DROP CONSTRAINT platform_alarms_kind_check;
ALTER TABLE platform_alarms ADD CONSTRAINT platform_alarms_kind_check CHECK (kind IN (
    'feed_silent', 'mass_silence', 'detector_quarantined', 'stage_restarted', 'model_drift'));
