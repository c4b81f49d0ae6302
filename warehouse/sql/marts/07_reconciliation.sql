-- mart.reconciliation: every figure of the city's report (seeds/reported_figures.csv, mid-2016)
-- next to the warehouse's own figure, the difference and why it differs.
--
--   difference             = warehouse_value - reported_value
--   quarantined            = records rejected in each county's latest sync (merged or refused)
--                            that are not live in core: the source has them, we do not
--   deleted                = records the source has deleted since (soft-deleted in core)
--   accounted_difference   = -(quarantined + deleted): the part of the difference they explain
--   unexplained_difference = difference - accounted_difference
--   duplicates             = live person records that are the same person as one counted elsewhere
-- Quarantined records are attributed through ops.quarantine (the record as normalised): a
-- household by its own attribute, a person by its household's. A person whose household number
-- exists nowhere (an orphan) has no attribute and is accounted in the totals only. Figures the
-- warehouse does not hold (teams, dispatched officials) have a NULL warehouse_value and say so.

-- The persons deleted since, counted in a statement of their own before the mart: their joins
-- (every person with its household, the deleted ones against every person of mart.person) and
-- the rest of mart.reconciliation's did not fit the city step's 96 MB in one statement at
-- scale 10 (bench/README.md, "The nightly full at scale 10"). A temp table of the marts'
-- connection, as _person_not_first (00_person.sql).
CREATE OR REPLACE TEMP TABLE _person_deleted AS
WITH deleted_persons AS (
    -- persons no longer counted: deleted records whose ID number has no live record left, one
    -- row per (attribute, person). Distinct rows then counted, not count(DISTINCT …) under
    -- GROUPING SETS, which keeps a distinct table per set in memory and cannot spill (the city
    -- step's DuckDB bound, warehouse/duckdb_bounds.py CITY); DISTINCT and GROUP BY spill.
    SELECT DISTINCT h.poverty_attribute, coalesce(p.person_key, p.person_no) AS person
    FROM core.person AS p JOIN core.household AS h USING (household_no)
    WHERE (p.deleted_at IS NOT NULL OR h.deleted_at IS NOT NULL)
      AND NOT EXISTS (SELECT 1 FROM mart.person AS m WHERE m.person_key = p.person_key)
),
counted AS (
    SELECT poverty_attribute, count(*) AS deleted FROM deleted_persons GROUP BY poverty_attribute
    UNION ALL
    SELECT NULL, count(*) FROM (SELECT DISTINCT person FROM deleted_persons)
)
SELECT * FROM counted;

CREATE OR REPLACE TABLE mart.reconciliation AS
WITH reported AS (
    SELECT *, row_number() OVER () AS sort
    FROM seed_csv(getvariable('hub_seeds') || '/reported_figures.csv')
),
household_figures AS (
    SELECT poverty_attribute, count(*) FILTER (WHERE deleted_at IS NULL) AS live,
           count(*) FILTER (WHERE deleted_at IS NOT NULL) AS deleted
    FROM core.household GROUP BY GROUPING SETS ((), (poverty_attribute))
),
person_deleted AS (SELECT * FROM _person_deleted),
person_figures AS (
    SELECT poverty_attribute, count(*) AS live FROM mart.person
    GROUP BY GROUPING SETS ((), (poverty_attribute))
),
quarantined_rows AS (
    -- records the source holds but the warehouse does not: quarantined by a merged sync (the
    -- latest quarantine of each key; an incremental sync does not resend what it rejected
    -- before) and not in core since (ops.quarantine keeps the records themselves). Only the
    -- two fields read below, not the whole record: the CTE is read several times, so DuckDB
    -- holds its rows, and whole records (~100k at scale 10) did not fit the city step's 96 MB
    -- (bench/README.md, "The nightly full at scale 10")
    SELECT q.entity, q.county_code, q.source_key,
           q.record->>'poverty_attribute' AS poverty_attribute,
           q.record->>'household_no' AS household_no
    FROM ops.quarantine AS q
    WHERE q.sync_run_id IN (SELECT sync_run_id FROM ops.sync_run WHERE status = 'succeeded')
      AND NOT EXISTS (
        SELECT 1 FROM (SELECT 'household' AS entity, county_code, source_key FROM core.household WHERE deleted_at IS NULL
                       UNION ALL SELECT 'person', county_code, source_key FROM core.person WHERE deleted_at IS NULL
                       UNION ALL SELECT 'cadre', county_code, source_key FROM core.cadre WHERE deleted_at IS NULL
                       UNION ALL SELECT 'project', county_code, source_key FROM core.project WHERE deleted_at IS NULL) AS held
        WHERE held.entity = q.entity AND held.county_code = q.county_code
          AND held.source_key = q.source_key)
    QUALIFY row_number() OVER (PARTITION BY q.entity, q.county_code, q.source_key
                               ORDER BY q.recorded_at DESC, q.sync_run_id DESC) = 1
),
household_attribute AS (
    -- the attribute of every household the source holds: live in core, or quarantined
    SELECT household_no, poverty_attribute FROM core.household WHERE deleted_at IS NULL
    UNION ALL
    SELECT source_key, poverty_attribute FROM quarantined_rows WHERE entity = 'household'
),
quarantined AS (
    -- by the attribute of the record's household; a person whose household number is known
    -- nowhere (orphan) counts in the totals only
    -- (the grand total row has a NULL attribute; an unknown attribute shows as '?')
    SELECT 'household' AS entity,
           CASE WHEN grouping(poverty_attribute) = 0
                THEN coalesce(poverty_attribute, '?') END AS poverty_attribute,
           count(*) AS n
    FROM quarantined_rows WHERE entity = 'household'
    GROUP BY GROUPING SETS ((), (poverty_attribute))
    UNION ALL
    SELECT 'person',
           CASE WHEN grouping(a.poverty_attribute) = 0 THEN coalesce(a.poverty_attribute, '?') END,
           count(*)
    FROM quarantined_rows AS p
    LEFT JOIN household_attribute AS a ON a.household_no = p.household_no
    WHERE p.entity = 'person'
    GROUP BY GROUPING SETS ((), (a.poverty_attribute))
    UNION ALL
    SELECT entity, NULL, count(*) FROM quarantined_rows
    WHERE entity IN ('cadre', 'project') GROUP BY entity
),
duplicates AS (
    -- live person records of live households that are the same person (person_key) as a
    -- record counted elsewhere: the report counts records, mart.person counts people once.
    -- The very records mart.person leaves out (_person_not_first, 00_person.sql), each counted
    -- under its own household's attribute, even when the kept record's household has another
    -- attribute. An attribute with none has no row here: counted 0 below (coalesce).
    SELECT poverty_attribute, count(*) AS n
    FROM _person_not_first
    GROUP BY GROUPING SETS ((), (poverty_attribute))
),
warehouse AS (
    SELECT 'households' AS measure, poverty_attribute, live::DOUBLE AS value,
           deleted AS deleted, 'household' AS entity,
           'live rows of core.household' AS basis
    FROM household_figures
    UNION ALL
    SELECT 'persons', f.poverty_attribute, f.live, coalesce(d.deleted, 0), 'person',
           'distinct persons (person_key) of live households, mart.person'
    FROM person_figures AS f
    LEFT JOIN person_deleted AS d ON d.poverty_attribute IS NOT DISTINCT FROM f.poverty_attribute
    UNION ALL
    SELECT 'special_group_persons', NULL, persons, 0, NULL,
           'distinct persons in the six groups of mart.special_groups (definitions there)'
    FROM mart.special_groups_by_county WHERE county_code = '611000' AND group_code = 'any'
    UNION ALL
    SELECT 'counties', NULL, count(DISTINCT county_code), 0, NULL,
           'counties with live households in core.household'
    FROM core.household WHERE deleted_at IS NULL
    UNION ALL
    SELECT 'towns', NULL, count(*), 0, NULL,
           'live town-level divisions of core.region, statistical units (4xx/5xx) excluded'
    FROM core.region WHERE level = 'town' AND deleted_at IS NULL AND NOT coalesce(is_statistical_unit, false)
    UNION ALL
    SELECT 'poor_villages', NULL, count(*), 0, NULL, 'live villages of core.region marked is_poor_village'
    FROM core.region WHERE level = 'village' AND deleted_at IS NULL AND is_poor_village
    UNION ALL
    SELECT 'cadres', NULL, count(*) FILTER (WHERE deleted_at IS NULL),
           count(*) FILTER (WHERE deleted_at IS NOT NULL), 'cadre', 'live rows of core.cadre'
    FROM core.cadre
    UNION ALL
    SELECT 'households_with_cadre', NULL, count(*), 0, NULL,
           'distinct live households with a live pairing in core.household_cadre'
    -- each live household once (household_no is core.household's key) if it has a pairing: a
    -- semi join, where the DISTINCT of the pairs joined with the households did not fit the
    -- city step's 96 MB at scale 10 (bench/README.md, "The nightly full at scale 10")
    FROM core.household AS h
    WHERE h.deleted_at IS NULL
      AND EXISTS (SELECT 1 FROM core.household_cadre AS hc
                  WHERE hc.household_no = h.household_no AND hc.deleted_at IS NULL)
    UNION ALL
    SELECT 'projects', NULL, count(*) FILTER (WHERE deleted_at IS NULL),
           count(*) FILTER (WHERE deleted_at IS NOT NULL), 'project', 'live rows of core.project'
    FROM core.project
    UNION ALL
    SELECT 'loan_principal', NULL, coalesce(sum(principal), 0), 0, NULL,
           'sum of principal of live core.loan rows, yuan'
    FROM core.loan WHERE deleted_at IS NULL
    UNION ALL
    SELECT 'aid_funds', NULL, coalesce(sum(amount), 0), 0, NULL,
           'sum of amount of live core.measure rows (assistance measures with money), yuan'
    FROM core.measure WHERE deleted_at IS NULL
),
joined AS (
    SELECT r.figure_id, r.label_zh, r.label_en, r.unit, r.value::DOUBLE AS reported_value,
           w.value AS warehouse_value, w.basis, r.sort,
           CASE WHEN w.value IS NULL THEN NULL
                WHEN w.entity IS NOT NULL THEN coalesce(q.n, 0) ELSE 0 END AS quarantined,
           CASE WHEN w.value IS NULL THEN NULL
                WHEN w.entity = 'person' THEN coalesce(d.n, 0) ELSE 0 END AS duplicates,
           CASE WHEN w.value IS NULL THEN NULL ELSE coalesce(w.deleted, 0) END AS deleted
    FROM reported AS r
    LEFT JOIN warehouse AS w
      ON w.measure = r.measure
     AND w.poverty_attribute IS NOT DISTINCT FROM nullif(r.poverty_attribute, '')
    LEFT JOIN quarantined AS q
      ON q.entity = w.entity AND q.poverty_attribute IS NOT DISTINCT FROM w.poverty_attribute
    LEFT JOIN duplicates AS d
      ON w.entity = 'person' AND d.poverty_attribute IS NOT DISTINCT FROM w.poverty_attribute
)
SELECT figure_id, label_zh, label_en, unit, reported_value, warehouse_value,
       warehouse_value - reported_value AS difference,
       quarantined::BIGINT AS quarantined,
       duplicates::BIGINT AS duplicates,
       deleted::BIGINT AS deleted,
       -(quarantined + duplicates + deleted) AS accounted_difference,
       (warehouse_value - reported_value) + (quarantined + duplicates + deleted) AS unexplained_difference,
       CASE
           WHEN warehouse_value IS NULL THEN
               'the warehouse does not hold this figure: no county platform delivers '
               || label_en || ' (' || label_zh || ')'
           WHEN warehouse_value = reported_value THEN 'matches the report'
           ELSE format('warehouse {} vs reported {} ({}): {} rejected in the latest syncs never reached core, '
                       || '{} duplicate records of one person counted once, '
                       || '{} deleted at the source since; {} left unexplained (the report is of mid-2016: '
                       || 'registrations, exits and corrections since, persons whose household is unknown '
                       || '(counted in the totals only), or a partial or scaled-down dataset)',
                       warehouse_value::BIGINT, reported_value::BIGINT,
                       CASE WHEN warehouse_value > reported_value THEN '+' ELSE '' END
                       || (warehouse_value - reported_value)::BIGINT,
                       quarantined, duplicates, deleted,
                       ((warehouse_value - reported_value) + (quarantined + duplicates + deleted))::BIGINT)
       END AS explanation,
       basis
FROM joined
ORDER BY sort;

COMMENT ON TABLE mart.reconciliation IS '数据核对: each figure of the city''s report (seeds/reported_figures.csv) next to the warehouse''s figure, the difference, what accounts for it and why';
COMMENT ON COLUMN mart.reconciliation.figure_id IS 'figure_id — 指标编号: id of the reported figure';
COMMENT ON COLUMN mart.reconciliation.label_zh IS 'label_zh — 指标名称: the figure as the report names it';
COMMENT ON COLUMN mart.reconciliation.label_en IS 'label_en — 英文名称: English name of the figure';
COMMENT ON COLUMN mart.reconciliation.unit IS 'unit — 单位: 户 households, 人 persons, 个 units, 元 yuan';
COMMENT ON COLUMN mart.reconciliation.reported_value IS 'reported_value — 报告数: the figure in the city''s report';
COMMENT ON COLUMN mart.reconciliation.warehouse_value IS 'warehouse_value — 仓库数: the same figure computed from the warehouse (basis says how); NULL when not held';
COMMENT ON COLUMN mart.reconciliation.difference IS 'difference — 差异: warehouse_value - reported_value';
COMMENT ON COLUMN mart.reconciliation.quarantined IS 'quarantined — 隔离数: records rejected in the latest syncs that never reached core (record totals only)';
COMMENT ON COLUMN mart.reconciliation.duplicates IS 'duplicates — 重复记录: person records that are the same person (person_key) as a record counted elsewhere';
COMMENT ON COLUMN mart.reconciliation.deleted IS 'deleted — 已删除数: records deleted at the source since (soft-deleted in core)';
COMMENT ON COLUMN mart.reconciliation.accounted_difference IS 'accounted_difference — 可解释差异: -(quarantined + duplicates + deleted), the part of the difference those records explain';
COMMENT ON COLUMN mart.reconciliation.unexplained_difference IS 'unexplained_difference — 未解释差异: difference - accounted_difference';
COMMENT ON COLUMN mart.reconciliation.explanation IS 'explanation — 说明: why the figures differ, in plain words';
COMMENT ON COLUMN mart.reconciliation.basis IS 'basis — 口径: how the warehouse figure is computed';
