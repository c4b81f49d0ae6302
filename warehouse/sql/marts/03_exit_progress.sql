-- mart.exit_progress: households and persons that exited poverty, by exit year (脱贫年度), per
-- county and for the city (611000). A household counts in its exit year whatever its status
-- now; relapsed_since counts those of that year's exits that later relapsed. Live rows only.

CREATE OR REPLACE TABLE mart.exit_progress AS
WITH members AS (
    SELECT household_no, count(*) AS persons FROM mart.person GROUP BY household_no
),
exits AS (
    SELECT h.county_code, h.exit_year,
           count(*) AS households_exited,
           coalesce(sum(m.persons), 0)::BIGINT AS persons_exited,
           count(*) FILTER (WHERE h.poverty_status = 'relapsed'
                              OR h.relapse_year IS NOT NULL) AS relapsed_since
    FROM core.household AS h LEFT JOIN members AS m USING (household_no)
    WHERE h.deleted_at IS NULL AND h.exit_year IS NOT NULL
    GROUP BY GROUPING SETS ((h.exit_year), (h.county_code, h.exit_year))
),
totals AS (
    SELECT county_code, count(*) AS households_total
    FROM core.household WHERE deleted_at IS NULL
    GROUP BY GROUPING SETS ((), (county_code))
)
SELECT coalesce(e.county_code, '611000') AS county_code, e.exit_year,
       e.households_exited, e.persons_exited, e.relapsed_since,
       (sum(e.households_exited) OVER w)::BIGINT AS households_exited_cumulative,
       t.households_total,
       round(sum(e.households_exited) OVER w / t.households_total, 4) AS exited_share_cumulative
FROM exits AS e
JOIN totals AS t ON t.county_code IS NOT DISTINCT FROM e.county_code
WINDOW w AS (PARTITION BY e.county_code ORDER BY e.exit_year)
ORDER BY e.county_code NULLS FIRST, e.exit_year;

COMMENT ON TABLE mart.exit_progress IS '脱贫进度: households and persons exited per exit year, cumulative, per county and for the city (611000); live rows';
COMMENT ON COLUMN mart.exit_progress.households_exited IS 'households_exited — 当年脱贫户数: live households whose exit_year is this year';
COMMENT ON COLUMN mart.exit_progress.persons_exited IS 'persons_exited — 当年脱贫人口: persons of those households';
COMMENT ON COLUMN mart.exit_progress.relapsed_since IS 'relapsed_since — 其后返贫户数: of those households, how many relapsed later';
COMMENT ON COLUMN mart.exit_progress.households_exited_cumulative IS 'households_exited_cumulative — 累计脱贫户数: households exited up to and including this year';
COMMENT ON COLUMN mart.exit_progress.households_total IS 'households_total — 贫困户总数: all live households of the county (or city)';
COMMENT ON COLUMN mart.exit_progress.exited_share_cumulative IS 'exited_share_cumulative — 累计脱贫率: households_exited_cumulative / households_total';
