-- 006_known_divisions: seeded reference data (the division list seeds core.region) and the
-- export time that workbook rows now carry as source_updated_at.
CREATE TABLE IF NOT EXISTS ops.seed (
    name VARCHAR PRIMARY KEY,
    checksum VARCHAR,
    applied_at TIMESTAMPTZ,
    rows_added BIGINT
);
COMMENT ON TABLE ops.seed IS '种子数据: reference lists loaded into the warehouse (divisions → core.region rows with source_platform seed), with the checksum of the files last loaded';
COMMENT ON COLUMN ops.seed.name IS 'name — 名称: which list (divisions: seeds/divisions/*.csv)';
COMMENT ON COLUMN ops.seed.checksum IS 'checksum — 校验和: SHA-256 of the files when last loaded; a change loads the new rows';
COMMENT ON COLUMN ops.seed.applied_at IS 'applied_at — 加载时间: when they were loaded';
COMMENT ON COLUMN ops.seed.rows_added IS 'rows_added — 新增行数: rows the load added (existing rows are never overwritten)';
COMMENT ON COLUMN core.region.source_updated_at IS 'source_updated_at — 来源更新时间: when the source last changed the record (Asia/Shanghai at the source, stored as an instant); workbook rows: the export time of the file (its 导出时间, else the index''s exportDate at 00:00) that first showed this version; NULL for division rows seeded from seeds/divisions';
COMMENT ON COLUMN core.household.source_updated_at IS 'source_updated_at — 来源更新时间: when the source last changed the record (Asia/Shanghai at the source, stored as an instant); workbook rows: the export time of the file (its 导出时间, else the index''s exportDate at 00:00) that first showed this version; NULL for division rows seeded from seeds/divisions';
COMMENT ON COLUMN core.household_history.source_updated_at IS 'source_updated_at — 来源更新时间: when the source last changed the record (Asia/Shanghai at the source, stored as an instant); workbook rows: the export time of the file (its 导出时间, else the index''s exportDate at 00:00) that first showed this version; NULL for division rows seeded from seeds/divisions';
COMMENT ON COLUMN core.person.source_updated_at IS 'source_updated_at — 来源更新时间: when the source last changed the record (Asia/Shanghai at the source, stored as an instant); workbook rows: the export time of the file (its 导出时间, else the index''s exportDate at 00:00) that first showed this version; NULL for division rows seeded from seeds/divisions';
COMMENT ON COLUMN core.person_history.source_updated_at IS 'source_updated_at — 来源更新时间: when the source last changed the record (Asia/Shanghai at the source, stored as an instant); workbook rows: the export time of the file (its 导出时间, else the index''s exportDate at 00:00) that first showed this version; NULL for division rows seeded from seeds/divisions';
COMMENT ON COLUMN core.measure.source_updated_at IS 'source_updated_at — 来源更新时间: when the source last changed the record (Asia/Shanghai at the source, stored as an instant); workbook rows: the export time of the file (its 导出时间, else the index''s exportDate at 00:00) that first showed this version; NULL for division rows seeded from seeds/divisions';
COMMENT ON COLUMN core.loan.source_updated_at IS 'source_updated_at — 来源更新时间: when the source last changed the record (Asia/Shanghai at the source, stored as an instant); workbook rows: the export time of the file (its 导出时间, else the index''s exportDate at 00:00) that first showed this version; NULL for division rows seeded from seeds/divisions';
COMMENT ON COLUMN core.project.source_updated_at IS 'source_updated_at — 来源更新时间: when the source last changed the record (Asia/Shanghai at the source, stored as an instant); workbook rows: the export time of the file (its 导出时间, else the index''s exportDate at 00:00) that first showed this version; NULL for division rows seeded from seeds/divisions';
COMMENT ON COLUMN core.cadre.source_updated_at IS 'source_updated_at — 来源更新时间: when the source last changed the record (Asia/Shanghai at the source, stored as an instant); workbook rows: the export time of the file (its 导出时间, else the index''s exportDate at 00:00) that first showed this version; NULL for division rows seeded from seeds/divisions';
COMMENT ON COLUMN core.household_cadre.source_updated_at IS 'source_updated_at — 来源更新时间: when the source last changed the record (Asia/Shanghai at the source, stored as an instant); workbook rows: the export time of the file (its 导出时间, else the index''s exportDate at 00:00) that first showed this version; NULL for division rows seeded from seeds/divisions';
COMMENT ON COLUMN core.region.source_platform IS 'source_platform — 来源平台: kind of county platform that delivered it: bigdata / battle / workbook; seed for a division seeded from seeds/divisions that no platform has sent yet';
