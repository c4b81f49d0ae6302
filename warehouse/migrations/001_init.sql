-- 001_init: the warehouse's schemas, core tables (city standard), history, raw landing index
-- and ops bookkeeping. Every table and column carries a COMMENT ('<column> — <中文>: <English>')
-- so an analyst's DESCRIBE / duckdb_columns() documents the warehouse. Applied once by
-- pipelines.warehouse.migrate(); never edit an applied migration: add NNN_next.sql instead.
-- DuckDB cannot comment on schemas (1.5), so the schemas are described here.

-- raw: 原始数据, every payload exactly as received, with where and when it came from (engineers only; not in the snapshot)
CREATE SCHEMA IF NOT EXISTS raw;
-- core: 核心数据, current state of every entity per the city standard, one row per key, plus *_history (PII: analysts with PII rights)
CREATE SCHEMA IF NOT EXISTS core;
-- ops: 运行记录, sync runs, watermarks, rejects, findings, conflicts
CREATE SCHEMA IF NOT EXISTS ops;
-- mart: 分析集市, aggregates and pseudonymised views for analysts and dashboards; no names, ID numbers or phone numbers
CREATE SCHEMA IF NOT EXISTS mart;

CREATE TABLE core.region (
    code VARCHAR,
    level VARCHAR,
    name VARCHAR,
    parent_code VARCHAR,
    is_poor_village BOOLEAN,
    poor_village_exit_year INTEGER,
    is_statistical_unit BOOLEAN,
    county_code VARCHAR,
    source_platform VARCHAR,
    source_key VARCHAR,
    source_updated_at TIMESTAMPTZ,
    first_seen_at TIMESTAMPTZ,
    last_synced_at TIMESTAMPTZ,
    sync_run_id VARCHAR,
    deleted_at TIMESTAMPTZ,
    row_hash VARCHAR,
    raw_ref VARCHAR,
    PRIMARY KEY (code)
);
COMMENT ON TABLE core.region IS '行政区划: administrative divisions: county, town and village codes of Shangluo; contract columns (city-standard.md) then lineage';
COMMENT ON COLUMN core.region.code IS 'code — 区划代码: 6 (county), 9 (town) or 12 (village) digit NBS division code';
COMMENT ON COLUMN core.region.level IS 'level — 级别: county / town / village';
COMMENT ON COLUMN core.region.name IS 'name — 名称: name of the division';
COMMENT ON COLUMN core.region.parent_code IS 'parent_code — 上级区划代码: code of the enclosing division';
COMMENT ON COLUMN core.region.is_poor_village IS 'is_poor_village — 是否贫困村: poor village (贫困村); villages only';
COMMENT ON COLUMN core.region.poor_village_exit_year IS 'poor_village_exit_year — 贫困村退出年度: year the village left the poor-village list; NULL if it has not';
COMMENT ON COLUMN core.region.is_statistical_unit IS 'is_statistical_unit — 是否统计单位: code 4xx/5xx: reservoir, forest farm or park, not a real township';
COMMENT ON COLUMN core.region.county_code IS 'county_code — 县区代码: 6-digit NBS code of the county whose platform delivered the record';
COMMENT ON COLUMN core.region.source_platform IS 'source_platform — 来源平台: kind of county platform that delivered it: bigdata / battle / workbook';
COMMENT ON COLUMN core.region.source_key IS 'source_key — 来源主键: the platform''s own key of the record, as text; matches deletion feeds and full listings';
COMMENT ON COLUMN core.region.source_updated_at IS 'source_updated_at — 来源更新时间: when the source last changed the record (Asia/Shanghai at the source, stored as an instant); NULL for workbook rows';
COMMENT ON COLUMN core.region.first_seen_at IS 'first_seen_at — 首次入库时间: when the warehouse first received the record';
COMMENT ON COLUMN core.region.last_synced_at IS 'last_synced_at — 最近同步时间: when a sync last delivered the record, changed or not';
COMMENT ON COLUMN core.region.sync_run_id IS 'sync_run_id — 同步批次: ops.sync_run id of the sync that last wrote the row';
COMMENT ON COLUMN core.region.deleted_at IS 'deleted_at — 删除时间: when the source deleted the record; NULL while the source still has it (rows are never physically removed)';
COMMENT ON COLUMN core.region.row_hash IS 'row_hash — 行哈希: MD5 of the contract columns: tells a changed record from an unchanged one';
COMMENT ON COLUMN core.region.raw_ref IS 'raw_ref — 原始数据位置: ''<raw.page page_id>#<row index>'' of the payload the current values came from';

