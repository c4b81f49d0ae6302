-- A rejected record is quarantined once per (county, entity, key, content), not again on every
-- sync that re-sends it unchanged. record_hash is the sha256 of the record without raw_ref
-- (which names the page, so differs in every sync); the merge skips a record whose hash the
-- county's quarantine already holds for that key (warehouse/sql/merge/70_bookkeeping.sql).
ALTER TABLE ops.quarantine ADD COLUMN record_hash VARCHAR;
UPDATE ops.quarantine
SET record_hash = sha256(CAST(json_merge_patch(record, '{"raw_ref": null}') AS VARCHAR));
-- Copies stored before: keep the first.
DELETE FROM ops.quarantine
WHERE rowid IN (
    SELECT rowid FROM (
        SELECT rowid, row_number() OVER (
            PARTITION BY county_code, entity, source_key, record_hash
            ORDER BY recorded_at, sync_run_id) AS copy
        FROM ops.quarantine)
    WHERE copy > 1);
COMMENT ON COLUMN ops.quarantine.record_hash IS 'record_hash — 内容摘要: sha256 of the record without raw_ref: a record is kept once per county, entity, key and content';
COMMENT ON COLUMN ops.quarantine.sync_run_id IS 'sync_run_id — 同步批次: the first sync that rejected the record with this content';
