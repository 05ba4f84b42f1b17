-- Account namespaces (core/namespaces.py): a device's or gateway's uid is its broker username,
-- so it may not take the prefixes of the platform's service accounts ('svc-') or of duty apps
-- ('duty-'), in any letter case. NOT VALID: rows registered before this rule are not checked
-- here; 'shouwang broker sync' reports and skips such an account instead of failing.
ALTER TABLE devices ADD CONSTRAINT devices_uid_namespace
    CHECK (uid !~* '^(svc|duty)-') NOT VALID;
ALTER TABLE gateways ADD CONSTRAINT gateways_uid_namespace
    CHECK (uid !~* '^(svc|duty)-') NOT VALID;
