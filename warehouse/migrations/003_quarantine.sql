-- The rejected records themselves, as the pipeline understood them, so that nothing a source
-- sent is out of reach of SQL: ops.reject says why, ops.quarantine holds what.
CREATE TABLE ops.quarantine (
    sync_run_id VARCHAR,
    county_code VARCHAR,
    entity VARCHAR,
    source_key VARCHAR,
    raw_ref VARCHAR,
    record JSON,
    recorded_at TIMESTAMPTZ
);
COMMENT ON TABLE ops.quarantine IS '隔离记录: every rejected record of a sync, in the city standard''s columns as normalised (JSON); why it was rejected is in ops.reject';
COMMENT ON COLUMN ops.quarantine.sync_run_id IS 'sync_run_id — 同步批次: the sync that rejected the record';
COMMENT ON COLUMN ops.quarantine.county_code IS 'county_code — 县区代码: county whose platform sent the record';
COMMENT ON COLUMN ops.quarantine.entity IS 'entity — 实体: household, person, measure, …';
COMMENT ON COLUMN ops.quarantine.source_key IS 'source_key — 来源主键: the platform''s key of the record';
COMMENT ON COLUMN ops.quarantine.raw_ref IS 'raw_ref — 原始位置: <page_id>#<row>: the landed page (raw.page) and row it came from';
COMMENT ON COLUMN ops.quarantine.record IS 'record — 记录内容: the record after normalisation (city codes where they mapped, values as sent where they did not); contains PII';
COMMENT ON COLUMN ops.quarantine.recorded_at IS 'recorded_at — 记录时间: when the sync wrote it';
