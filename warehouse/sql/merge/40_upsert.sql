-- name: upsert
-- Staged rows into core. Changed (row_hash differs) or soft-deleted-and-back rows take every
-- column and lose deleted_at; unchanged rows only record that this sync saw them; new rows are
-- inserted with first_seen_at = now. first_seen_at is never overwritten.
MERGE INTO core.{entity} AS c
USING {stage} AS s
ON {key_join_cs}
WHEN MATCHED AND (c.row_hash <> s.row_hash OR c.deleted_at IS NOT NULL) THEN UPDATE SET
    {update_set},
    county_code = $county, source_platform = $platform, source_key = s.source_key,
    source_updated_at = s.source_updated_at, raw_ref = s.raw_ref, row_hash = s.row_hash,
    last_synced_at = $now, sync_run_id = $run, deleted_at = NULL
WHEN MATCHED THEN UPDATE SET last_synced_at = $now, sync_run_id = $run,
    source_platform = $platform  -- a county that changed platform kind: every row says so
WHEN NOT MATCHED THEN INSERT ({insert_cols}, county_code, source_platform, source_key,
                              source_updated_at, raw_ref, row_hash, first_seen_at,
                              last_synced_at, sync_run_id, deleted_at)
    VALUES ({insert_vals}, $county, $platform, s.source_key,
            s.source_updated_at, s.raw_ref, s.row_hash, $now,
            $now, $run, NULL);
