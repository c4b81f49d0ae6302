-- ID-number conflicts (ops.conflict kind id_number): the same ID number on two person records,
-- in one county or across counties. Both records stay in core; the key of the conflict is the
-- person_key (the ID number itself never leaves core).
--
-- Resolution (deterministic, the same rule the marts use to count a person once city-wide):
-- keep_first_seen — the record the warehouse saw first wins (smaller first_seen_at); on a tie
-- the smaller person_no; a side that is not in core (rejected) never wins. The loser stays in
-- core but is not counted as a separate person in the marts.
-- Sides are ordered by (county_code, source_key) so the same pair always has the same
-- conflict_id; seeing it again re-opens it rather than adding a row.

-- name: resolve_id_conflicts
-- An open conflict ends when one of its sides in core was deleted or no longer carries the
-- shared ID number. A side that never reached core (rejected) does not end it. Only this
-- county's conflicts can change in its sync; one EXISTS per side lets DuckDB hash-join them.
UPDATE ops.conflict AS k SET resolved_at = $now
WHERE k.kind = 'id_number' AND k.resolved_at IS NULL
  AND $county IN (k.county_code_a, k.county_code_b)
  AND (EXISTS (SELECT 1 FROM core.person AS p
               WHERE p.county_code = k.county_code_a AND p.source_key = k.source_key_a
                 AND (p.deleted_at IS NOT NULL OR p.person_key IS DISTINCT FROM k.key))
       OR EXISTS (SELECT 1 FROM core.person AS p
                  WHERE p.county_code = k.county_code_b AND p.source_key = k.source_key_b
                    AND (p.deleted_at IS NOT NULL OR p.person_key IS DISTINCT FROM k.key)));

-- name: resolve_household_conflicts
-- A household_no claim ends when the owner no longer holds the household live, or when the
-- claimant's full household listing no longer contains the claimed record.
UPDATE ops.conflict AS k SET resolved_at = $now
WHERE k.kind = 'household_no' AND k.resolved_at IS NULL
  AND (NOT EXISTS (SELECT 1 FROM core.household AS h
                   WHERE h.household_no = k.key AND h.county_code = k.county_code_a
                     AND h.deleted_at IS NULL)
       OR (k.county_code_b = $county AND $household_listed
           AND NOT EXISTS (SELECT 1 FROM _listing_household AS l
                           WHERE l.source_key = k.source_key_b)));

-- name: id_pairs_table
CREATE OR REPLACE TEMP TABLE _id_pair (
    key VARCHAR, county_1 VARCHAR, source_key_1 VARCHAR, county_2 VARCHAR, source_key_2 VARCHAR);

-- name: id_pairs_validated
-- Pairs validation found inside this batch (both records of this county).
INSERT INTO _id_pair
SELECT sha256($opad || unhex(sha256($ipad || encode(id_number)))),
       $county, source_key, $county, other_source_key
FROM {conflicts}
WHERE id_number IS NOT NULL AND source_key <> other_source_key;

-- name: shared_person_keys_table
CREATE OR REPLACE TEMP TABLE _shared_person_key (h UBIGINT);

