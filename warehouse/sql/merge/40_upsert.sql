-- name: upsert
-- Staged rows into core. Changed (row_hash differs) or soft-deleted-and-back rows take every
-- column and lose deleted_at; unchanged rows only record that this sync saw them; new rows are
-- inserted with first_seen_at = now. first_seen_at is never overwritten.
MERGE INTO core.{entity} AS c
USING {stage} AS s
ON {key_join_cs}
WHEN MATCHED THEN UPDATE SET  -- ONE matched action: DuckLake's MERGE takes no second one
    {update_set},
    county_code = CASE WHEN {changed} THEN $county ELSE c.county_code END,
    source_key = CASE WHEN {changed} THEN s.source_key ELSE c.source_key END,
    source_updated_at = CASE WHEN {changed} THEN s.source_updated_at ELSE c.source_updated_at END,
    raw_ref = CASE WHEN {changed} THEN s.raw_ref ELSE c.raw_ref END,
    row_hash = CASE WHEN {changed} THEN s.row_hash ELSE c.row_hash END,
    deleted_at = CASE WHEN {changed} THEN NULL ELSE c.deleted_at END,
    last_synced_at = $now, sync_run_id = $run,
    source_platform = $platform  -- a county that changed platform kind: every row says so
WHEN NOT MATCHED THEN INSERT ({insert_cols}, county_code, source_platform, source_key,
                              source_updated_at, raw_ref, row_hash, first_seen_at,
                              last_synced_at, sync_run_id, deleted_at)
    VALUES ({insert_vals}, $county, $platform, s.source_key,
            s.source_updated_at, s.raw_ref, s.row_hash, $now,
            $now, $run, NULL);

-- name: insert_new
-- The upsert when no staged row's key is in core (counts: matched = 0; a county's first load):
-- exactly the MERGE's NOT MATCHED branch, without joining core.
INSERT INTO core.{entity} ({insert_cols}, county_code, source_platform, source_key,
                           source_updated_at, raw_ref, row_hash, first_seen_at,
                           last_synced_at, sync_run_id, deleted_at)
SELECT {insert_vals}, $county, $platform, s.source_key,
       s.source_updated_at, s.raw_ref, s.row_hash, $now,
       $now, $run, NULL
FROM {stage} AS s;

-- The rows the hash diff found the same ({diff}, same) get what the MERGE writes into an
-- unchanged row after the COMMIT, in bounded pieces: 45_touch.sql, warehouse/touch.py.
