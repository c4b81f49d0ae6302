-- mart.county_summary, mart.town_summary, mart.village_summary: households and persons by
-- poverty attribute and status, live rows only. Persons come from mart.person (counted once
-- city-wide, in the county of the record kept). All three come from one grouping-sets pass so
-- the columns mean exactly the same thing at every level; county_summary has a city row
-- (county_code 611000, 商洛市) whose persons are distinct city-wide.

CREATE OR REPLACE TEMP TABLE _area AS
WITH households AS (
    SELECT county_code, town_code, village_code,
           count(*) AS households,
           count(*) FILTER (WHERE poverty_attribute = 'general') AS households_general,
           count(*) FILTER (WHERE poverty_attribute = 'dibao') AS households_dibao,
           count(*) FILTER (WHERE poverty_attribute = 'tekun') AS households_tekun,
           count(*) FILTER (WHERE poverty_status = 'not_exited') AS households_not_exited,
           count(*) FILTER (WHERE poverty_status = 'pre_exit') AS households_pre_exit,
           count(*) FILTER (WHERE poverty_status = 'exited') AS households_exited,
           count(*) FILTER (WHERE poverty_status = 'relapsed') AS households_relapsed,
           grouping(county_code, town_code, village_code) AS grouping_id
    FROM core.household WHERE deleted_at IS NULL
    GROUP BY GROUPING SETS ((), (county_code), (county_code, town_code),
                            (county_code, town_code, village_code))
),
persons AS (
    SELECT county_code, town_code, village_code,
           count(*) AS persons,
           count(*) FILTER (WHERE poverty_attribute = 'general') AS persons_general,
           count(*) FILTER (WHERE poverty_attribute = 'dibao') AS persons_dibao,
           count(*) FILTER (WHERE poverty_attribute = 'tekun') AS persons_tekun,
           count(*) FILTER (WHERE poverty_status = 'not_exited') AS persons_not_exited,
           count(*) FILTER (WHERE poverty_status = 'pre_exit') AS persons_pre_exit,
           count(*) FILTER (WHERE poverty_status = 'exited') AS persons_exited,
           count(*) FILTER (WHERE poverty_status = 'relapsed') AS persons_relapsed,
           grouping(county_code, town_code, village_code) AS grouping_id
    FROM mart.person
    GROUP BY GROUPING SETS ((), (county_code), (county_code, town_code),
                            (county_code, town_code, village_code))
)
SELECT h.grouping_id, h.county_code, h.town_code, h.village_code,
       h.households, coalesce(p.persons, 0) AS persons,
       h.households_general, h.households_dibao, h.households_tekun,
       coalesce(p.persons_general, 0) AS persons_general,
       coalesce(p.persons_dibao, 0) AS persons_dibao,
       coalesce(p.persons_tekun, 0) AS persons_tekun,
       h.households_not_exited, h.households_pre_exit, h.households_exited,
       h.households_relapsed,
       coalesce(p.persons_not_exited, 0) AS persons_not_exited,
       coalesce(p.persons_pre_exit, 0) AS persons_pre_exit,
       coalesce(p.persons_exited, 0) AS persons_exited,
       coalesce(p.persons_relapsed, 0) AS persons_relapsed
FROM households AS h
LEFT JOIN persons AS p
  ON p.grouping_id = h.grouping_id
 AND p.county_code IS NOT DISTINCT FROM h.county_code
 AND p.town_code IS NOT DISTINCT FROM h.town_code
 AND p.village_code IS NOT DISTINCT FROM h.village_code;

-- grouping() bits: county, town, village; 7 = all rolled up (the city), 3 = per county, ...
-- The county's name from core.region, else from the registry: the workbook counties (丹凤, 柞水)
-- deliver towns and villages but no county-level region row.
CREATE OR REPLACE TABLE mart.county_summary AS
WITH registry AS (
    SELECT code, name FROM seed_csv(getvariable('hub_registry'))
)
SELECT coalesce(a.county_code, '611000') AS county_code,
       CASE WHEN a.county_code IS NULL THEN '商洛市' ELSE coalesce(r.name, g.name) END AS county_name,
       a.* EXCLUDE (grouping_id, county_code, town_code, village_code)
