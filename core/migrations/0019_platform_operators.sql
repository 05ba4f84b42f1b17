-- Platform operators in the API, and platform alarms on the regulator's dashboard.

-- An API token for a platform operator (the county's IT contact, the vendor's on-call): no scope
-- column at all, since it covers the platform rather than any community. It reads and
-- acknowledges platform alarms and keeps the platform operators' roster (docs/api.md).
ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_role_check;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_role_check CHECK (role IN ('county_regulator',
    'township', 'firm_admin', 'duty_staff', 'maintenance_unit', 'platform_operator'));
ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_check;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_check CHECK (CASE role
    WHEN 'county_regulator' THEN firm_id IS NULL AND community_id IS NULL
        AND maintenance_unit_id IS NULL
    WHEN 'township' THEN region_id IS NOT NULL AND firm_id IS NULL AND community_id IS NULL
        AND maintenance_unit_id IS NULL
    WHEN 'firm_admin' THEN firm_id IS NOT NULL AND region_id IS NULL AND community_id IS NULL
        AND maintenance_unit_id IS NULL
    WHEN 'duty_staff' THEN (firm_id IS NULL) <> (community_id IS NULL) AND region_id IS NULL
        AND maintenance_unit_id IS NULL
    WHEN 'maintenance_unit' THEN maintenance_unit_id IS NOT NULL AND region_id IS NULL
        AND firm_id IS NULL AND community_id IS NULL
    WHEN 'platform_operator' THEN region_id IS NULL AND firm_id IS NULL AND community_id IS NULL
        AND maintenance_unit_id IS NULL
END);

-- The platform's own alarms for Grafana: the regulator's logins only (a firm's or a township's
-- login sees no row; they are nobody's community).
CREATE VIEW dash.platform_alarms WITH (security_barrier) AS
SELECT a.id, a.kind, a.subject, a.severity, a.state, a.opened_at, a.last_triggered_at,
       a.triggers, a.acknowledged_at, a.acknowledged_by, a.cleared_at, a.cleared_reason
FROM platform_alarms a
WHERE pg_has_role(current_user, 'shouwang_regulator', 'USAGE');
GRANT SELECT ON dash.platform_alarms TO shouwang_dashboards;
