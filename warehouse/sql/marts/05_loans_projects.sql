-- mart.loans_by_county: loans by status per county and for the city (611000);
-- mart.projects_by_category: projects by category per county and for the city. Live rows.

CREATE OR REPLACE TABLE mart.loans_by_county AS
SELECT coalesce(county_code, '611000') AS county_code,
       coalesce(status, 'all') AS loan_status,
       count(*) AS loans,
       count(DISTINCT household_no) AS households,
       coalesce(sum(principal), 0) AS principal,
       coalesce(sum(interest_subsidy), 0) AS interest_subsidy,
       round(avg(annual_rate), 4) AS avg_annual_rate
FROM core.loan WHERE deleted_at IS NULL
GROUP BY GROUPING SETS ((), (status), (county_code), (county_code, status))
ORDER BY county_code NULLS FIRST, status NULLS FIRST;

CREATE OR REPLACE TABLE mart.projects_by_category AS
SELECT coalesce(county_code, '611000') AS county_code,
       coalesce(category, 'all') AS project_category,
       count(*) AS projects,
       count(*) FILTER (WHERE status = 'planned') AS projects_planned,
       count(*) FILTER (WHERE status = 'in_progress') AS projects_in_progress,
       count(*) FILTER (WHERE status = 'completed') AS projects_completed,
       count(*) FILTER (WHERE status = 'cancelled') AS projects_cancelled,
       count(*) FILTER (WHERE village_code IS NULL) AS projects_county_wide,
       coalesce(sum(budget), 0) AS budget,
       coalesce(sum(disbursed), 0) AS disbursed,
       round(sum(disbursed) / nullif(sum(budget), 0), 4) AS disbursed_share,
       coalesce(sum(households_benefited), 0)::BIGINT AS households_benefited
FROM core.project WHERE deleted_at IS NULL
GROUP BY GROUPING SETS ((), (category), (county_code), (county_code, category))
ORDER BY county_code NULLS FIRST, category NULLS FIRST;

COMMENT ON TABLE mart.loans_by_county IS '扶贫贷款统计: live loans by status per county and for the city (611000); loan_status all = every status';
COMMENT ON COLUMN mart.loans_by_county.loan_status IS 'loan_status — 贷款状态: active / repaid / overdue / written_off, or all';
COMMENT ON COLUMN mart.loans_by_county.loans IS 'loans — 贷款笔数: number of live loans';
COMMENT ON COLUMN mart.loans_by_county.households IS 'households — 贷款户数: distinct borrowing households';
COMMENT ON COLUMN mart.loans_by_county.principal IS 'principal — 贷款金额: principal issued, yuan';
COMMENT ON COLUMN mart.loans_by_county.interest_subsidy IS 'interest_subsidy — 贴息金额: interest subsidies, yuan';
COMMENT ON COLUMN mart.loans_by_county.avg_annual_rate IS 'avg_annual_rate — 平均年利率: mean annual rate (fraction)';
COMMENT ON TABLE mart.projects_by_category IS '扶贫项目统计: live projects by category (ten major projects) per county and for the city (611000); project_category all = every category';
COMMENT ON COLUMN mart.projects_by_category.project_category IS 'project_category — 项目类别: ref.code, code_list = project_category; or all';
COMMENT ON COLUMN mart.projects_by_category.projects IS 'projects — 项目数: live projects';
COMMENT ON COLUMN mart.projects_by_category.projects_planned IS 'projects_planned — 计划项目数: status planned';
COMMENT ON COLUMN mart.projects_by_category.projects_in_progress IS 'projects_in_progress — 在建项目数: status in_progress';
COMMENT ON COLUMN mart.projects_by_category.projects_completed IS 'projects_completed — 完工项目数: status completed';
COMMENT ON COLUMN mart.projects_by_category.projects_cancelled IS 'projects_cancelled — 取消项目数: status cancelled';
COMMENT ON COLUMN mart.projects_by_category.projects_county_wide IS 'projects_county_wide — 全县性项目数: projects without a village';
COMMENT ON COLUMN mart.projects_by_category.budget IS 'budget — 预算金额: total budget, yuan';
COMMENT ON COLUMN mart.projects_by_category.disbursed IS 'disbursed — 已拨付金额: funds disbursed, yuan';
COMMENT ON COLUMN mart.projects_by_category.disbursed_share IS 'disbursed_share — 拨付率: disbursed / budget';
COMMENT ON COLUMN mart.projects_by_category.households_benefited IS 'households_benefited — 受益户数: sum of households benefited (a household in two projects counts twice)';
