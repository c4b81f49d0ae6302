-- Stage one entity of one county sync for the merge.
--
-- Placeholders in {braces} are identifiers and column lists filled in by pipelines/warehouse.py
-- from schemas/columns.py (never data); values are $parameters.

-- name: stage
-- The accepted frame (an Arrow view, {frame}) cast to the core column types, one row per key.
-- row_hash is the MD5 of the contract columns as typed JSON, so 1.5 and 1.50 (DECIMAL) hash
-- alike and a list keeps its order. A key delivered twice in one sync (the record changed while
-- the source was paging) keeps the newest source_updated_at, then the later row.
--
-- For persons, the person_key placeholder adds person_key = HMAC-SHA256(HUB_PII_KEY, id_number) in hex,
-- vectorised: HMAC(K, m) = H((K0 xor opad) || H((K0 xor ipad) || m)), where $ipad and $opad
-- are the key's two 64-byte pads prepared once in Python (the key never enters a SQL text):
--     sha256($opad || unhex(sha256($ipad || encode(id_number)))) AS person_key
CREATE OR REPLACE TEMP TABLE {stage} AS
SELECT {casts},
       md5(to_json(struct_pack({hash_fields}))) AS row_hash,{person_key}
       source_key,
       source_updated_at,
       raw_ref
FROM {frame}
QUALIFY row_number() OVER (
    PARTITION BY {key_cols} ORDER BY source_updated_at DESC NULLS LAST, _row DESC) = 1;

-- name: counts
-- How the staged rows compare with core before the upsert (for ops.sync_run).
SELECT count(*) FILTER (WHERE c.row_hash IS NULL) AS inserted,
       count(*) FILTER (WHERE c.row_hash IS NOT NULL
                          AND (c.row_hash <> s.row_hash OR c.deleted_at IS NOT NULL)) AS updated,
       count(*) FILTER (WHERE c.row_hash = s.row_hash AND c.deleted_at IS NULL) AS unchanged
FROM {stage} s LEFT JOIN core.{entity} c ON {key_join_cs};
