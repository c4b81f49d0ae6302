-- The run log: ops.sync_run, ops.watermark, and what a merge reads of them.

-- name: record_failure
-- A run's row replaced by its failure (MERGE INTO: DuckLake has no keys for INSERT OR REPLACE).
MERGE INTO ops.sync_run AS r
USING (
    SELECT $run AS sync_run_id, $county AS county_code, $entity AS entity,
           $when AS started_at, $when AS finished_at, 'failed' AS status, $error AS error
) AS s
ON r.sync_run_id = s.sync_run_id AND r.county_code = s.county_code AND r.entity = s.entity
WHEN MATCHED THEN UPDATE SET started_at = s.started_at, finished_at = s.finished_at,
    status = s.status, error = s.error
WHEN NOT MATCHED THEN INSERT BY NAME;

-- name: latest_reject_counts
-- (rejected, total) records of the county's latest merged or refused sync.
WITH latest AS (
    SELECT sync_run_id FROM ops.sync_run
    WHERE county_code = $county AND status IN ('succeeded', 'refused')
    ORDER BY finished_at DESC, sync_run_id DESC LIMIT 1)
SELECT sum(rejected), sum(accepted) + sum(rejected)
FROM ops.sync_run JOIN latest USING (sync_run_id)
WHERE county_code = $county;

-- name: watermarks
SELECT name, value FROM ops.watermark WHERE county_code = $county ORDER BY name;

-- name: drop_watermarks
DELETE FROM ops.watermark WHERE county_code = $county AND list_contains($names, name);

-- name: open_conflicts
SELECT count(*) FROM ops.conflict
WHERE resolved_at IS NULL AND $county IN (county_code_a, county_code_b);

-- name: merge_reject_table
CREATE OR REPLACE TEMP TABLE {table} (
    entity VARCHAR, source_key VARCHAR, rule VARCHAR, column_name VARCHAR,
    value VARCHAR, message VARCHAR, raw_ref VARCHAR,
    owner_county VARCHAR, owner_source_key VARCHAR);

-- name: merge_reject_counts
SELECT entity, count(DISTINCT source_key) FROM _merge_reject GROUP BY entity;

-- name: row_count
SELECT count(*) FROM {table};

-- name: live_count
SELECT '{entity}', count(*) FROM core.{entity} WHERE county_code = $county AND deleted_at IS NULL;
