-- The warehouse's own bookkeeping: profile, migrations and the catalogue.

-- name: table_exists
SELECT count(*) FROM duckdb_tables()
WHERE database_name = current_database() AND schema_name = $schema AND table_name = $table;

-- name: profile
SELECT profile FROM ops.hub_profile LIMIT 1;

-- name: record_profile
INSERT INTO ops.hub_profile VALUES ($profile, now());

-- name: applied_migrations
SELECT version, checksum FROM ops.schema_migration;

-- name: record_migration
INSERT INTO ops.schema_migration VALUES ($version, $file, $checksum, now());

-- name: core_columns
-- The column types the merge templates cast to.
SELECT table_name, column_name, data_type FROM duckdb_columns()
WHERE database_name = current_database() AND schema_name = 'core';

-- name: mart_tables
SELECT table_name FROM duckdb_tables()
WHERE database_name = current_database() AND schema_name = 'mart' ORDER BY table_name;

-- name: uncommented_mart_columns
-- A mart column left without a comment takes the comment of the same-named column in core,
-- else elsewhere in mart.
WITH cols AS (
    SELECT schema_name, table_name, column_name, comment FROM duckdb_columns()
    WHERE database_name = current_database() AND schema_name IN ('mart', 'core')),
docs AS (
    SELECT column_name, arg_min(comment, (schema_name <> 'core', table_name)) AS comment
    FROM cols WHERE comment IS NOT NULL AND comment <> '' GROUP BY column_name)
SELECT c.table_name, c.column_name, d.comment
FROM cols AS c JOIN docs AS d USING (column_name)
WHERE c.schema_name = 'mart' AND (c.comment IS NULL OR c.comment = '');
