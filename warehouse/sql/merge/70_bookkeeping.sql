-- What the sync leaves in raw and ops. {frames} are Arrow views registered by the caller.

-- name: pages
-- Landed pages are indexed in the same transaction as the merge (counties land in parallel,
-- only the merge writes). A replayed sync lands no new page ids. (MERGE INTO, not ON CONFLICT:
-- DuckLake has no keys.)
MERGE INTO raw.page AS p
USING (
    SELECT DISTINCT ON (page_id) page_id, $county AS county_code, $run AS sync_run_id, entity,
           url, fetched_at::TIMESTAMPTZ AS fetched_at, sha256, size, content_type, path,
           meta::JSON AS meta
    FROM {pages}
) AS s
ON p.page_id = s.page_id
WHEN NOT MATCHED THEN INSERT BY NAME;

-- name: issues
-- Validation's rejects or findings ({issues}) into ops.reject / ops.finding ({target}).
INSERT INTO {target} BY NAME
SELECT $run AS sync_run_id, $county AS county_code, entity, source_key, rule, column_name,
       value, message, raw_ref, $now AS recorded_at
FROM {issues};

-- name: merge_rejects
INSERT INTO ops.reject BY NAME
SELECT $run AS sync_run_id, $county AS county_code, entity, source_key, rule, column_name,
       value, message, raw_ref, $now AS recorded_at
FROM _merge_reject;

-- name: watermarks
-- Cursors advance only here, in the transaction of the merge they cover.
MERGE INTO ops.watermark AS w
USING (
    SELECT $county AS county_code, name, value, $now AS updated_at, $run AS sync_run_id
    FROM {marks}
) AS s
ON w.county_code = s.county_code AND w.name = s.name
WHEN MATCHED THEN UPDATE
    SET value = s.value, updated_at = s.updated_at, sync_run_id = s.sync_run_id
WHEN NOT MATCHED THEN INSERT BY NAME;

-- name: sync_runs
-- One row per county x entity. A replay merges under its own run id (replay_of = the landing's
-- sync id), so the original run's rows are never replaced.
INSERT INTO ops.sync_run BY NAME
SELECT $run AS sync_run_id, $county AS county_code, entity, $mode AS mode,
       $started AS started_at, $finished AS finished_at, fetched, accepted, rejected, findings,
       deleted, inserted, updated, unchanged, source_count, watermark_before, watermark_after,
       $status AS status, $error AS error, $replay_of AS replay_of
FROM {runs};

-- name: quarantine
-- The rejected records themselves ({rows}: entity, source_key, raw_ref, record JSON; piece
-- {piece} of them by _piece), each once per county, entity, key and content: a record re-sent
-- unchanged is not stored again (record_hash leaves out raw_ref, which differs in every sync;
-- migration 005).
INSERT INTO ops.quarantine BY NAME
SELECT $run AS sync_run_id, $county AS county_code, r.entity, r.source_key, r.raw_ref,
       r.record, $now AS recorded_at, r.record_hash
FROM (SELECT entity, source_key, raw_ref, record::JSON AS record,
             sha256(CAST(json_merge_patch(record::JSON, '{{"raw_ref": null}}') AS VARCHAR)) AS record_hash
      FROM {rows} WHERE _piece = {piece}) AS r
WHERE NOT EXISTS (
    SELECT 1 FROM ops.quarantine AS q
    WHERE q.county_code = $county AND q.entity = r.entity AND q.source_key = r.source_key
      AND q.record_hash = r.record_hash);