CREATE TABLE core.household (
    household_no VARCHAR,
    town_code VARCHAR,
    village_code VARCHAR,
    head_person_no VARCHAR,
    poverty_attribute VARCHAR,
    poverty_status VARCHAR,
    main_cause VARCHAR,
    main_cause_label VARCHAR,
    other_causes VARCHAR[],
    identified_year INTEGER,
    exit_year INTEGER,
    relapse_year INTEGER,
    income_per_capita DECIMAL(12,2),
    member_count INTEGER,
    housing_safe BOOLEAN,
    water_safe BOOLEAN,
    phone VARCHAR,
    county_code VARCHAR,
    source_platform VARCHAR,
    source_key VARCHAR,
    source_updated_at TIMESTAMPTZ,
    first_seen_at TIMESTAMPTZ,
    last_synced_at TIMESTAMPTZ,
    sync_run_id VARCHAR,
    deleted_at TIMESTAMPTZ,
    row_hash VARCHAR,
    raw_ref VARCHAR,
    PRIMARY KEY (household_no)
);
COMMENT ON TABLE core.household IS '贫困户: registered poor households, one row per household_no; contract columns (city-standard.md) then lineage';
COMMENT ON COLUMN core.household.household_no IS 'household_no — 户编号: 16-digit household number: 12-digit village code + 4-digit sequence; the household''s key city-wide';
COMMENT ON COLUMN core.household.town_code IS 'town_code — 乡镇代码: 9-digit town code';
COMMENT ON COLUMN core.household.village_code IS 'village_code — 行政村代码: 12-digit village code';
COMMENT ON COLUMN core.household.head_person_no IS 'head_person_no — 户主人编号: person_no of the household head';
COMMENT ON COLUMN core.household.poverty_attribute IS 'poverty_attribute — 贫困户属性: general 一般 / dibao 低保 / tekun 特困供养(五保)';
COMMENT ON COLUMN core.household.poverty_status IS 'poverty_status — 脱贫状态: not_exited 未脱贫 / pre_exit 预脱贫 / exited 已脱贫 / relapsed 返贫';
COMMENT ON COLUMN core.household.main_cause IS 'main_cause — 主要致贫原因: city code of the main poverty cause (codes.md poverty_cause)';
COMMENT ON COLUMN core.household.main_cause_label IS 'main_cause_label — 致贫原因原始标签: the cause label as sent when it differs from the standard (因婚, 因丧 are stored as other)';
COMMENT ON COLUMN core.household.other_causes IS 'other_causes — 其他致贫原因: up to two further poverty-cause codes';
COMMENT ON COLUMN core.household.identified_year IS 'identified_year — 识别年度: year the household was identified as poor';
COMMENT ON COLUMN core.household.exit_year IS 'exit_year — 脱贫年度: year the household exited poverty; NULL if it has not';
COMMENT ON COLUMN core.household.relapse_year IS 'relapse_year — 返贫年度: year the household fell back into poverty; NULL if it has not';
COMMENT ON COLUMN core.household.income_per_capita IS 'income_per_capita — 人均纯收入: net income per household member, yuan per year';
COMMENT ON COLUMN core.household.member_count IS 'member_count — 家庭人口数: number of members as declared by the source';
COMMENT ON COLUMN core.household.housing_safe IS 'housing_safe — 住房安全: the household''s housing is safe';
COMMENT ON COLUMN core.household.water_safe IS 'water_safe — 饮水安全: the household''s drinking water is safe';
COMMENT ON COLUMN core.household.phone IS 'phone — 联系电话: contact phone number (PII)';
COMMENT ON COLUMN core.household.county_code IS 'county_code — 县区代码: 6-digit NBS code of the county whose platform delivered the record';
COMMENT ON COLUMN core.household.source_platform IS 'source_platform — 来源平台: kind of county platform that delivered it: bigdata / battle / workbook';
COMMENT ON COLUMN core.household.source_key IS 'source_key — 来源主键: the platform''s own key of the record, as text; matches deletion feeds and full listings';
COMMENT ON COLUMN core.household.source_updated_at IS 'source_updated_at — 来源更新时间: when the source last changed the record (Asia/Shanghai at the source, stored as an instant); NULL for workbook rows';
COMMENT ON COLUMN core.household.first_seen_at IS 'first_seen_at — 首次入库时间: when the warehouse first received the record';
COMMENT ON COLUMN core.household.last_synced_at IS 'last_synced_at — 最近同步时间: when a sync last delivered the record, changed or not';
COMMENT ON COLUMN core.household.sync_run_id IS 'sync_run_id — 同步批次: ops.sync_run id of the sync that last wrote the row';
COMMENT ON COLUMN core.household.deleted_at IS 'deleted_at — 删除时间: when the source deleted the record; NULL while the source still has it (rows are never physically removed)';
COMMENT ON COLUMN core.household.row_hash IS 'row_hash — 行哈希: MD5 of the contract columns: tells a changed record from an unchanged one';
COMMENT ON COLUMN core.household.raw_ref IS 'raw_ref — 原始数据位置: ''<raw.page page_id>#<row index>'' of the payload the current values came from';

CREATE TABLE core.household_history (
    valid_from TIMESTAMPTZ NOT NULL,
    valid_to TIMESTAMPTZ,
    change_kind VARCHAR NOT NULL,
    closed_reason VARCHAR,
    household_no VARCHAR,
    town_code VARCHAR,
    village_code VARCHAR,
    head_person_no VARCHAR,
    poverty_attribute VARCHAR,
    poverty_status VARCHAR,
    main_cause VARCHAR,
    main_cause_label VARCHAR,
    other_causes VARCHAR[],
    identified_year INTEGER,
    exit_year INTEGER,
    relapse_year INTEGER,
    income_per_capita DECIMAL(12,2),
    member_count INTEGER,
    housing_safe BOOLEAN,
    water_safe BOOLEAN,
    phone VARCHAR,
    county_code VARCHAR,
    source_platform VARCHAR,
    source_key VARCHAR,
    source_updated_at TIMESTAMPTZ,
    sync_run_id VARCHAR,
    row_hash VARCHAR,
    raw_ref VARCHAR
);
COMMENT ON TABLE core.household_history IS '贫困户历史: one row per version of a core.household record (valid_from, valid_to NULL = current); a re-sync that changes nothing adds no version; a deletion closes the version (closed_reason deleted)';
COMMENT ON COLUMN core.household_history.valid_from IS 'valid_from — 生效时间: when the warehouse started to hold this version';
COMMENT ON COLUMN core.household_history.valid_to IS 'valid_to — 失效时间: when this version was replaced or deleted; NULL for the current version';
COMMENT ON COLUMN core.household_history.change_kind IS 'change_kind — 变更类型: why this version began: new / changed / revived (deleted earlier, delivered again)';
COMMENT ON COLUMN core.household_history.closed_reason IS 'closed_reason — 关闭原因: why this version ended: changed / deleted; NULL while current';
COMMENT ON COLUMN core.household_history.household_no IS 'household_no — 户编号: 16-digit household number: 12-digit village code + 4-digit sequence; the household''s key city-wide';
COMMENT ON COLUMN core.household_history.town_code IS 'town_code — 乡镇代码: 9-digit town code';
COMMENT ON COLUMN core.household_history.village_code IS 'village_code — 行政村代码: 12-digit village code';
COMMENT ON COLUMN core.household_history.head_person_no IS 'head_person_no — 户主人编号: person_no of the household head';
COMMENT ON COLUMN core.household_history.poverty_attribute IS 'poverty_attribute — 贫困户属性: general 一般 / dibao 低保 / tekun 特困供养(五保)';
COMMENT ON COLUMN core.household_history.poverty_status IS 'poverty_status — 脱贫状态: not_exited 未脱贫 / pre_exit 预脱贫 / exited 已脱贫 / relapsed 返贫';
COMMENT ON COLUMN core.household_history.main_cause IS 'main_cause — 主要致贫原因: city code of the main poverty cause (codes.md poverty_cause)';
COMMENT ON COLUMN core.household_history.main_cause_label IS 'main_cause_label — 致贫原因原始标签: the cause label as sent when it differs from the standard (因婚, 因丧 are stored as other)';
COMMENT ON COLUMN core.household_history.other_causes IS 'other_causes — 其他致贫原因: up to two further poverty-cause codes';
COMMENT ON COLUMN core.household_history.identified_year IS 'identified_year — 识别年度: year the household was identified as poor';
COMMENT ON COLUMN core.household_history.exit_year IS 'exit_year — 脱贫年度: year the household exited poverty; NULL if it has not';
COMMENT ON COLUMN core.household_history.relapse_year IS 'relapse_year — 返贫年度: year the household fell back into poverty; NULL if it has not';
COMMENT ON COLUMN core.household_history.income_per_capita IS 'income_per_capita — 人均纯收入: net income per household member, yuan per year';
COMMENT ON COLUMN core.household_history.member_count IS 'member_count — 家庭人口数: number of members as declared by the source';
COMMENT ON COLUMN core.household_history.housing_safe IS 'housing_safe — 住房安全: the household''s housing is safe';
COMMENT ON COLUMN core.household_history.water_safe IS 'water_safe — 饮水安全: the household''s drinking water is safe';
COMMENT ON COLUMN core.household_history.phone IS 'phone — 联系电话: contact phone number (PII)';
COMMENT ON COLUMN core.household_history.county_code IS 'county_code — 县区代码: 6-digit NBS code of the county whose platform delivered the record';
COMMENT ON COLUMN core.household_history.source_platform IS 'source_platform — 来源平台: kind of county platform that delivered it: bigdata / battle / workbook';
COMMENT ON COLUMN core.household_history.source_key IS 'source_key — 来源主键: the platform''s own key of the record, as text; matches deletion feeds and full listings';
COMMENT ON COLUMN core.household_history.source_updated_at IS 'source_updated_at — 来源更新时间: when the source last changed the record (Asia/Shanghai at the source, stored as an instant); NULL for workbook rows';
COMMENT ON COLUMN core.household_history.sync_run_id IS 'sync_run_id — 同步批次: ops.sync_run id of the sync that last wrote the row';
COMMENT ON COLUMN core.household_history.row_hash IS 'row_hash — 行哈希: MD5 of the contract columns: tells a changed record from an unchanged one';
COMMENT ON COLUMN core.household_history.raw_ref IS 'raw_ref — 原始数据位置: ''<raw.page page_id>#<row index>'' of the payload the current values came from';

