-- 008_ref_code_comments: coded columns point to ref.code, the code table published in the
-- snapshot (code_list, code, label_zh, label_en from seeds/codes.csv); 001 named a code document
-- that is not in the repository. (Applied migrations are never edited: this one re-comments.)

COMMENT ON COLUMN core.household.main_cause IS 'main_cause — 主要致贫原因: city code of the main poverty cause (ref.code, code_list = poverty_cause)';
COMMENT ON COLUMN core.household_history.main_cause IS 'main_cause — 主要致贫原因: city code of the main poverty cause (ref.code, code_list = poverty_cause)';
COMMENT ON COLUMN core.person.relation_to_head IS 'relation_to_head — 与户主关系: relation to the household head (ref.code, code_list = relation_to_head)';
COMMENT ON COLUMN core.person.education IS 'education — 文化程度: education level (ref.code, code_list = education)';
COMMENT ON COLUMN core.person.school_status IS 'school_status — 在校生状况: school enrolment (ref.code, code_list = school_status)';
COMMENT ON COLUMN core.person.labor_skill IS 'labor_skill — 劳动技能: labour capacity (ref.code, code_list = labor_skill)';
COMMENT ON COLUMN core.person.work_status IS 'work_status — 务工状况: migrant-work status (ref.code, code_list = work_status)';
COMMENT ON COLUMN core.person_history.relation_to_head IS 'relation_to_head — 与户主关系: relation to the household head (ref.code, code_list = relation_to_head)';
COMMENT ON COLUMN core.person_history.education IS 'education — 文化程度: education level (ref.code, code_list = education)';
COMMENT ON COLUMN core.person_history.school_status IS 'school_status — 在校生状况: school enrolment (ref.code, code_list = school_status)';
COMMENT ON COLUMN core.person_history.labor_skill IS 'labor_skill — 劳动技能: labour capacity (ref.code, code_list = labor_skill)';
COMMENT ON COLUMN core.person_history.work_status IS 'work_status — 务工状况: migrant-work status (ref.code, code_list = work_status)';
COMMENT ON COLUMN core.measure.category IS 'category — 帮扶措施类别: measure category (ref.code, code_list = measure_category)';
COMMENT ON COLUMN core.project.category IS 'category — 项目类别: project category (ref.code, code_list = project_category)';
COMMENT ON COLUMN core.cadre.unit_type IS 'unit_type — 单位类型: type of work unit (ref.code, code_list = unit_type)';
