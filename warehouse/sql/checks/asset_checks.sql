-- The per-county asset checks (pipelines/defs/checks.py), against the live warehouse.

-- name: latest_source_count
-- What the source said it holds, and what was accepted, in the county's latest merged sync.
SELECT source_count, accepted FROM ops.sync_run
WHERE county_code = $county AND entity = $entity AND status = 'succeeded'
ORDER BY finished_at DESC LIMIT 1;

-- name: live_rows
SELECT count(*) FROM core.{entity} WHERE county_code = $county AND deleted_at IS NULL;

-- name: quarantined_live
-- Records the source holds but the warehouse quarantined: rejected by a merged sync and
-- never accepted since (an incremental sync does not resend what it rejected before).
SELECT count(DISTINCT r.source_key) FROM ops.reject r
WHERE r.county_code = $county AND r.entity = $entity
  AND r.sync_run_id IN (SELECT sync_run_id FROM ops.sync_run
                        WHERE county_code = $county AND status = 'succeeded')
  AND NOT EXISTS (SELECT 1 FROM core.{entity} c
                  WHERE c.county_code = r.county_code AND c.source_key = r.source_key);

-- name: orphans
-- Live rows whose reference ({column} -> {parent}.{parent_column}) points at no live parent.
SELECT count(*) FROM core.{entity} c
WHERE c.county_code = $county AND c.deleted_at IS NULL AND c.{column} IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM {parent} p
                  WHERE p.{parent_column} = c.{column} AND p.deleted_at IS NULL);

-- name: new_conflicts
-- Conflicts the county's latest merged sync recorded.
SELECT count(*) FROM ops.conflict
WHERE (county_code_a = $county OR county_code_b = $county) AND sync_run_id = (
    SELECT max(sync_run_id) FROM ops.sync_run
    WHERE county_code = $county AND status = 'succeeded');
