-- 002_as_of_macros: "what did the warehouse say on date D" as one query.
--
--   SELECT * FROM core.household_as_of(DATE '2016-06-30');
--   SELECT * FROM core.person_as_of('2016-06-30') WHERE household_no = '...';
--
-- D is a calendar date in Asia/Shanghai (the city's clock) and the answer is the state at the
-- END of that day: every version the warehouse held at 24:00 of D, i.e. valid_from before the
-- next midnight and valid_to (NULL = still current) after it. Records deleted by then are
-- absent. Times are the warehouse's (when a sync committed), not the source's.

CREATE OR REPLACE MACRO core.household_as_of(d) AS TABLE
SELECT h.* EXCLUDE (valid_to, closed_reason)
FROM core.household_history AS h
WHERE h.valid_from < timezone('Asia/Shanghai', (CAST(d AS DATE) + 1)::TIMESTAMP)
  AND (h.valid_to IS NULL
       OR h.valid_to >= timezone('Asia/Shanghai', (CAST(d AS DATE) + 1)::TIMESTAMP));

COMMENT ON MACRO TABLE core.household_as_of IS
'household_as_of(d) — 某日贫困户: households as the warehouse held them at the end of day d (Asia/Shanghai), from core.household_history';

CREATE OR REPLACE MACRO core.person_as_of(d) AS TABLE
SELECT p.* EXCLUDE (valid_to, closed_reason)
FROM core.person_history AS p
WHERE p.valid_from < timezone('Asia/Shanghai', (CAST(d AS DATE) + 1)::TIMESTAMP)
  AND (p.valid_to IS NULL
       OR p.valid_to >= timezone('Asia/Shanghai', (CAST(d AS DATE) + 1)::TIMESTAMP));

COMMENT ON MACRO TABLE core.person_as_of IS
'person_as_of(d) — 某日贫困人口: household members as the warehouse held them at the end of day d (Asia/Shanghai), from core.person_history';
