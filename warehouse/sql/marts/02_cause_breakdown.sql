-- mart.cause_breakdown: households and persons by poverty cause (致贫原因), per county and for
-- the city (611000). Live households only. households_main counts the main cause; households_any
-- counts a household under every cause it lists (main or other), so those do not add up.

CREATE OR REPLACE TABLE mart.cause_breakdown AS
WITH causes AS (
    SELECT code AS cause, label AS cause_label
    FROM seed_csv(getvariable('hub_seeds') || '/codes.csv')
    WHERE code_table = 'poverty_cause'
),
hh AS (
    SELECT household_no, county_code, main_cause,
           list_distinct(list_prepend(main_cause, coalesce(other_causes, []))) AS all_causes
    FROM core.household WHERE deleted_at IS NULL
),
members AS (
    SELECT household_no, count(*) AS persons FROM mart.person GROUP BY household_no
),
per_cause AS (
    SELECT hh.county_code, c.cause,
           count(*) FILTER (WHERE hh.main_cause = c.cause) AS households_main,
           coalesce(sum(m.persons) FILTER (WHERE hh.main_cause = c.cause), 0) AS persons_main,
           count(*) AS households_any
    FROM hh
    JOIN causes AS c ON list_contains(hh.all_causes, c.cause)
    LEFT JOIN members AS m USING (household_no)
    GROUP BY GROUPING SETS ((c.cause), (hh.county_code, c.cause))
),
totals AS (
    SELECT county_code, count(*) AS households
    FROM hh GROUP BY GROUPING SETS ((), (county_code))
)
SELECT coalesce(p.county_code, '611000') AS county_code, p.cause, c.cause_label,
       p.households_main::BIGINT AS households_main, p.persons_main::BIGINT AS persons_main,
       p.households_any::BIGINT AS households_any,
       round(p.households_main / t.households, 4) AS share_main
FROM per_cause AS p
JOIN causes AS c USING (cause)
JOIN totals AS t ON t.county_code IS NOT DISTINCT FROM p.county_code
ORDER BY p.county_code NULLS FIRST, p.households_main DESC, p.cause;

COMMENT ON TABLE mart.cause_breakdown IS '致贫原因分析: live households and persons by poverty cause, per county and for the city (611000)';
COMMENT ON COLUMN mart.cause_breakdown.cause IS 'cause — 致贫原因: city code of the cause (ref.code, code_list = poverty_cause)';
COMMENT ON COLUMN mart.cause_breakdown.cause_label IS 'cause_label — 致贫原因名称: standard Chinese label of the cause';
COMMENT ON COLUMN mart.cause_breakdown.households_main IS 'households_main — 主因户数: households whose main cause this is';
COMMENT ON COLUMN mart.cause_breakdown.persons_main IS 'persons_main — 主因人口: persons of those households';
COMMENT ON COLUMN mart.cause_breakdown.households_any IS 'households_any — 涉及户数: households listing this cause as main or other cause';
COMMENT ON COLUMN mart.cause_breakdown.share_main IS 'share_main — 主因占比: households_main / all live households of the county (or city)';
