-- Stage one entity of one county sync for the merge: the row-hash diff first, then only the
-- rows that changed are staged with every column.
--
-- Placeholders in {braces} are identifiers and column lists filled in by warehouse/entities.py
-- from schemas/columns.py (never data); values are $parameters. {source} is the entity's staged
-- rows with their position _row (warehouse/staged_rows.py: the staged Parquet files through
-- read_parquet, or an Arrow view of a frame in memory).
--
-- {row_hash} is THE row_hash: the MD5 of the contract columns cast to the core types, as typed
-- JSON, so 1.5 and 1.50 (DECIMAL) hash alike and a list keeps its order (warehouse/entities.py;
-- the region seed uses the same expression).

-- name: diff
-- Every staged row against core, set-based, before validation: its row_hash, and whether it is
-- the same as this county's live core row (same row_hash and source key, no parse error, its
-- source time not in the future). Such a row skips the per-row checks of validation (it passed
-- them when it was merged, with this content) and, unless a claim rejects it, the merge only
-- records that this sync saw it (45_touch.sql). Everything else takes the full path.
CREATE OR REPLACE TEMP TABLE {diff} AS
SELECT s._row, {key_cols_s}, s.source_key, s.source_updated_at, s.raw_ref,{diff_extra}
       s.row_hash,
       coalesce(c.row_hash = s.row_hash AND c.deleted_at IS NULL AND c.county_code = $county
                AND c.source_key = s.source_key AND s.parsed
                AND (s.source_updated_at IS NULL OR s.source_updated_at <= $future_limit),
                false) AS same,
       {core_person_key} AS core_person_key
FROM (SELECT {casts}, {row_hash} AS row_hash, CAST(source_key AS VARCHAR) AS source_key,
             CAST(source_updated_at AS TIMESTAMPTZ) AS source_updated_at,
             CAST(raw_ref AS VARCHAR) AS raw_ref,
             coalesce(len(parse_errors), 0) = 0 AS parsed
      FROM {source}) AS s
LEFT JOIN core.{entity} AS c ON {key_join_cs};

-- name: new_keys
-- The first sync of an entity for this county, with no live row of this county in core: no
-- staged row can be the same, so the diff skips the hash and the join (the stage computes
-- row_hash for the rows it stages).
CREATE OR REPLACE TEMP TABLE {diff} AS
SELECT s._row, {key_cols_s}, s.source_key, s.source_updated_at, s.raw_ref,{diff_extra}
       NULL::VARCHAR AS row_hash, false AS same, NULL::VARCHAR AS core_person_key
FROM (SELECT {casts}, CAST(source_key AS VARCHAR) AS source_key,
             CAST(source_updated_at AS TIMESTAMPTZ) AS source_updated_at,
             CAST(raw_ref AS VARCHAR) AS raw_ref
      FROM {source}) AS s;

-- name: drop_rejected
-- The diff keeps the accepted rows only: validation's rejects ({rejected}: row positions) go.
DELETE FROM {diff} WHERE _row IN (SELECT _row FROM {rejected});

-- name: repeated_keys
-- Accepted rows whose key another accepted row repeats (a NULL key counts as repeated: the
-- window below then decides, as it always did).
SELECT count(*) - count(DISTINCT ({key_cols})) FROM {diff};

-- name: drop_older
-- One row per key: a key delivered twice in one sync (the record changed while the source was
-- paging) keeps the newest source_updated_at, then the later row.
DELETE FROM {diff} WHERE _row IN (
    SELECT _row FROM {diff}
    QUALIFY row_number() OVER (
        PARTITION BY {key_cols} ORDER BY source_updated_at DESC NULLS LAST, _row DESC) > 1);

-- name: stage
-- The accepted rows that are not the same as core, every column cast to the core types. The
-- rows the diff found the same stay in {diff} (same = true): claims, the touch (45_touch.sql) and the
-- ID-number pairs read them there.
--
-- For persons, the person_key placeholder adds person_key = HMAC-SHA256(HUB_PII_KEY, id_number) in hex,
-- vectorised: HMAC(K, m) = H((K0 xor opad) || H((K0 xor ipad) || m)), where $ipad and $opad
-- are the key's two 64-byte pads prepared once in Python (the key never enters a SQL text):
--     sha256($opad || unhex(sha256($ipad || encode(id_number)))) AS person_key
CREATE OR REPLACE TEMP TABLE {stage} AS
SELECT {casts},
       {row_hash} AS row_hash,{person_key}
       CAST(source_key AS VARCHAR) AS source_key,
       CAST(source_updated_at AS TIMESTAMPTZ) AS source_updated_at,
       CAST(raw_ref AS VARCHAR) AS raw_ref
FROM {source}
WHERE _row IN (SELECT _row FROM {diff} WHERE NOT same);

-- name: counts
-- How the staged rows compare with core before the upsert (for ops.sync_run): the staged rows
-- (changed, new, revived, or hash-equal but not eligible for the short path) and the same ones
-- (after claims dropped theirs). A core row the division seed wrote (source_platform 'seed',
-- ops/region_seed.sql) that a platform delivers for the first time is inserted, not updated
-- or unchanged: the seed is reference data, not an earlier sync of this county.
-- matched: staged rows whose key core holds, seeded ones included (none: the upsert is a
-- plain insert, insert_new).
WITH seeded_same AS (
    SELECT count(*) AS n FROM {diff} AS s
    WHERE s.same AND EXISTS (
        SELECT 1 FROM core.{entity} AS c WHERE c.source_platform = 'seed' AND {key_join_cs}))
SELECT count(*) FILTER (WHERE c.row_hash IS NULL OR c.source_platform = 'seed')
       + (SELECT n FROM seeded_same) AS inserted,
       count(*) FILTER (WHERE c.row_hash IS NOT NULL AND c.source_platform <> 'seed'
                          AND (c.row_hash <> s.row_hash OR c.deleted_at IS NOT NULL)) AS updated,
       count(*) FILTER (WHERE c.row_hash = s.row_hash AND c.deleted_at IS NULL
                          AND c.source_platform <> 'seed')
       + (SELECT count(*) FROM {diff} WHERE same) - (SELECT n FROM seeded_same) AS unchanged,
       count(*) FILTER (WHERE c.row_hash IS NOT NULL) AS matched
FROM {stage} s LEFT JOIN core.{entity} c ON {key_join_cs};

-- name: county_has_live
-- Whether core holds a live row of this entity for this county (else nothing can be the same).
SELECT EXISTS (SELECT 1 FROM core.{entity} WHERE county_code = $county AND deleted_at IS NULL);
