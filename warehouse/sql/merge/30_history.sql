-- Versions of household and person records (core.<entity>_history). Runs BEFORE the upsert,
-- while core still holds the previous state. One open version (valid_to NULL) per live key.

-- name: close_changed
-- A live record whose contract columns changed: its open version ends now. (A soft-deleted
-- record has no open version: the deletion closed it.)
UPDATE core.{entity}_history AS h
SET valid_to = $now, closed_reason = 'changed'
FROM {stage} AS s, core.{entity} AS c
WHERE h.valid_to IS NULL AND {key_join_hs} AND {key_join_cs}
  AND c.deleted_at IS NULL AND c.row_hash <> s.row_hash;

-- name: open_versions
-- A new version for new records, changed records (closed just above) and records that come back
-- after a deletion: exactly the staged keys without an open version. Unchanged records keep
-- theirs, so a re-sync that changes nothing adds no version. (Decided from core, not by
-- searching the ever-growing history.)
INSERT INTO core.{entity}_history BY NAME
SELECT s.* EXCLUDE (_row),
       $now AS valid_from,
       CASE WHEN c.row_hash IS NULL THEN 'new'
            WHEN c.deleted_at IS NOT NULL THEN 'revived'
            ELSE 'changed' END AS change_kind,
       $county AS county_code, $platform AS source_platform, $run AS sync_run_id
FROM {stage} AS s LEFT JOIN core.{entity} AS c ON {key_join_cs}
WHERE c.row_hash IS NULL OR c.row_hash <> s.row_hash OR c.deleted_at IS NOT NULL;

-- name: open_new
-- open_versions when no staged key is in core (counts: matched = 0; a first load): every staged
-- row is new, so the join with core is skipped.
INSERT INTO core.{entity}_history BY NAME
SELECT s.* EXCLUDE (_row),
       $now AS valid_from,
       'new' AS change_kind,
       $county AS county_code, $platform AS source_platform, $run AS sync_run_id
FROM {stage} AS s;
