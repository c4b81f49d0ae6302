-- mart.special_groups: one row per person and special group they belong to (6种特殊贫困人口;
-- the six groups are defined in 00_person.sql), by person_key; mart.special_groups_by_county
-- counts them per county and for the city (611000). A person in two groups has two rows;
-- persons_any counts each person once.

CREATE OR REPLACE TABLE mart.special_groups AS
WITH groups(group_code, group_label) AS (
    VALUES ('disabled', '残疾人'), ('serious_illness', '大病患者'),
           ('chronic_illness', '长期慢性病患者'), ('elderly', '60岁及以上老人'),
           ('child', '16岁以下儿童'), ('tekun', '特困供养人员')
)
SELECT p.person_key, p.county_code, p.town_code, p.village_code, p.household_no,
       g.group_code, g.group_label, p.age, p.sex
FROM mart.person AS p
JOIN groups AS g
  ON (g.group_code = 'disabled' AND p.is_disabled)
  OR (g.group_code = 'serious_illness' AND p.is_serious_illness)
  OR (g.group_code = 'chronic_illness' AND p.is_chronic_illness)
  OR (g.group_code = 'elderly' AND p.is_elderly)
  OR (g.group_code = 'child' AND p.is_child)
  OR (g.group_code = 'tekun' AND p.is_tekun);
-- No ORDER BY: a delta build appends the changed persons' rows last anyway (warehouse.mart_delta),
-- and sorting every row of a full build did not fit the city step's 96 MB at scale 10 (4.8M
-- persons; bench/README.md, "The nightly full at scale 10"). Queries order their own results.

-- No count(DISTINCT …): mart.person holds one row per person_key (00_person.sql), so a
-- person_key is in a group's rows at most once and count(person_key) of a group counts its
-- persons; a person in any group is a mart.person row with one of the six flags (the join
-- above). Plain GROUP BYs spill within the city step's DuckDB bound (warehouse/duckdb_bounds.py,
-- CITY); a count(DISTINCT …) under GROUPING SETS did not (bench/history.md, "The city step").
-- A NULL person_key (no ID number) is in no count, as in count(DISTINCT person_key).
CREATE OR REPLACE TABLE mart.special_groups_by_county AS
WITH sets AS (
    SELECT county_code, group_code, count(person_key) AS persons
    FROM mart.special_groups
    GROUP BY GROUPING SETS ((county_code, group_code), (group_code))
    UNION ALL
    SELECT county_code, NULL, count(person_key)
    FROM mart.person
    WHERE is_disabled OR is_serious_illness OR is_chronic_illness OR is_elderly OR is_child
       OR is_tekun
    GROUP BY GROUPING SETS ((county_code), ())
),
labels AS (
    SELECT group_code, any_value(group_label) AS group_label
    FROM mart.special_groups GROUP BY group_code
)
SELECT coalesce(s.county_code, '611000') AS county_code,
       coalesce(s.group_code, 'any') AS group_code,
       coalesce(l.group_label, '任一特殊群体') AS group_label,
       s.persons
FROM sets AS s
LEFT JOIN labels AS l ON l.group_code = s.group_code
ORDER BY s.county_code NULLS FIRST, s.group_code NULLS FIRST;

COMMENT ON TABLE mart.special_groups IS '特殊贫困人口: one row per person (person_key) and special group: disabled, serious_illness, chronic_illness, elderly (60+), child (<16), tekun; definitions in warehouse/sql/marts/00_person.sql';
COMMENT ON TABLE mart.special_groups_by_county IS '特殊贫困人口统计: persons per special group per county and for the city (611000); group any = in at least one group';
COMMENT ON COLUMN mart.special_groups.group_code IS 'group_code — 群体代码: disabled / serious_illness / chronic_illness / elderly / child / tekun';
COMMENT ON COLUMN mart.special_groups.group_label IS 'group_label — 群体名称: Chinese name of the group';
COMMENT ON COLUMN mart.special_groups_by_county.group_code IS 'group_code — 群体代码: one of the six groups, or any (at least one)';
COMMENT ON COLUMN mart.special_groups_by_county.persons IS 'persons — 人数: distinct persons (person_key) in the group';