CREATE TABLE core.person (
    person_no VARCHAR,
    household_no VARCHAR,
    name VARCHAR,
    id_number VARCHAR,
    id_upgraded BOOLEAN,
    person_key VARCHAR,
    sex VARCHAR,
    birth_date DATE,
    relation_to_head VARCHAR,
    ethnicity VARCHAR,
    education VARCHAR,
    school_status VARCHAR,
    health VARCHAR[],
    labor_skill VARCHAR,
    work_status VARCHAR,
    work_months INTEGER,
    serious_illness_insured BOOLEAN,
    county_code VARCHAR,
    source_platform VARCHAR,
    source_key VARCHAR,
    source_updated_at TIMESTAMPTZ,
    first_seen_at TIMESTAMPTZ,
    last_synced_at TIMESTAMPTZ,
    sync_run_id VARCHAR,
    deleted_at TIMESTAMPTZ,
    row_hash VARCHAR,
    raw_ref VARCHAR,
    PRIMARY KEY (person_no)
);
COMMENT ON TABLE core.person IS '贫困人口: members of registered poor households, one row per person_no; contract columns (city-standard.md) then lineage';
COMMENT ON COLUMN core.person.person_no IS 'person_no — 人编号: 18-digit person number: household_no + 2-digit member sequence';
COMMENT ON COLUMN core.person.household_no IS 'household_no — 户编号: household the person belongs to';
COMMENT ON COLUMN core.person.name IS 'name — 姓名: name (PII)';
COMMENT ON COLUMN core.person.id_number IS 'id_number — 身份证号: citizen ID number, 18 characters, upper-case X (PII)';
COMMENT ON COLUMN core.person.id_upgraded IS 'id_upgraded — 身份证升位: was a 15-digit legacy number, upgraded per GB 11643';
COMMENT ON COLUMN core.person.person_key IS 'person_key — 人员匿名键: HMAC-SHA256 of id_number keyed with HUB_PII_KEY (hex): stable across runs and counties, safe to publish';
COMMENT ON COLUMN core.person.sex IS 'sex — 性别: male / female';
COMMENT ON COLUMN core.person.birth_date IS 'birth_date — 出生日期: date of birth';
COMMENT ON COLUMN core.person.relation_to_head IS 'relation_to_head — 与户主关系: relation to the household head (codes.md relation_to_head)';
COMMENT ON COLUMN core.person.ethnicity IS 'ethnicity — 民族: GB 3304 two-digit ethnicity code (01 汉族)';
COMMENT ON COLUMN core.person.education IS 'education — 文化程度: education level (codes.md education)';
COMMENT ON COLUMN core.person.school_status IS 'school_status — 在校生状况: school enrolment (codes.md school_status)';
COMMENT ON COLUMN core.person.health IS 'health — 健康状况: list of healthy / chronic / serious_illness / disabled';
COMMENT ON COLUMN core.person.labor_skill IS 'labor_skill — 劳动技能: labour capacity (codes.md labor_skill)';
COMMENT ON COLUMN core.person.work_status IS 'work_status — 务工状况: migrant-work status (codes.md work_status)';
COMMENT ON COLUMN core.person.work_months IS 'work_months — 务工时间(月): months worked away from home in the year, 0-12';
COMMENT ON COLUMN core.person.serious_illness_insured IS 'serious_illness_insured — 参加大病医疗: enrolled in serious-illness medical insurance';
COMMENT ON COLUMN core.person.county_code IS 'county_code — 县区代码: 6-digit NBS code of the county whose platform delivered the record';
COMMENT ON COLUMN core.person.source_platform IS 'source_platform — 来源平台: kind of county platform that delivered it: bigdata / battle / workbook';
COMMENT ON COLUMN core.person.source_key IS 'source_key — 来源主键: the platform''s own key of the record, as text; matches deletion feeds and full listings';
COMMENT ON COLUMN core.person.source_updated_at IS 'source_updated_at — 来源更新时间: when the source last changed the record (Asia/Shanghai at the source, stored as an instant); NULL for workbook rows';
COMMENT ON COLUMN core.person.first_seen_at IS 'first_seen_at — 首次入库时间: when the warehouse first received the record';
COMMENT ON COLUMN core.person.last_synced_at IS 'last_synced_at — 最近同步时间: when a sync last delivered the record, changed or not';
COMMENT ON COLUMN core.person.sync_run_id IS 'sync_run_id — 同步批次: ops.sync_run id of the sync that last wrote the row';
COMMENT ON COLUMN core.person.deleted_at IS 'deleted_at — 删除时间: when the source deleted the record; NULL while the source still has it (rows are never physically removed)';
COMMENT ON COLUMN core.person.row_hash IS 'row_hash — 行哈希: MD5 of the contract columns: tells a changed record from an unchanged one';
COMMENT ON COLUMN core.person.raw_ref IS 'raw_ref — 原始数据位置: ''<raw.page page_id>#<row index>'' of the payload the current values came from';

