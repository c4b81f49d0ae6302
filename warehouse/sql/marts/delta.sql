-- mart.person and mart.special_groups as a row delta of their previous build
-- (warehouse/mart_delta.py). {definition} is the SELECT of the mart's own file (00_person.sql,
-- 04_special_groups.sql): THE definition, never restated here. Not on DuckLake (rebuilt whole).

-- name: record_exists
SELECT count(*) = 2 FROM duckdb_tables()
WHERE database_name = current_database() AND schema_name = 'marts_state'
  AND table_name IN ('build', 'sync_run');

-- name: recorded_digest
SELECT any_value(definition_digest), count(*) FROM marts_state.build;

-- name: lost_runs
-- Syncs the previous build saw that the warehouse no longer lists (restored from a backup?).
SELECT count(*) FROM (SELECT sync_run_id FROM marts_state.sync_run
                      EXCEPT SELECT sync_run_id FROM ops.sync_run);

-- name: new_runs
-- The syncs merged since the previous build. A sync writes ops.sync_run in its merge's
-- transaction (70_bookkeeping.sql), and builds and merges never overlap (the warehouse lock),
-- so these are exactly the syncs whose writes the previous build did not see.
CREATE OR REPLACE TEMP TABLE _mart_new_runs AS
SELECT sync_run_id FROM ops.sync_run EXCEPT SELECT sync_run_id FROM marts_state.sync_run;

-- name: changed_persons
-- The person_keys whose mart.person row may differ from the previous build's: every key that
-- any version of a person record touched by those syncs carries (its old and new key), where
-- the record's content changed (a history version: new, changed, revived; 30_history.sql), it
-- was soft-deleted, or its household's content changed or was soft-deleted. A sync that only
-- saw a record (商州's daily re-read) writes no version and changes no mart column (only
-- last_synced_at / sync_run_id, which mart.person does not have). The whole person_key is
-- recomputed, so which of its records is first (a new one, the first one deleted) is decided
-- anew. Records without a person_key: every such row is rewritten (delete_changed).
CREATE OR REPLACE TEMP TABLE _mart_changed_keys AS
WITH runs AS (SELECT sync_run_id FROM _mart_new_runs),
households AS (
    SELECT household_no FROM core.household_history WHERE sync_run_id IN (SELECT * FROM runs)
    UNION
    SELECT household_no FROM core.household
    WHERE deleted_at IS NOT NULL AND sync_run_id IN (SELECT * FROM runs)
),
records AS (
    SELECT person_no FROM core.person_history WHERE sync_run_id IN (SELECT * FROM runs)
    UNION
    SELECT person_no FROM core.person
    WHERE (deleted_at IS NOT NULL AND sync_run_id IN (SELECT * FROM runs))
       OR household_no IN (SELECT household_no FROM households)
)
SELECT DISTINCT person_key FROM (
    SELECT person_key FROM core.person WHERE person_no IN (SELECT person_no FROM records)
    UNION ALL
    SELECT person_key FROM core.person_history WHERE person_no IN (SELECT person_no FROM records)
)
WHERE person_key IS NOT NULL;

-- name: reference_moved
-- Does any row of the previous build have another age_reference_date than the definition's?
SELECT count(*) > 0 FROM mart.person WHERE age_reference_date IS DISTINCT FROM $reference;

-- name: aged_persons
-- When the reference date moved: the persons whose age (and so whose elderly / child flags)
-- at the new date differs from the previous build's (birthdays in between), from the
-- definition itself, on the columns that depend on the date. A key new to mart.person is a
-- changed person already (changed_persons).
INSERT INTO _mart_changed_keys
SELECT n.person_key
FROM (SELECT person_key, age, is_elderly, is_child FROM ({definition})) AS n
JOIN mart.person AS o USING (person_key)
WHERE (n.age, n.is_elderly, n.is_child) IS DISTINCT FROM (o.age, o.is_elderly, o.is_child);

-- name: set_reference
-- The one column every row carries: one narrow UPDATE (a rewrite of the table cost ~1 CPU-s
-- at scale 1; this ~0.03; bench/profiles/city-step-incremental.md).
UPDATE mart.person SET age_reference_date = $reference
WHERE age_reference_date IS DISTINCT FROM $reference;

-- name: delete_changed
DELETE FROM {table}
WHERE person_key IN (SELECT person_key FROM _mart_changed_keys) OR person_key IS NULL;

-- name: insert_changed
INSERT INTO {table}
SELECT * FROM ({definition})
WHERE person_key IN (SELECT person_key FROM _mart_changed_keys) OR person_key IS NULL;

-- name: count_definition
SELECT count(*) FROM ({definition});

-- name: count_table
SELECT count(*) FROM {table};

-- name: record_schema
-- What the build saw, written in its own transaction: the next build starts from it. An
-- internal schema: neither snapshot publishes it (warehouse.snapshots keeps core, ops, mart,
-- ref).
CREATE SCHEMA IF NOT EXISTS marts_state;

-- name: previous_build
SELECT build_id FROM marts_state.build;

-- name: record_build
CREATE OR REPLACE TABLE marts_state.build AS
SELECT $build_id AS build_id, $previous AS previous_build_id, $digest AS definition_digest,
       $mode AS mode, $reason AS reason, $changed_persons::BIGINT AS changed_persons,
       $reference_moved AS reference_moved, now() AS built_at;

-- name: record_changed_keys
-- The persons a delta build rewrote (with every row without a person_key): the analyst
-- snapshot's delta rewrites the same rows of its copy (copy_delete, copy_insert). Empty after a
-- full build.
CREATE OR REPLACE TABLE marts_state.changed_key AS
SELECT DISTINCT person_key FROM _mart_changed_keys WHERE $mode = 'delta';

-- name: record_runs
CREATE OR REPLACE TABLE marts_state.sync_run AS SELECT DISTINCT sync_run_id FROM ops.sync_run;

-- name: record_comments
COMMENT ON TABLE marts_state.build IS 'the last marts build: the digest of the definitions and migrations it ran (a change rebuilds mart.person whole), full or delta (warehouse/mart_delta.py)';
COMMENT ON TABLE marts_state.changed_key IS 'the persons (person_key) whose mart.person and mart.special_groups rows the last build rewrote, if it was a delta (warehouse/mart_delta.py)';
COMMENT ON TABLE marts_state.sync_run IS 'the syncs the last marts build saw: the next build rewrites only the persons of the syncs since (warehouse/mart_delta.py)';

-- The analyst snapshot's copy (warehouse/snapshot_delta.py; the live file attached as live):
-- when the live build is a delta of the build the copy holds, the same rows.

-- name: live_record_exists
SELECT count(*) = 2 FROM duckdb_tables()
WHERE database_name = 'live' AND schema_name = 'marts_state'
  AND table_name IN ('build', 'changed_key');

-- name: live_build
SELECT build_id, previous_build_id, mode FROM live.marts_state.build;

-- name: copy_reference
UPDATE mart.person SET age_reference_date = l.age_reference_date
FROM (SELECT any_value(age_reference_date) AS age_reference_date FROM live.mart.person) AS l
WHERE mart.person.age_reference_date IS DISTINCT FROM l.age_reference_date;

-- name: copy_delete
DELETE FROM {table}
WHERE person_key IN (SELECT person_key FROM live.marts_state.changed_key) OR person_key IS NULL;

-- name: copy_insert
INSERT INTO {table} BY NAME
SELECT * FROM live.{table}
WHERE person_key IN (SELECT person_key FROM live.marts_state.changed_key) OR person_key IS NULL;
