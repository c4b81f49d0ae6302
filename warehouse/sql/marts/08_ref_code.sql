-- ref.code: the city code tables, for analysts (published in the snapshot). Coded columns in
-- core and mart hold the code; this table gives its Chinese and English label per code list.
-- Source: seeds/codes.csv (the connectors map platform labels and codes to the same rows).

CREATE SCHEMA IF NOT EXISTS ref;

CREATE OR REPLACE TABLE ref.code AS
SELECT code_table AS code_list, code, label AS label_zh, label_en
FROM seed_csv(getvariable('hub_seeds') || '/codes.csv');

COMMENT ON TABLE ref.code IS '代码表: the city code tables: one row per code list and code, with its Chinese and English label (seeds/codes.csv)';
COMMENT ON COLUMN ref.code.code_list IS 'code_list — 代码表名: the code list, e.g. poverty_cause (main_cause, other_causes), relation_to_head, health';
COMMENT ON COLUMN ref.code.code IS 'code — 代码: the value coded columns hold, e.g. illness';
COMMENT ON COLUMN ref.code.label_zh IS 'label_zh — 中文名称: the standard Chinese label, e.g. 因病';
COMMENT ON COLUMN ref.code.label_en IS 'label_en — 英文名称: an English label, e.g. illness';
