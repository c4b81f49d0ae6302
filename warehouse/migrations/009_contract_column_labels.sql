-- Contract column labels = the pandera field titles (issue 14: one entity spec).
-- The Chinese label of every contract column of core (and its history table) is the title of
-- that field in the entity's pandera model (schemas/<entity>.py); these columns said otherwise.
-- tests/unit/test_schemas_entities.py keeps every such comment equal to its title.
COMMENT ON COLUMN core.region.poor_village_exit_year IS 'poor_village_exit_year — 贫困村退出年份: year the village left the poor-village list; NULL if it has not';
COMMENT ON COLUMN core.household.main_cause_label IS 'main_cause_label — 主要致贫原因(原文): the cause label as sent when it differs from the standard (因婚, 因丧 are stored as other)';
COMMENT ON COLUMN core.household_history.main_cause_label IS 'main_cause_label — 主要致贫原因(原文): the cause label as sent when it differs from the standard (因婚, 因丧 are stored as other)';
COMMENT ON COLUMN core.person.id_upgraded IS 'id_upgraded — 身份证号已升位: was a 15-digit legacy number, upgraded per GB 11643';
COMMENT ON COLUMN core.person_history.id_upgraded IS 'id_upgraded — 身份证号已升位: was a 15-digit legacy number, upgraded per GB 11643';
COMMENT ON COLUMN core.measure.category IS 'category — 措施类别: measure category (ref.code, code_list = measure_category)';
COMMENT ON COLUMN core.measure.description IS 'description — 措施描述: free-text description';
COMMENT ON COLUMN core.loan.lender IS 'lender — 贷款银行: lending bank or institution';
COMMENT ON COLUMN core.loan.term_months IS 'term_months — 期限(月): term in months';
COMMENT ON COLUMN core.project.disbursed IS 'disbursed — 拨付金额: funds disbursed so far, yuan';
COMMENT ON COLUMN core.cadre.cadre_id IS 'cadre_id — 帮扶责任人编号: key of the cadre';
COMMENT ON COLUMN core.cadre.unit_name IS 'unit_name — 单位名称: name of the cadre''s work unit';
COMMENT ON COLUMN core.cadre.is_first_secretary IS 'is_first_secretary — 是否第一书记: serves as a village first secretary';
COMMENT ON COLUMN core.cadre.is_resident_team IS 'is_resident_team — 是否驻村工作队员: member of a resident village work team';
COMMENT ON COLUMN core.household_cadre.cadre_id IS 'cadre_id — 帮扶责任人编号: responsible cadre';
COMMENT ON COLUMN core.household_cadre.since IS 'since — 帮扶开始时间: date the pairing started';