-- name: shared_person_rows
-- The rows shared_person_keys reads in all (core.person's every row: an upper bound, cheap),
-- which sets how many pieces it runs in (warehouse/shared_keys.py).
SELECT (SELECT count(*) FROM _stage_person) + (SELECT count(*) FROM _diff_person WHERE same)
       + (SELECT count(*) FROM core.person);

-- name: shared_person_keys
-- The 64-bit hashes of the person_keys that two person_nos hold among the live persons and the
-- accepted persons of this sync (_stage_person, and _diff_person's same rows): the only keys
-- id_pairs_core can pair. Aggregates, which spill; the join they replace (every accepted
-- person against every live one, wide rows) ran out of the merge's memory at scale 5
-- (bench/profiles/merge.md). The distinct (hash, person_no) pairs first, then the hashes with
-- two or more: the same hashes as min(person_no) <> max(person_no) per hash, for a third of
-- the CPU and less memory (no string states). Piece {piece} of {pieces} by the hash itself:
-- every row of a hash is in one piece, so each piece finds exactly its hashes, and the
-- aggregates' groups (which grow with every live person of the city) are a piece's share
-- (warehouse/shared_keys.py; in one piece, at scale 10, it ran out of the merge's 96 MB once
-- a second county was in core: bench/profiles/merge.md). {piece} and {pieces} are whole
-- numbers written into the text: as $parameters the same statement took ~6x the CPU (1.7
-- vs 0.3 CPU-s a piece at scale 10, DuckDB 1.5.5; why was not investigated).
INSERT INTO _shared_person_key
SELECT h FROM (
    SELECT DISTINCT h, person_no FROM (
        SELECT hash(person_key) AS h, person_no FROM _stage_person
        WHERE person_key IS NOT NULL AND hash(person_key) % {pieces} = {piece}
        UNION ALL
        SELECT hash(core_person_key), person_no FROM _diff_person
        WHERE same AND core_person_key IS NOT NULL AND hash(core_person_key) % {pieces} = {piece}
        UNION ALL
        SELECT hash(person_key), person_no FROM core.person
        WHERE deleted_at IS NULL AND person_key IS NOT NULL
          AND hash(person_key) % {pieces} = {piece}))
GROUP BY h HAVING count(person_no) > 1;

-- name: accepted_persons
-- This sync's accepted persons: the staged ones and those the hash diff found the same.
SELECT (SELECT count(*) FROM _stage_person) + (SELECT count(*) FROM _diff_person WHERE same);

-- name: shared_person_keys_of_sync
-- shared_person_keys for a sync with few accepted persons (warehouse/merge.py,
-- PAIRS_OF_SYNC_ROWS; an incremental): only the hashes this sync's accepted persons hold are
-- grouped, with the live persons of those hashes (a semi-join whose hash table is the sync's
-- few hashes) instead of every live person of the city. id_pairs_core reads only those hashes
-- of the set, so the pairs are the same; a one-day incremental of 洛南 at scale 1.0 grouped
-- ~485k live persons to find none (0.21 CPU-s; bench/profiles/merge.md, "Incremental merge").
-- Distinct (hash, person_no) pairs, then the hashes with two or more, as shared_person_keys
-- (no string min/max states: 柞水's first load at scale 10, 388k persons, peaked in it).
CREATE OR REPLACE TEMP TABLE _shared_person_key AS
WITH accepted AS (
    SELECT hash(person_key) AS h, person_no FROM _stage_person WHERE person_key IS NOT NULL
    UNION ALL
    SELECT hash(core_person_key), person_no FROM _diff_person
    WHERE same AND core_person_key IS NOT NULL)
SELECT h FROM (
    SELECT DISTINCT h, person_no FROM (
        SELECT h, person_no FROM accepted
        UNION ALL
        SELECT hash(person_key), person_no FROM core.person
        WHERE deleted_at IS NULL AND person_key IS NOT NULL
          AND hash(person_key) IN (SELECT h FROM accepted)))
GROUP BY h HAVING count(person_no) > 1;

-- name: pairable_persons
-- The live persons whose person_key's hash is in _shared_person_key (a few rows): a semi-join
-- whose hash table is the few hashes, read in one pass over core.person.
CREATE OR REPLACE TEMP TABLE _pairable_person AS
SELECT person_key, person_no, county_code, source_key FROM core.person
WHERE deleted_at IS NULL AND hash(person_key) IN (SELECT h FROM _shared_person_key);

-- name: id_pairs_core
-- An accepted person of this sync whose ID number a live person with another person_no already
-- holds, in this county or another. The accepted persons are the staged (changed) ones and
-- those the hash diff found the same as core (_diff_person, person_key from core). Only those
-- whose key's hash is in _shared_person_key can pair, with the live persons of such a hash
-- (_pairable_person): the exact test is the join, of a few rows on each side.
INSERT INTO _id_pair
SELECT s.person_key, $county, s.source_key, p.county_code, p.source_key
FROM (SELECT person_key, person_no, source_key FROM _stage_person
      UNION ALL
      SELECT core_person_key, person_no, source_key FROM _diff_person WHERE same) AS s
JOIN _pairable_person AS p ON p.person_key = s.person_key AND p.person_no <> s.person_no
WHERE hash(s.person_key) IN (SELECT h FROM _shared_person_key);

-- name: record_id_conflicts
-- sides: the live core rows of the pairs' records only (a join that builds its hash table on
-- every live person of the city does not fit the merge's memory at scale 5).
MERGE INTO ops.conflict AS k
USING (
WITH sides AS NOT MATERIALIZED (
    SELECT p.county_code, p.source_key, p.person_no, p.first_seen_at
    FROM core.person AS p
    JOIN (SELECT county_1 AS county_code, source_key_1 AS source_key FROM _id_pair
          UNION SELECT county_2, source_key_2 FROM _id_pair) AS i
      ON i.county_code = p.county_code AND i.source_key = p.source_key
    WHERE p.deleted_at IS NULL)
SELECT DISTINCT ON (conflict_id)
       md5(concat_ws('|', 'id_number', o.key, o.county_code_a, o.source_key_a,
                     o.county_code_b, o.source_key_b)) AS conflict_id,
       'id_number' AS kind, o.key,
       o.county_code_a, o.source_key_a, o.county_code_b, o.source_key_b,
       'keep_first_seen' AS resolution,
       CASE WHEN rb.person_no IS NULL THEN 'a'
            WHEN ra.person_no IS NULL THEN 'b'
            WHEN ra.first_seen_at < rb.first_seen_at THEN 'a'
            WHEN ra.first_seen_at > rb.first_seen_at THEN 'b'
            WHEN ra.person_no <= rb.person_no THEN 'a'
            ELSE 'b' END AS winner,
       $now AS detected_at, NULL::TIMESTAMPTZ AS resolved_at, $run AS sync_run_id
FROM (
    SELECT key,
           CASE WHEN first_is_a THEN county_1 ELSE county_2 END AS county_code_a,
           CASE WHEN first_is_a THEN source_key_1 ELSE source_key_2 END AS source_key_a,
           CASE WHEN first_is_a THEN county_2 ELSE county_1 END AS county_code_b,
           CASE WHEN first_is_a THEN source_key_2 ELSE source_key_1 END AS source_key_b
    FROM (SELECT *, (county_1 < county_2
                     OR (county_1 = county_2 AND source_key_1 < source_key_2)) AS first_is_a
          FROM _id_pair
          WHERE NOT (county_1 = county_2 AND source_key_1 = source_key_2))
) AS o
LEFT JOIN sides AS ra ON ra.county_code = o.county_code_a AND ra.source_key = o.source_key_a
LEFT JOIN sides AS rb ON rb.county_code = o.county_code_b AND rb.source_key = o.source_key_b
) AS s
ON k.conflict_id = s.conflict_id
WHEN MATCHED THEN UPDATE SET resolved_at = NULL, winner = s.winner
WHEN NOT MATCHED THEN INSERT BY NAME;
