-- Keys claimed by a second county. A household_no (and every key derived from one) belongs to
-- one county: when a live core row of ANOTHER county already holds the key, this county's claim
-- is rejected (rule key_owned_by_other_county) and, for households, recorded in ops.conflict
-- (kind household_no, resolution claim_rejected, winner a = the owner). Child rows (person,
-- measure, loan, household_cadre) of a rejected household claim are rejected with
-- parent_rejected, as validation does for a parent rejected in the same batch. A key whose
-- owner row is soft-deleted may move to the new county.

-- name: claims
INSERT INTO _merge_reject
SELECT '{entity}', s.source_key, 'key_owned_by_other_county', '{key_col}', {key_text},
       'this key already belongs to a live record of county ' || c.county_code
       || '; the claim was rejected and recorded in ops.conflict',
       s.raw_ref, c.county_code, c.source_key
FROM {stage} s JOIN core.{entity} c ON {key_join_cs}
WHERE c.deleted_at IS NULL AND c.county_code <> $county;

-- name: parent_claims
INSERT INTO _merge_reject
SELECT '{entity}', s.source_key, 'parent_rejected', 'household_no', s.household_no,
       'its household ' || s.household_no || ' belongs to county ' || r.owner_county,
       s.raw_ref, NULL, NULL
FROM {stage} s JOIN _merge_reject r
  ON r.entity = 'household' AND r.rule = 'key_owned_by_other_county' AND r.value = s.household_no
WHERE NOT EXISTS (SELECT 1 FROM _merge_reject x
                  WHERE x.entity = '{entity}' AND x.source_key = s.source_key);

-- name: drop_claims
DELETE FROM {stage} s
WHERE EXISTS (SELECT 1 FROM _merge_reject r
              WHERE r.entity = '{entity}' AND r.source_key = s.source_key);

-- name: household_conflicts
-- Sides: a = the owner (county in core), b = the claimant (this sync). Deterministic id, so
-- the same claim seen at every sync stays one row (and is re-opened if it had been resolved).
-- MERGE INTO rather than ON CONFLICT: DuckLake has no keys (docs/engineering/scale-out.md).
MERGE INTO ops.conflict AS k
USING (
SELECT DISTINCT ON (conflict_id) *
FROM (
    SELECT md5(concat_ws('|', 'household_no', value, owner_county, owner_source_key,
                         $county, source_key)) AS conflict_id,
           'household_no' AS kind, value AS key,
           owner_county AS county_code_a, owner_source_key AS source_key_a,
           $county AS county_code_b, source_key AS source_key_b,
           'claim_rejected' AS resolution, 'a' AS winner,
           $now AS detected_at, NULL::TIMESTAMPTZ AS resolved_at, $run AS sync_run_id
    FROM _merge_reject
    WHERE entity = 'household' AND rule = 'key_owned_by_other_county'
)
) AS s
ON k.conflict_id = s.conflict_id
WHEN MATCHED THEN UPDATE SET resolved_at = NULL
WHEN NOT MATCHED THEN INSERT BY NAME;
