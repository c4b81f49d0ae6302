-- mart.person: one row per PERSON city-wide (not per record), pseudonymised. The base of every
-- person count in the marts, so that a person is counted once.
--
-- Live records only: the person and its household not soft-deleted. Several records with one
-- person_key (the same ID number, see ops.conflict kind id_number) count once, as the record the
-- conflict resolution keeps: the one first seen by the warehouse, ties to the smaller person_no.
-- No name, ID number, phone, person_no or birth date: person_key, codes, birth year and age.
--
-- Ages are whole years at the reference date: the data's own clock (the latest
-- source_updated_at in core, in Asia/Shanghai), or today when no source gives times. That keeps
-- ages of a 2016 register at 2016, as the report counted them.
--
-- Special groups (6种特殊贫困人口; the report does not define them, this is the hub's definition):
--   disabled         残疾人            health contains disabled
--   serious_illness  大病患者          health contains serious_illness
--   chronic_illness  长期慢性病患者    health contains chronic
--   elderly          60岁及以上老人    age >= 60
--   child            16岁以下儿童      age < 16
--   tekun            特困供养(五保)人员 member of a tekun household
-- A person may be in several groups; mart.special_groups lists each membership.

-- The live records of a person_key after its first (ranked on narrow columns: the window over
-- whole records cost a third of the marts, bench/profiles/city-step-incremental.md), with their
-- household's attribute: mart.person leaves them out, mart.reconciliation (07) counts them as
-- duplicates. A temp table of this connection: the marts run in order in one transaction
-- (warehouse.marts); it holds the duplicates only (a few per thousand persons). Only the
-- person_keys of more than one live record are ranked: a record without a person_key is
-- alone under its own person_no (core.person's key), as is a key's only record, so neither is
-- ever after a first; counting the keys and ranking only the shared ones' records cost a third
-- less than ranking every record (bench/profiles/city-step-incremental.md, third round).
CREATE OR REPLACE TEMP TABLE _person_not_first AS
WITH shared AS (
    SELECT p.person_key
    FROM core.person AS p
    JOIN core.household AS h ON h.household_no = p.household_no AND h.deleted_at IS NULL
    WHERE p.deleted_at IS NULL AND p.person_key IS NOT NULL
    GROUP BY p.person_key HAVING count(*) > 1
)
SELECT p.person_no, h.poverty_attribute
FROM core.person AS p
JOIN core.household AS h ON h.household_no = p.household_no AND h.deleted_at IS NULL
WHERE p.deleted_at IS NULL AND p.person_key IN (SELECT person_key FROM shared)
QUALIFY row_number() OVER (PARTITION BY p.person_key ORDER BY p.first_seen_at, p.person_no) > 1;

CREATE OR REPLACE TABLE mart.person AS
WITH ref AS (
    -- the latest instant, then its local date: the same date as the latest local time (the
    -- clock only ever went back within one night, DST 1986-91), one conversion, not one a row
    SELECT coalesce(
        timezone('Asia/Shanghai', max(source_updated_at))::DATE, current_date) AS ref_date
    FROM core.person
),
live AS (
    SELECT p.*, h.town_code, h.village_code, h.poverty_attribute, h.poverty_status
    FROM core.person AS p
    JOIN core.household AS h ON h.household_no = p.household_no AND h.deleted_at IS NULL
        -- one part of the households when a full build writes the table in parts (the join's
        -- hash table is theirs: warehouse.mart_delta.PERSON_PART_HOUSEHOLDS); else all of them
        AND (coalesce(getvariable('hub_person_parts'), 1) = 1
             OR hash(h.household_no) % getvariable('hub_person_parts')
                = getvariable('hub_person_part'))
    WHERE p.deleted_at IS NULL
)
SELECT l.person_key,
       l.household_no,
       l.county_code,
       l.town_code,
       l.village_code,
       l.poverty_attribute,
       l.poverty_status,
       l.sex,
       year(l.birth_date) AS birth_year,
       date_diff('year', l.birth_date, ref.ref_date)
           - CASE WHEN strftime(ref.ref_date, '%m%d') < strftime(l.birth_date, '%m%d')
                  THEN 1 ELSE 0 END AS age,
       l.relation_to_head,
       l.ethnicity,
       l.education,
       l.school_status,
       l.health,
       l.labor_skill,
       l.work_status,
       l.work_months,
       l.serious_illness_insured,
       list_contains(l.health, 'disabled') AS is_disabled,
       list_contains(l.health, 'serious_illness') AS is_serious_illness,
       list_contains(l.health, 'chronic') AS is_chronic_illness,
       coalesce(age >= 60, false) AS is_elderly,
       coalesce(age < 16, false) AS is_child,
       l.poverty_attribute = 'tekun' AS is_tekun,
       ref.ref_date AS age_reference_date
FROM live AS l CROSS JOIN ref
WHERE l.person_no NOT IN (SELECT person_no FROM _person_not_first);

COMMENT ON TABLE mart.person IS '贫困人口(匿名): one row per person city-wide (live records, duplicates of one ID number counted once as the record first seen), pseudonymised by person_key; no names, ID numbers or phones';
COMMENT ON COLUMN mart.person.birth_year IS 'birth_year — 出生年份: year of birth (the full date stays in core)';
COMMENT ON COLUMN mart.person.age IS 'age — 年龄: whole years at age_reference_date';
COMMENT ON COLUMN mart.person.is_disabled IS 'is_disabled — 残疾人: health contains disabled';
COMMENT ON COLUMN mart.person.is_serious_illness IS 'is_serious_illness — 大病患者: health contains serious_illness';
COMMENT ON COLUMN mart.person.is_chronic_illness IS 'is_chronic_illness — 长期慢性病患者: health contains chronic';
COMMENT ON COLUMN mart.person.is_elderly IS 'is_elderly — 60岁及以上老人: age 60 or more';
COMMENT ON COLUMN mart.person.is_child IS 'is_child — 16岁以下儿童: age under 16';
COMMENT ON COLUMN mart.person.is_tekun IS 'is_tekun — 特困供养人员: member of a tekun (五保) household';
COMMENT ON COLUMN mart.person.age_reference_date IS 'age_reference_date — 年龄基准日: the data''s own date (latest source_updated_at in Asia/Shanghai, else the build date)';
