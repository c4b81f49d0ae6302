-- Seeding core.region with the known divisions (warehouse/region_seed.py).

-- name: seeded
SELECT count(*) FROM ops.seed WHERE name = 'divisions' AND checksum = $digest;

-- name: insert_missing
-- Every known division ({divisions}) that core.region lacks; never overwrites a platform's row.
INSERT INTO core.region BY NAME
SELECT code, level, name, parent_code, is_poor_village, poor_village_exit_year,
       is_statistical_unit, county_code, 'seed' AS source_platform,
       code AS source_key, now() AS first_seen_at, now() AS last_synced_at,
       $seed_run AS sync_run_id,
       md5(to_json(struct_pack({hash_fields}))) AS row_hash
FROM {divisions} d
WHERE NOT EXISTS (SELECT 1 FROM core.region r WHERE r.code = d.code);

-- name: record_seed
MERGE INTO ops.seed AS t
USING (SELECT 'divisions' AS name, $digest AS checksum, now() AS applied_at, $added AS rows_added) AS s
ON t.name = s.name
WHEN MATCHED THEN UPDATE
    SET checksum = s.checksum, applied_at = s.applied_at, rows_added = s.rows_added
WHEN NOT MATCHED THEN INSERT BY NAME;
