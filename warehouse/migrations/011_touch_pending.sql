-- The touch of unchanged rows after the merge's COMMIT (warehouse/touch.py). A sync that finds a
-- row the same as core writes only last_synced_at / sync_run_id (and source_platform where it
-- differs); DuckDB keeps the new values of every row a transaction UPDATEs in memory until
-- COMMIT (they do not spill), so a full re-read of a large county ran out of the merge's bound.
-- The merge's transaction records here what remains to touch, durably, and the touch follows in
-- bounded pieces, each removing its keys in the same transaction as its UPDATE. A row of
-- ops.touch_pending exists exactly while keys of its run and entity remain.
CREATE TABLE IF NOT EXISTS ops.touch_pending (
    sync_run_id VARCHAR,
    county_code VARCHAR,
    entity VARCHAR,
    synced_at TIMESTAMPTZ,
    source_platform VARCHAR,
    row_count BIGINT,
    pieces INTEGER,
    recorded_at TIMESTAMPTZ
);
COMMENT ON TABLE ops.touch_pending IS '待标记同步: per sync x entity whose unchanged rows still wait for last_synced_at/sync_run_id (the touch after the merge commit); empty unless a run was interrupted after its commit: the next merge of the county finishes it first';
COMMENT ON COLUMN ops.touch_pending.sync_run_id IS 'sync_run_id — 同步批次: the sync that saw the rows unchanged (ops.sync_run, status succeeded)';
COMMENT ON COLUMN ops.touch_pending.county_code IS 'county_code — 县区代码: county of the sync';
COMMENT ON COLUMN ops.touch_pending.entity IS 'entity — 实体: core table whose rows wait';
COMMENT ON COLUMN ops.touch_pending.synced_at IS 'synced_at — 同步时间: the last_synced_at the rows receive (the merge''s time)';
COMMENT ON COLUMN ops.touch_pending.source_platform IS 'source_platform — 来源平台: the platform kind written where a row says another';
COMMENT ON COLUMN ops.touch_pending.row_count IS 'row_count — 行数: unchanged rows the merge recorded for the touch';
COMMENT ON COLUMN ops.touch_pending.pieces IS 'pieces — 分片数: the touch runs in this many transactions (key hash)';
COMMENT ON COLUMN ops.touch_pending.recorded_at IS 'recorded_at — 记录时间: when the merge committed the record';

CREATE TABLE IF NOT EXISTS ops.touch_pending_key (
    sync_run_id VARCHAR,
    entity VARCHAR,
    piece INTEGER,
    key_1 VARCHAR,
    key_2 VARCHAR
);
COMMENT ON TABLE ops.touch_pending_key IS '待标记行: the keys of the unchanged rows ops.touch_pending waits for, removed piece by piece as they are touched';
COMMENT ON COLUMN ops.touch_pending_key.sync_run_id IS 'sync_run_id — 同步批次: the sync that saw the row unchanged';
COMMENT ON COLUMN ops.touch_pending_key.entity IS 'entity — 实体: core table of the row';
COMMENT ON COLUMN ops.touch_pending_key.piece IS 'piece — 分片: the touch transaction the key belongs to (hash of the key modulo pieces)';
COMMENT ON COLUMN ops.touch_pending_key.key_1 IS 'key_1 — 主键: the row''s key (its first key column)';
COMMENT ON COLUMN ops.touch_pending_key.key_2 IS 'key_2 — 主键第二列: the second key column (household_cadre), else NULL';
