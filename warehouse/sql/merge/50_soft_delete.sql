-- Soft deletes: rows are never removed; deleted_at is set and the open history version closed.
-- Candidates go to the temp table _gone_{entity} first, so the caller can apply the safety
-- stop (too large a share of the county's live rows disappearing) before anything changes.

-- name: gone_table
CREATE OR REPLACE TEMP TABLE _gone_{entity} AS
SELECT {key_cols_c}, c.source_key, $now AS deleted_at, '' AS how
FROM core.{entity} AS c WHERE false;

-- name: by_feed
-- The deletion feed names the platform's key. A deletion older than the version we hold (the
-- record was changed after it was deleted, e.g. re-created) does not apply.
INSERT INTO _gone_{entity}
SELECT {key_cols_c}, c.source_key, coalesce(d.deleted_at::TIMESTAMPTZ, $now), 'feed'
FROM core.{entity} AS c JOIN {deletions} AS d ON d.source_key = c.source_key
WHERE c.county_code = $county AND c.deleted_at IS NULL
  AND (d.deleted_at IS NULL OR c.source_updated_at IS NULL
       OR d.deleted_at::TIMESTAMPTZ >= c.source_updated_at)
QUALIFY row_number() OVER (PARTITION BY c.source_key ORDER BY d.deleted_at DESC) = 1;

-- name: by_absence
-- A full listing names every record the source holds; a live row of this county whose key it
-- does not name was deleted at the source. The listing ({listing}) holds every delivered key,
-- rejected rows included: a rejected record was listed, so it still exists.
INSERT INTO _gone_{entity}
SELECT {key_cols_c}, c.source_key, $now, 'absent'
FROM core.{entity} AS c
WHERE c.county_code = $county AND c.deleted_at IS NULL
  AND c.source_platform IS DISTINCT FROM 'seed'  -- seeded divisions no platform has sent
  AND NOT EXISTS (SELECT 1 FROM {listing} AS l WHERE l.source_key = c.source_key)
  AND NOT EXISTS (SELECT 1 FROM _gone_{entity} AS g WHERE g.source_key = c.source_key);

-- name: cascade_persons
-- The members of a deleted household go with it.
INSERT INTO _gone_person
SELECT p.person_no, p.source_key, g.deleted_at, 'household_deleted'
FROM core.person AS p JOIN _gone_household AS g ON g.household_no = p.household_no
WHERE p.deleted_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM _gone_person AS x WHERE x.person_no = p.person_no);

-- name: apply
UPDATE core.{entity} AS c SET deleted_at = g.deleted_at, sync_run_id = $run
FROM _gone_{entity} AS g WHERE {key_join_cg};

-- name: close_history
UPDATE core.{entity}_history AS h SET valid_to = $now, closed_reason = 'deleted'
FROM _gone_{entity} AS g WHERE h.valid_to IS NULL AND {key_join_hg};