CREATE TABLE core.person_history (
    valid_from TIMESTAMPTZ NOT NULL,
    valid_to TIMESTAMPTZ,
    change_kind VARCHAR NOT NULL,
    closed_reason VARCHAR,
    person_no VARCHAR,
    household_no VARCHAR,
    name VARCHAR,
    id_number VARCHAR,
    id_upgraded BOOLEAN,
    person_key VARCHAR,
    sex VARCHAR,
    birth_date DATE,
    relation_to_head VARCHAR,
    ethnicity VARCHAR,
    education VARCHAR,
    school_status VARCHAR,
    health VARCHAR[],
    labor_skill VARCHAR,
    work_status VARCHAR,
    work_months INTEGER,
    serious_illness_insured BOOLEAN,
    county_code VARCHAR,
    source_platform VARCHAR,
    source_key VARCHAR,
    source_updated_at TIMESTAMPTZ,
    sync_run_id VARCHAR,
    row_hash VARCHAR,
    raw_ref VARCHAR
);
COMMENT ON TABLE core.person_history IS '贫困人口历史: one row per version of a core.person record (valid_from, valid_to NULL = current); a re-sync that changes nothing adds no version; a deletion closes the version (closed_reason deleted)';
COMMENT ON COLUMN core.person_history.valid_from IS 'valid_from — 生效时间: when the warehouse started to hold this version';
COMMENT ON COLUMN core.person_history.valid_to IS 'valid_to — 失效时间: when this version was replaced or deleted; NULL for the current version';
COMMENT ON COLUMN core.person_history.change_kind IS 'change_kind — 变更类型: why this version began: new / changed / revived (deleted earlier, delivered again)';
COMMENT ON COLUMN core.person_history.closed_reason IS 'closed_reason — 关闭原因: why this version ended: changed / deleted; NULL while current';
COMMENT ON COLUMN core.person_history.person_no IS 'person_no — 人编号: 18-digit person number: household_no + 2-digit member sequence';
COMMENT ON COLUMN core.person_history.household_no IS 'household_no — 户编号: household the person belongs to';
COMMENT ON COLUMN core.person_history.name IS 'name — 姓名: name (PII)';
COMMENT ON COLUMN core.person_history.id_number IS 'id_number — 身份证号: citizen ID number, 18 characters, upper-case X (PII)';
COMMENT ON COLUMN core.person_history.id_upgraded IS 'id_upgraded — 身份证升位: was a 15-digit legacy number, upgraded per GB 11643';
COMMENT ON COLUMN core.person_history.person_key IS 'person_key — 人员匿名键: HMAC-SHA256 of id_number keyed with HUB_PII_KEY (hex): stable across runs and counties, safe to publish';
COMMENT ON COLUMN core.person_history.sex IS 'sex — 性别: male / female';
COMMENT ON COLUMN core.person_history.birth_date IS 'birth_date — 出生日期: date of birth';
COMMENT ON COLUMN core.person_history.relation_to_head IS 'relation_to_head — 与户主关系: relation to the household head (codes.md relation_to_head)';
COMMENT ON COLUMN core.person_history.ethnicity IS 'ethnicity — 民族: GB 3304 two-digit ethnicity code (01 汉族)';
COMMENT ON COLUMN core.person_history.education IS 'education — 文化程度: education level (codes.md education)';
COMMENT ON COLUMN core.person_history.school_status IS 'school_status — 在校生状况: school enrolment (codes.md school_status)';
COMMENT ON COLUMN core.person_history.health IS 'health — 健康状况: list of healthy / chronic / serious_illness / disabled';
COMMENT ON COLUMN core.person_history.labor_skill IS 'labor_skill — 劳动技能: labour capacity (codes.md labor_skill)';
COMMENT ON COLUMN core.person_history.work_status IS 'work_status — 务工状况: migrant-work status (codes.md work_status)';
COMMENT ON COLUMN core.person_history.work_months IS 'work_months — 务工时间(月): months worked away from home in the year, 0-12';
COMMENT ON COLUMN core.person_history.serious_illness_insured IS 'serious_illness_insured — 参加大病医疗: enrolled in serious-illness medical insurance';
COMMENT ON COLUMN core.person_history.county_code IS 'county_code — 县区代码: 6-digit NBS code of the county whose platform delivered the record';
COMMENT ON COLUMN core.person_history.source_platform IS 'source_platform — 来源平台: kind of county platform that delivered it: bigdata / battle / workbook';
COMMENT ON COLUMN core.person_history.source_key IS 'source_key — 来源主键: the platform''s own key of the record, as text; matches deletion feeds and full listings';
COMMENT ON COLUMN core.person_history.source_updated_at IS 'source_updated_at — 来源更新时间: when the source last changed the record (Asia/Shanghai at the source, stored as an instant); NULL for workbook rows';
COMMENT ON COLUMN core.person_history.sync_run_id IS 'sync_run_id — 同步批次: ops.sync_run id of the sync that last wrote the row';
COMMENT ON COLUMN core.person_history.row_hash IS 'row_hash — 行哈希: MD5 of the contract columns: tells a changed record from an unchanged one';
COMMENT ON COLUMN core.person_history.raw_ref IS 'raw_ref — 原始数据位置: ''<raw.page page_id>#<row index>'' of the payload the current values came from';

CREATE TABLE core.measure (
    measure_id VARCHAR,
    household_no VARCHAR,
    category VARCHAR,
    year INTEGER,
    amount DECIMAL(12,2),
    description VARCHAR,
    county_code VARCHAR,
    source_platform VARCHAR,
    source_key VARCHAR,
    source_updated_at TIMESTAMPTZ,
    first_seen_at TIMESTAMPTZ,
    last_synced_at TIMESTAMPTZ,
    sync_run_id VARCHAR,
    deleted_at TIMESTAMPTZ,
    row_hash VARCHAR,
    raw_ref VARCHAR,
    PRIMARY KEY (measure_id)
);
COMMENT ON TABLE core.measure IS '帮扶措施: assistance measures delivered to households; contract columns (city-standard.md) then lineage';
COMMENT ON COLUMN core.measure.measure_id IS 'measure_id — 措施编号: key of the assistance measure';
COMMENT ON COLUMN core.measure.household_no IS 'household_no — 户编号: household assisted';
COMMENT ON COLUMN core.measure.category IS 'category — 帮扶措施类别: measure category (codes.md measure_category)';
COMMENT ON COLUMN core.measure.year IS 'year — 年度: year of the measure';
COMMENT ON COLUMN core.measure.amount IS 'amount — 金额: money involved, yuan; NULL when none';
COMMENT ON COLUMN core.measure.description IS 'description — 措施说明: free-text description';
COMMENT ON COLUMN core.measure.county_code IS 'county_code — 县区代码: 6-digit NBS code of the county whose platform delivered the record';
COMMENT ON COLUMN core.measure.source_platform IS 'source_platform — 来源平台: kind of county platform that delivered it: bigdata / battle / workbook';
COMMENT ON COLUMN core.measure.source_key IS 'source_key — 来源主键: the platform''s own key of the record, as text; matches deletion feeds and full listings';
COMMENT ON COLUMN core.measure.source_updated_at IS 'source_updated_at — 来源更新时间: when the source last changed the record (Asia/Shanghai at the source, stored as an instant); NULL for workbook rows';
COMMENT ON COLUMN core.measure.first_seen_at IS 'first_seen_at — 首次入库时间: when the warehouse first received the record';
COMMENT ON COLUMN core.measure.last_synced_at IS 'last_synced_at — 最近同步时间: when a sync last delivered the record, changed or not';
COMMENT ON COLUMN core.measure.sync_run_id IS 'sync_run_id — 同步批次: ops.sync_run id of the sync that last wrote the row';
COMMENT ON COLUMN core.measure.deleted_at IS 'deleted_at — 删除时间: when the source deleted the record; NULL while the source still has it (rows are never physically removed)';
COMMENT ON COLUMN core.measure.row_hash IS 'row_hash — 行哈希: MD5 of the contract columns: tells a changed record from an unchanged one';
COMMENT ON COLUMN core.measure.raw_ref IS 'raw_ref — 原始数据位置: ''<raw.page page_id>#<row index>'' of the payload the current values came from';

