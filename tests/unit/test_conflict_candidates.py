"""``conflict_candidates`` of persons read lazily: exactly the rows whose ID number repeats
(the repeated hashes are found by sorting one hash column, not with a hash table of every
person: bench/profiles/merge.md, "The largest merge steps at scale 10")."""

from __future__ import annotations

import polars as pl

from schemas.validate_chunks import conflict_candidates


def test_candidates_are_the_rows_whose_id_number_repeats(tmp_path):
    ids = ["A1", None, "B2", "A1", "C3", None, "B2", "A1", "D4"] + [f"U{i}" for i in range(3000)]
    persons = pl.DataFrame(
        {
            "id_number": ids,
            "person_no": [f"P{i}" for i in range(len(ids))],
            "source_key": [f"K{i}" for i in range(len(ids))],
            "parse_errors": [None] * len(ids),
        },
        schema_overrides={"parse_errors": pl.String},
    )
    path = tmp_path / "person.parquet"
    persons.write_parquet(path, row_group_size=4)  # the repeats fall in different row groups

    found = conflict_candidates(pl.scan_parquet(path))

    assert sorted(found["person_no"]) == ["P0", "P2", "P3", "P6", "P7"]  # A1 x3, B2 x2
    assert found.columns == ["id_number", "person_no", "source_key", "parse_errors"]
    unique = persons.filter(pl.col("id_number").is_in(["C3", "D4"]) | pl.col("id_number").is_null())
    assert conflict_candidates(unique.lazy()).is_empty()  # nulls never pair, singles neither
