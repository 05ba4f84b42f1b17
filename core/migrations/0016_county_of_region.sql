-- The county a region belongs to (regions nest county → township → community centre): whose
-- county overrides of the responsibility list apply to a community.
CREATE FUNCTION county_of_region(region int) RETURNS text LANGUAGE sql STABLE AS $$
    WITH RECURSIVE up AS (
        SELECT id, code, kind, parent_id FROM regions WHERE id = region
        UNION ALL
        SELECT r.id, r.code, r.kind, r.parent_id FROM regions r JOIN up ON r.id = up.parent_id
    )
    SELECT code FROM up WHERE kind = 'county' LIMIT 1
$$;