CREATE TABLE core.loan (
    loan_id VARCHAR,
    household_no VARCHAR,
    lender VARCHAR,
    principal DECIMAL(14,2),
    issued_on DATE,
    term_months INTEGER,
    annual_rate DECIMAL(6,4),
    interest_subsidy DECIMAL(12,2),
    status VARCHAR,
    county_code VARCHAR,
    source_platform VARCHAR,
    source_key VARCHAR,
    source_updated_at TIMESTAMPTZ,
    first_seen_at TIMESTAMPTZ,
    last_synced_at TIMESTAMPTZ,
    sync_run_id VARCHAR,
    deleted_at TIMESTAMPTZ,
    row_hash VARCHAR,
    raw_ref VARCHAR,
    PRIMARY KEY (loan_id)
);
COMMENT ON TABLE core.loan IS '扶贫小额信贷/贴息贷款: poverty micro-credit and interest-subsidised loans; contract columns (city-standard.md) then lineage';
COMMENT ON COLUMN core.loan.loan_id IS 'loan_id — 贷款编号: key of the loan';
COMMENT ON COLUMN core.loan.household_no IS 'household_no — 户编号: borrowing household';
COMMENT ON COLUMN core.loan.lender IS 'lender — 放款机构: lending bank or institution';
COMMENT ON COLUMN core.loan.principal IS 'principal — 贷款金额: principal issued, yuan';
COMMENT ON COLUMN core.loan.issued_on IS 'issued_on — 发放日期: date the loan was issued';
COMMENT ON COLUMN core.loan.term_months IS 'term_months — 贷款期限(月): term in months';
COMMENT ON COLUMN core.loan.annual_rate IS 'annual_rate — 年利率: annual interest rate as a fraction (0.0435 = 4.35%)';
COMMENT ON COLUMN core.loan.interest_subsidy IS 'interest_subsidy — 贴息金额: interest subsidy paid, yuan';
COMMENT ON COLUMN core.loan.status IS 'status — 贷款状态: active / repaid / overdue / written_off';
COMMENT ON COLUMN core.loan.county_code IS 'county_code — 县区代码: 6-digit NBS code of the county whose platform delivered the record';
COMMENT ON COLUMN core.loan.source_platform IS 'source_platform — 来源平台: kind of county platform that delivered it: bigdata / battle / workbook';
COMMENT ON COLUMN core.loan.source_key IS 'source_key — 来源主键: the platform''s own key of the record, as text; matches deletion feeds and full listings';
COMMENT ON COLUMN core.loan.source_updated_at IS 'source_updated_at — 来源更新时间: when the source last changed the record (Asia/Shanghai at the source, stored as an instant); NULL for workbook rows';
COMMENT ON COLUMN core.loan.first_seen_at IS 'first_seen_at — 首次入库时间: when the warehouse first received the record';
COMMENT ON COLUMN core.loan.last_synced_at IS 'last_synced_at — 最近同步时间: when a sync last delivered the record, changed or not';
COMMENT ON COLUMN core.loan.sync_run_id IS 'sync_run_id — 同步批次: ops.sync_run id of the sync that last wrote the row';
COMMENT ON COLUMN core.loan.deleted_at IS 'deleted_at — 删除时间: when the source deleted the record; NULL while the source still has it (rows are never physically removed)';
COMMENT ON COLUMN core.loan.row_hash IS 'row_hash — 行哈希: MD5 of the contract columns: tells a changed record from an unchanged one';
COMMENT ON COLUMN core.loan.raw_ref IS 'raw_ref — 原始数据位置: ''<raw.page page_id>#<row index>'' of the payload the current values came from';

CREATE TABLE core.project (
    project_id VARCHAR,
    village_code VARCHAR,
    category VARCHAR,
    name VARCHAR,
    budget DECIMAL(14,2),
    disbursed DECIMAL(14,2),
    status VARCHAR,
    start_on DATE,
    end_on DATE,
    households_benefited INTEGER,
    county_code VARCHAR,
    source_platform VARCHAR,
    source_key VARCHAR,
    source_updated_at TIMESTAMPTZ,
    first_seen_at TIMESTAMPTZ,
    last_synced_at TIMESTAMPTZ,
    sync_run_id VARCHAR,
    deleted_at TIMESTAMPTZ,
    row_hash VARCHAR,
    raw_ref VARCHAR,
    PRIMARY KEY (project_id)
);
COMMENT ON TABLE core.project IS '扶贫项目: poverty-alleviation projects (the city''s ten major projects); contract columns (city-standard.md) then lineage';
COMMENT ON COLUMN core.project.project_id IS 'project_id — 项目编号: key of the project';
COMMENT ON COLUMN core.project.village_code IS 'village_code — 行政村代码: village of the project; NULL for a county-wide project';
COMMENT ON COLUMN core.project.category IS 'category — 项目类别: project category (codes.md project_category)';
COMMENT ON COLUMN core.project.name IS 'name — 项目名称: project name';
COMMENT ON COLUMN core.project.budget IS 'budget — 预算金额: budget, yuan';
COMMENT ON COLUMN core.project.disbursed IS 'disbursed — 已拨付金额: funds disbursed so far, yuan';
COMMENT ON COLUMN core.project.status IS 'status — 项目状态: planned / in_progress / completed / cancelled';
COMMENT ON COLUMN core.project.start_on IS 'start_on — 开工日期: start date';
COMMENT ON COLUMN core.project.end_on IS 'end_on — 完工日期: completion date; NULL while not completed';
COMMENT ON COLUMN core.project.households_benefited IS 'households_benefited — 受益户数: number of households benefiting';
COMMENT ON COLUMN core.project.county_code IS 'county_code — 县区代码: 6-digit NBS code of the county whose platform delivered the record';
COMMENT ON COLUMN core.project.source_platform IS 'source_platform — 来源平台: kind of county platform that delivered it: bigdata / battle / workbook';
COMMENT ON COLUMN core.project.source_key IS 'source_key — 来源主键: the platform''s own key of the record, as text; matches deletion feeds and full listings';
COMMENT ON COLUMN core.project.source_updated_at IS 'source_updated_at — 来源更新时间: when the source last changed the record (Asia/Shanghai at the source, stored as an instant); NULL for workbook rows';
COMMENT ON COLUMN core.project.first_seen_at IS 'first_seen_at — 首次入库时间: when the warehouse first received the record';
COMMENT ON COLUMN core.project.last_synced_at IS 'last_synced_at — 最近同步时间: when a sync last delivered the record, changed or not';
COMMENT ON COLUMN core.project.sync_run_id IS 'sync_run_id — 同步批次: ops.sync_run id of the sync that last wrote the row';
COMMENT ON COLUMN core.project.deleted_at IS 'deleted_at — 删除时间: when the source deleted the record; NULL while the source still has it (rows are never physically removed)';
COMMENT ON COLUMN core.project.row_hash IS 'row_hash — 行哈希: MD5 of the contract columns: tells a changed record from an unchanged one';
COMMENT ON COLUMN core.project.raw_ref IS 'raw_ref — 原始数据位置: ''<raw.page page_id>#<row index>'' of the payload the current values came from';