FROM _area AS a
LEFT JOIN core.region AS r ON r.code = a.county_code
LEFT JOIN registry AS g ON g.code = a.county_code
WHERE a.grouping_id IN (7, 3)
ORDER BY a.county_code NULLS FIRST;

CREATE OR REPLACE TABLE mart.town_summary AS
SELECT a.county_code, a.town_code, r.name AS town_name,
       coalesce(r.is_statistical_unit, false) AS is_statistical_unit,
       a.* EXCLUDE (grouping_id, county_code, town_code, village_code)
FROM _area AS a
LEFT JOIN core.region AS r ON r.code = a.town_code
WHERE a.grouping_id = 1
ORDER BY a.county_code, a.town_code;

CREATE OR REPLACE TABLE mart.village_summary AS
SELECT a.county_code, a.town_code, a.village_code, r.name AS village_name,
       coalesce(r.is_poor_village, false) AS is_poor_village, r.poor_village_exit_year,
       a.* EXCLUDE (grouping_id, county_code, town_code, village_code)
FROM _area AS a
LEFT JOIN core.region AS r ON r.code = a.village_code
WHERE a.grouping_id = 0
ORDER BY a.county_code, a.town_code, a.village_code;

DROP TABLE _area;

COMMENT ON TABLE mart.county_summary IS '县区汇总: households and persons by poverty attribute and status per county, plus the city row 611000; live records, persons counted once city-wide';
COMMENT ON TABLE mart.town_summary IS '乡镇汇总: households and persons by poverty attribute and status per town; live records';
COMMENT ON TABLE mart.village_summary IS '村汇总: households and persons by poverty attribute and status per village; live records';
COMMENT ON COLUMN mart.county_summary.county_code IS 'county_code — 县区代码: 6-digit county code; 611000 = the whole city (商洛市)';
COMMENT ON COLUMN mart.county_summary.county_name IS 'county_name — 县区名称: county name (from core.region, else the registry seeds/counties.csv)';
COMMENT ON COLUMN mart.town_summary.town_name IS 'town_name — 乡镇名称: town name (from core.region)';
COMMENT ON COLUMN mart.village_summary.village_name IS 'village_name — 村名称: village name (from core.region)';
COMMENT ON COLUMN mart.county_summary.households IS 'households — 贫困户数: live poor households';
COMMENT ON COLUMN mart.county_summary.persons IS 'persons — 贫困人口数: live persons of live households, each ID number once';
COMMENT ON COLUMN mart.county_summary.households_general IS 'households_general — 一般贫困户数: households with attribute general';
COMMENT ON COLUMN mart.county_summary.households_dibao IS 'households_dibao — 低保贫困户数: households with attribute dibao';
COMMENT ON COLUMN mart.county_summary.households_tekun IS 'households_tekun — 特困供养贫困户数: households with attribute tekun (五保)';
COMMENT ON COLUMN mart.county_summary.persons_general IS 'persons_general — 一般贫困人口: persons of general households';
COMMENT ON COLUMN mart.county_summary.persons_dibao IS 'persons_dibao — 低保贫困人口: persons of dibao households';
COMMENT ON COLUMN mart.county_summary.persons_tekun IS 'persons_tekun — 特困供养贫困人口: persons of tekun households';
COMMENT ON COLUMN mart.county_summary.households_not_exited IS 'households_not_exited — 未脱贫户数: households with status not_exited';
COMMENT ON COLUMN mart.county_summary.households_pre_exit IS 'households_pre_exit — 预脱贫户数: households with status pre_exit';
COMMENT ON COLUMN mart.county_summary.households_exited IS 'households_exited — 已脱贫户数: households with status exited';
COMMENT ON COLUMN mart.county_summary.households_relapsed IS 'households_relapsed — 返贫户数: households with status relapsed';
COMMENT ON COLUMN mart.county_summary.persons_not_exited IS 'persons_not_exited — 未脱贫人口: persons of not_exited households';
COMMENT ON COLUMN mart.county_summary.persons_pre_exit IS 'persons_pre_exit — 预脱贫人口: persons of pre_exit households';
COMMENT ON COLUMN mart.county_summary.persons_exited IS 'persons_exited — 已脱贫人口: persons of exited households';
COMMENT ON COLUMN mart.county_summary.persons_relapsed IS 'persons_relapsed — 返贫人口: persons of relapsed households';
