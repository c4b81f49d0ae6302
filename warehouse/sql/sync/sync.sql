-- What one county sync (pipelines/sync.py) reads of the warehouse before it merges.

-- name: existing_members
-- The live members of the households this batch touches ({touched}: household_no).
SELECT p.household_no, p.person_no, p.relation_to_head, p.sex, p.birth_date,
       p.health, p.labor_skill
FROM core.person p JOIN {touched} USING (household_no)
WHERE p.deleted_at IS NULL;

-- name: poor_id_numbers
-- Only the poor people (of any county) who share an ID number with one of these cadres.
SELECT DISTINCT p.id_number FROM core.person p
JOIN (SELECT DISTINCT id_number FROM {cadres} WHERE id_number IS NOT NULL) c USING (id_number)
WHERE p.deleted_at IS NULL;

-- name: existing_households
SELECT household_no FROM core.household WHERE county_code = $county AND deleted_at IS NULL;

-- name: existing_villages
SELECT code FROM core.region
WHERE level = 'village' AND county_code = $county AND deleted_at IS NULL;

-- name: existing_cadres
SELECT cadre_id FROM core.cadre WHERE county_code = $county AND deleted_at IS NULL;

-- name: latest_merged_sync
-- The newest landing the county merged (a replay counts as the landing it replayed).
SELECT max(coalesce(replay_of, sync_run_id)) FROM ops.sync_run
WHERE county_code = $county AND status = 'succeeded';

-- name: recorded_runs
-- Whether this landing's sync id was recorded already, and how many replays of it were.
SELECT count(*) FILTER (sync_run_id = $id),
       count(DISTINCT sync_run_id) FILTER (replay_of = $id)
FROM ops.sync_run WHERE county_code = $county;