CREATE TABLE core.cadre (
    cadre_id VARCHAR,
    name VARCHAR,
    id_number VARCHAR,
    sex VARCHAR,
    phone VARCHAR,
    unit_name VARCHAR,
    unit_type VARCHAR,
    is_first_secretary BOOLEAN,
    is_resident_team BOOLEAN,
    county_code VARCHAR,
    source_platform VARCHAR,
    source_key VARCHAR,
    source_updated_at TIMESTAMPTZ,
    first_seen_at TIMESTAMPTZ,
    last_synced_at TIMESTAMPTZ,
    sync_run_id VARCHAR,
    deleted_at TIMESTAMPTZ,
    row_hash VARCHAR,
    raw_ref VARCHAR,
    PRIMARY KEY (cadre_id)
);
COMMENT ON TABLE core.cadre IS '帮扶责任人/驻村干部: aid cadres: officials responsible for households, first secretaries, resident work-team members; contract columns (city-standard.md) then lineage';
COMMENT ON COLUMN core.cadre.cadre_id IS 'cadre_id — 干部编号: key of the cadre';
COMMENT ON COLUMN core.cadre.name IS 'name — 姓名: name (PII)';
COMMENT ON COLUMN core.cadre.id_number IS 'id_number — 身份证号: citizen ID number, 18 characters (PII)';
COMMENT ON COLUMN core.cadre.sex IS 'sex — 性别: male / female';
COMMENT ON COLUMN core.cadre.phone IS 'phone — 联系电话: phone number (PII)';
COMMENT ON COLUMN core.cadre.unit_name IS 'unit_name — 帮扶单位: name of the cadre''s work unit';
COMMENT ON COLUMN core.cadre.unit_type IS 'unit_type — 单位类型: type of work unit (codes.md unit_type)';
COMMENT ON COLUMN core.cadre.is_first_secretary IS 'is_first_secretary — 第一书记: serves as a village first secretary';
COMMENT ON COLUMN core.cadre.is_resident_team IS 'is_resident_team — 驻村工作队员: member of a resident village work team';
COMMENT ON COLUMN core.cadre.county_code IS 'county_code — 县区代码: 6-digit NBS code of the county whose platform delivered the record';
COMMENT ON COLUMN core.cadre.source_platform IS 'source_platform — 来源平台: kind of county platform that delivered it: bigdata / battle / workbook';
COMMENT ON COLUMN core.cadre.source_key IS 'source_key — 来源主键: the platform''s own key of the record, as text; matches deletion feeds and full listings';
COMMENT ON COLUMN core.cadre.source_updated_at IS 'source_updated_at — 来源更新时间: when the source last changed the record (Asia/Shanghai at the source, stored as an instant); NULL for workbook rows';
COMMENT ON COLUMN core.cadre.first_seen_at IS 'first_seen_at — 首次入库时间: when the warehouse first received the record';
COMMENT ON COLUMN core.cadre.last_synced_at IS 'last_synced_at — 最近同步时间: when a sync last delivered the record, changed or not';
COMMENT ON COLUMN core.cadre.sync_run_id IS 'sync_run_id — 同步批次: ops.sync_run id of the sync that last wrote the row';
COMMENT ON COLUMN core.cadre.deleted_at IS 'deleted_at — 删除时间: when the source deleted the record; NULL while the source still has it (rows are never physically removed)';
COMMENT ON COLUMN core.cadre.row_hash IS 'row_hash — 行哈希: MD5 of the contract columns: tells a changed record from an unchanged one';
COMMENT ON COLUMN core.cadre.raw_ref IS 'raw_ref — 原始数据位置: ''<raw.page page_id>#<row index>'' of the payload the current values came from';

CREATE TABLE core.household_cadre (
    household_no VARCHAR,
    cadre_id VARCHAR,
    since DATE,
    county_code VARCHAR,
    source_platform VARCHAR,
    source_key VARCHAR,
    source_updated_at TIMESTAMPTZ,
    first_seen_at TIMESTAMPTZ,
    last_synced_at TIMESTAMPTZ,
    sync_run_id VARCHAR,
    deleted_at TIMESTAMPTZ,
    row_hash VARCHAR,
    raw_ref VARCHAR,
    PRIMARY KEY (household_no, cadre_id)
);
COMMENT ON TABLE core.household_cadre IS '帮扶关系: pairings of poor households with their responsible cadres; contract columns (city-standard.md) then lineage';
COMMENT ON COLUMN core.household_cadre.household_no IS 'household_no — 户编号: paired household';
COMMENT ON COLUMN core.household_cadre.cadre_id IS 'cadre_id — 干部编号: responsible cadre';
COMMENT ON COLUMN core.household_cadre.since IS 'since — 结对日期: date the pairing started';
COMMENT ON COLUMN core.household_cadre.county_code IS 'county_code — 县区代码: 6-digit NBS code of the county whose platform delivered the record';
COMMENT ON COLUMN core.household_cadre.source_platform IS 'source_platform — 来源平台: kind of county platform that delivered it: bigdata / battle / workbook';
COMMENT ON COLUMN core.household_cadre.source_key IS 'source_key — 来源主键: the platform''s own key of the record, as text; matches deletion feeds and full listings';
COMMENT ON COLUMN core.household_cadre.source_updated_at IS 'source_updated_at — 来源更新时间: when the source last changed the record (Asia/Shanghai at the source, stored as an instant); NULL for workbook rows';
COMMENT ON COLUMN core.household_cadre.first_seen_at IS 'first_seen_at — 首次入库时间: when the warehouse first received the record';
COMMENT ON COLUMN core.household_cadre.last_synced_at IS 'last_synced_at — 最近同步时间: when a sync last delivered the record, changed or not';
COMMENT ON COLUMN core.household_cadre.sync_run_id IS 'sync_run_id — 同步批次: ops.sync_run id of the sync that last wrote the row';
COMMENT ON COLUMN core.household_cadre.deleted_at IS 'deleted_at — 删除时间: when the source deleted the record; NULL while the source still has it (rows are never physically removed)';
COMMENT ON COLUMN core.household_cadre.row_hash IS 'row_hash — 行哈希: MD5 of the contract columns: tells a changed record from an unchanged one';
COMMENT ON COLUMN core.household_cadre.raw_ref IS 'raw_ref — 原始数据位置: ''<raw.page page_id>#<row index>'' of the payload the current values came from';

