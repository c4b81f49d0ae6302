-- The touch of the rows the hash diff found the same as core (warehouse/touch.py): inside the
-- merge's transaction only their keys are recorded (ops.touch_pending_key: an INSERT, which
-- DuckDB writes out to the file as it grows, and DuckLake to Parquet); after the COMMIT each
-- piece of keys gets last_synced_at / sync_run_id (and source_platform where it differs) in a
-- transaction of its own that also removes the piece's keys. DuckDB keeps the new values of the
-- rows a transaction UPDATEs in memory until COMMIT: one piece's worth, not the county's.
--
-- {key_1} / {key_2}: the entity's key columns in {diff} (key_2 NULL for a one-column key);
-- {key_join_cp}: core row c against a pending key p.

-- name: same_rows
SELECT count(*) FROM {diff} WHERE same;

-- name: touch_same
-- A small touch (warehouse/touch.py, small_touch_rows) inside the merge's transaction: what
-- touch_piece writes into the same rows, from the diff directly.
UPDATE core.{entity} AS c
SET last_synced_at = $now, sync_run_id = $run
FROM (SELECT {key_1} AS key_1, {key_2} AS key_2 FROM {diff} AS s WHERE s.same) AS p
WHERE {key_join_cp} AND c.county_code = $county;

-- name: touch_same_platform
-- ... and what touch_platform_piece writes: source_platform only where it differs (a column
-- an UPDATE writes is rewritten at the checkpoint even where its value stays).
UPDATE core.{entity} AS c
SET source_platform = $platform
FROM (SELECT {key_1} AS key_1, {key_2} AS key_2 FROM {diff} AS s WHERE s.same) AS p
WHERE {key_join_cp} AND c.county_code = $county
  AND c.source_platform IS DISTINCT FROM $platform;

-- name: record_keys
-- The same rows' keys, each in piece hash(key) % $pieces.
INSERT INTO ops.touch_pending_key (sync_run_id, entity, piece, key_1, key_2)
SELECT $run, $entity, CAST(hash({key_1}, {key_2}) % $pieces AS INTEGER), {key_1}, {key_2}
FROM {diff} AS s
WHERE s.same;

-- name: record_pending
INSERT INTO ops.touch_pending (sync_run_id, county_code, entity, synced_at, source_platform,
                               row_count, pieces, recorded_at)
VALUES ($run, $county, $entity, $now, $platform, $rows, $pieces, $now);

-- name: pending_of_county
-- The county's pending touches, oldest first: a touch left by an interrupted run is finished
-- before the next merge's (and the sync ids sort by landing time, as the merges did).
SELECT sync_run_id, entity, synced_at, source_platform, row_count, pieces, recorded_at
FROM ops.touch_pending
WHERE county_code = $county
ORDER BY recorded_at, sync_run_id, entity;

-- name: pending_pieces
SELECT DISTINCT piece FROM ops.touch_pending_key
WHERE sync_run_id = $run AND entity = $entity
ORDER BY piece;

-- name: touch_piece
-- One piece: what the MERGE writes into an unchanged row. Only this county's rows: a key live
-- in core under this county is never taken over by another county's merge, and this county's
-- next merge finishes the touch first (warehouse/touch.py), so no later sync has changed them.
UPDATE core.{entity} AS c
SET last_synced_at = $synced_at, sync_run_id = $run
FROM (SELECT key_1, key_2 FROM ops.touch_pending_key
      WHERE sync_run_id = $run AND entity = $entity AND piece = $piece) AS p
WHERE {key_join_cp} AND c.county_code = $county;

-- name: touch_platform_piece
-- The same rows of a county that changed platform kind: source_platform only where it differs.
UPDATE core.{entity} AS c
SET source_platform = $platform
FROM (SELECT key_1, key_2 FROM ops.touch_pending_key
      WHERE sync_run_id = $run AND entity = $entity AND piece = $piece) AS p
WHERE {key_join_cp} AND c.county_code = $county
  AND c.source_platform IS DISTINCT FROM $platform;

-- name: forget_piece
DELETE FROM ops.touch_pending_key
WHERE sync_run_id = $run AND entity = $entity AND piece = $piece;

-- name: forget_pending
DELETE FROM ops.touch_pending
WHERE sync_run_id = $run AND entity = $entity AND county_code = $county;