CREATE TABLE raw.page (
    page_id VARCHAR,
    county_code VARCHAR,
    sync_run_id VARCHAR,
    entity VARCHAR,
    url VARCHAR,
    fetched_at TIMESTAMPTZ,
    sha256 VARCHAR,
    size BIGINT,
    content_type VARCHAR,
    path VARCHAR,
    meta JSON,
    PRIMARY KEY (page_id)
);
COMMENT ON TABLE raw.page IS '原始数据页: one row per landed payload (page or file) exactly as received; the bytes are the file at path';
COMMENT ON COLUMN raw.page.page_id IS 'page_id — 页编号: ''<slug>:<sync_id>:<seq>'', referenced by raw_ref';
COMMENT ON COLUMN raw.page.county_code IS 'county_code — 县区代码: county the payload came from';
COMMENT ON COLUMN raw.page.sync_run_id IS 'sync_run_id — 同步批次: sync that landed the payload';
COMMENT ON COLUMN raw.page.entity IS 'entity — 实体: canonical entity, or deletions:<entity> / stats / index / file';
COMMENT ON COLUMN raw.page.url IS 'url — 请求地址: request URL without credentials';
COMMENT ON COLUMN raw.page.fetched_at IS 'fetched_at — 获取时间: when the payload was received';
COMMENT ON COLUMN raw.page.sha256 IS 'sha256 — SHA-256: SHA-256 of the payload bytes (hex)';
COMMENT ON COLUMN raw.page.size IS 'size — 字节数: payload size in bytes';
COMMENT ON COLUMN raw.page.content_type IS 'content_type — 内容类型: HTTP content type as received';
COMMENT ON COLUMN raw.page.path IS 'path — 文件路径: where the landed bytes are stored';
COMMENT ON COLUMN raw.page.meta IS 'meta — 元数据: paging and file metadata (cursor, pageNum, total, file name, ...)';

CREATE TABLE ops.sync_run (
    sync_run_id VARCHAR,
    county_code VARCHAR,
    entity VARCHAR,
    mode VARCHAR,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    fetched BIGINT,
    accepted BIGINT,
    rejected BIGINT,
    findings BIGINT,
    deleted BIGINT,
    inserted BIGINT,
    updated BIGINT,
    unchanged BIGINT,
    source_count BIGINT,
    watermark_before VARCHAR,
    watermark_after VARCHAR,
    status VARCHAR,
    error VARCHAR,
    PRIMARY KEY (sync_run_id, county_code, entity)
);
COMMENT ON TABLE ops.sync_run IS '同步记录: one row per county x entity per sync run: what was fetched, accepted, rejected and deleted';
COMMENT ON COLUMN ops.sync_run.sync_run_id IS 'sync_run_id — 同步批次: id of the sync run (the orchestrator''s run id)';
COMMENT ON COLUMN ops.sync_run.county_code IS 'county_code — 县区代码: county synced';
COMMENT ON COLUMN ops.sync_run.entity IS 'entity — 实体: entity synced; ''*'' for a run-level failure';
COMMENT ON COLUMN ops.sync_run.mode IS 'mode — 同步方式: full / incremental';
COMMENT ON COLUMN ops.sync_run.started_at IS 'started_at — 开始时间: when the sync started fetching';
COMMENT ON COLUMN ops.sync_run.finished_at IS 'finished_at — 结束时间: when it committed, refused or failed';
COMMENT ON COLUMN ops.sync_run.fetched IS 'fetched — 获取条数: rows the source delivered';
COMMENT ON COLUMN ops.sync_run.accepted IS 'accepted — 接收条数: rows that passed validation: written to core (new, changed or unchanged) unless the run was refused';
COMMENT ON COLUMN ops.sync_run.rejected IS 'rejected — 拒收条数: distinct source records rejected (see ops.reject)';
COMMENT ON COLUMN ops.sync_run.findings IS 'findings — 警告条数: non-blocking rule violations recorded (see ops.finding)';
COMMENT ON COLUMN ops.sync_run.deleted IS 'deleted — 删除条数: core rows soft-deleted by this sync';
COMMENT ON COLUMN ops.sync_run.inserted IS 'inserted — 新增条数: accepted rows new to the warehouse';
COMMENT ON COLUMN ops.sync_run.updated IS 'updated — 变更条数: accepted rows whose contract columns changed, or that came back after a deletion';
COMMENT ON COLUMN ops.sync_run.unchanged IS 'unchanged — 未变条数: accepted rows identical to the warehouse''s';
COMMENT ON COLUMN ops.sync_run.source_count IS 'source_count — 来源统计数: the source''s own count of the entity, when it gives one';
COMMENT ON COLUMN ops.sync_run.watermark_before IS 'watermark_before — 同步前水位: committed cursor before the sync';
COMMENT ON COLUMN ops.sync_run.watermark_after IS 'watermark_after — 同步后水位: cursor committed by the sync';
COMMENT ON COLUMN ops.sync_run.status IS 'status — 状态: running / succeeded / failed / refused (reject rate above the county''s threshold)';
COMMENT ON COLUMN ops.sync_run.error IS 'error — 错误: why the sync failed or was refused, in plain words';

CREATE TABLE ops.watermark (
    county_code VARCHAR,
    name VARCHAR,
    value VARCHAR,
    updated_at TIMESTAMPTZ,
    sync_run_id VARCHAR,
    PRIMARY KEY (county_code, name)
);
COMMENT ON TABLE ops.watermark IS '同步水位: the committed cursor per county x name, advanced only with the merge it covers';
COMMENT ON COLUMN ops.watermark.county_code IS 'county_code — 县区代码: county';
COMMENT ON COLUMN ops.watermark.name IS 'name — 水位名称: cursor name (usually the entity)';
COMMENT ON COLUMN ops.watermark.value IS 'value — 水位值: cursor value as the source understands it';
COMMENT ON COLUMN ops.watermark.updated_at IS 'updated_at — 更新时间: when it was committed';
COMMENT ON COLUMN ops.watermark.sync_run_id IS 'sync_run_id — 同步批次: sync that committed it';

CREATE TABLE ops.reject (
    sync_run_id VARCHAR,
    county_code VARCHAR,
    entity VARCHAR,
    source_key VARCHAR,
    rule VARCHAR,
    column_name VARCHAR,
    value VARCHAR,
    message VARCHAR,
    raw_ref VARCHAR,
    recorded_at TIMESTAMPTZ
);
COMMENT ON TABLE ops.reject IS '拒收记录: one row per reject rule a source record failed; the record did not reach core';
COMMENT ON COLUMN ops.reject.sync_run_id IS 'sync_run_id — 同步批次: sync that saw the record';
COMMENT ON COLUMN ops.reject.county_code IS 'county_code — 县区代码: county of the record';
COMMENT ON COLUMN ops.reject.entity IS 'entity — 实体: entity of the record';
COMMENT ON COLUMN ops.reject.source_key IS 'source_key — 来源主键: the platform''s key of the record';
COMMENT ON COLUMN ops.reject.rule IS 'rule — 规则: stable rule name (schemas/rules.py)';
COMMENT ON COLUMN ops.reject.column_name IS 'column_name — 字段: column the rule looked at';
COMMENT ON COLUMN ops.reject.value IS 'value — 值: the offending value as text';
COMMENT ON COLUMN ops.reject.message IS 'message — 说明: what is wrong, in plain words';
COMMENT ON COLUMN ops.reject.raw_ref IS 'raw_ref — 原始数据位置: ''<raw.page page_id>#<row index>'' of the payload';
COMMENT ON COLUMN ops.reject.recorded_at IS 'recorded_at — 记录时间: when it was recorded';

CREATE TABLE ops.finding (
    sync_run_id VARCHAR,
    county_code VARCHAR,
    entity VARCHAR,
    source_key VARCHAR,
    rule VARCHAR,
    column_name VARCHAR,
    value VARCHAR,
    message VARCHAR,
    raw_ref VARCHAR,
    recorded_at TIMESTAMPTZ
);
COMMENT ON TABLE ops.finding IS '警告记录: one row per non-blocking rule an accepted record violated';
COMMENT ON COLUMN ops.finding.sync_run_id IS 'sync_run_id — 同步批次: sync that saw the record';
COMMENT ON COLUMN ops.finding.county_code IS 'county_code — 县区代码: county of the record';
COMMENT ON COLUMN ops.finding.entity IS 'entity — 实体: entity of the record';
COMMENT ON COLUMN ops.finding.source_key IS 'source_key — 来源主键: the platform''s key of the record';
COMMENT ON COLUMN ops.finding.rule IS 'rule — 规则: stable rule name (schemas/rules.py)';
COMMENT ON COLUMN ops.finding.column_name IS 'column_name — 字段: column the rule looked at';
COMMENT ON COLUMN ops.finding.value IS 'value — 值: the offending value as text';
COMMENT ON COLUMN ops.finding.message IS 'message — 说明: what is wrong, in plain words';
COMMENT ON COLUMN ops.finding.raw_ref IS 'raw_ref — 原始数据位置: ''<raw.page page_id>#<row index>'' of the payload';
COMMENT ON COLUMN ops.finding.recorded_at IS 'recorded_at — 记录时间: when it was recorded';

CREATE TABLE ops.conflict (
    conflict_id VARCHAR,
    kind VARCHAR,
    key VARCHAR,
    county_code_a VARCHAR,
    source_key_a VARCHAR,
    county_code_b VARCHAR,
    source_key_b VARCHAR,
    resolution VARCHAR,
    winner VARCHAR,
    detected_at TIMESTAMPTZ,
    resolved_at TIMESTAMPTZ,
    sync_run_id VARCHAR,
    PRIMARY KEY (conflict_id)
);
COMMENT ON TABLE ops.conflict IS '冲突记录: the same ID number (or household_no) claimed by two records, both sides and the resolution applied';
COMMENT ON COLUMN ops.conflict.conflict_id IS 'conflict_id — 冲突编号: MD5 of kind, key and both sides: the same conflict seen again is the same row';
COMMENT ON COLUMN ops.conflict.kind IS 'kind — 冲突类型: id_number (two person records, one ID number) / household_no (a household number claimed by a second county)';
COMMENT ON COLUMN ops.conflict.key IS 'key — 冲突键: person_key of the shared ID number (never the ID number itself) / the household_no';
COMMENT ON COLUMN ops.conflict.county_code_a IS 'county_code_a — 甲方县区: county of side a';
COMMENT ON COLUMN ops.conflict.source_key_a IS 'source_key_a — 甲方来源主键: source key of side a';
COMMENT ON COLUMN ops.conflict.county_code_b IS 'county_code_b — 乙方县区: county of side b';
COMMENT ON COLUMN ops.conflict.source_key_b IS 'source_key_b — 乙方来源主键: source key of side b';
COMMENT ON COLUMN ops.conflict.resolution IS 'resolution — 处理方式: keep_first_seen: both records stay in core, marts count the winner only / claim_rejected: side b''s record was rejected';
COMMENT ON COLUMN ops.conflict.winner IS 'winner — 保留方: a or b: the side the resolution keeps';
COMMENT ON COLUMN ops.conflict.detected_at IS 'detected_at — 发现时间: when the conflict was first detected';
COMMENT ON COLUMN ops.conflict.resolved_at IS 'resolved_at — 解决时间: when it stopped existing (a side deleted, corrected or no longer claimed); NULL while open';
COMMENT ON COLUMN ops.conflict.sync_run_id IS 'sync_run_id — 同步批次: sync that detected it';

CREATE TABLE ops.schema_migration (
    version INTEGER,
    name VARCHAR,
    checksum VARCHAR,
    applied_at TIMESTAMPTZ,
    PRIMARY KEY (version)
);
COMMENT ON TABLE ops.schema_migration IS '迁移记录: warehouse migrations applied, one row per file';
COMMENT ON COLUMN ops.schema_migration.version IS 'version — 版本: number of the migration file (NNN_)';
COMMENT ON COLUMN ops.schema_migration.name IS 'name — 名称: file name';
COMMENT ON COLUMN ops.schema_migration.checksum IS 'checksum — 校验和: SHA-256 of the file when applied';
COMMENT ON COLUMN ops.schema_migration.applied_at IS 'applied_at — 应用时间: when it was applied';
