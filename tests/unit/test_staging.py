"""The streaming reduction (pipelines/staging.py) against ``parsing.finish``, the in-memory rule
it replaces: one row per key, the newest ``source_updated_at`` (null oldest), ties to the later
row of the sync, rows without a key all kept, sync order; across page groups."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from pipelines import staging
from pipelines.connectors.parsing import ORDER, finish
from schemas.columns import empty_frame


def _rows(keys, times, names) -> pl.DataFrame:
    base = empty_frame("household")
    rows = pl.DataFrame(
        {
            "household_no": keys,
            "source_key": keys,
            "source_updated_at": times,
            "phone": names,
            ORDER: list(range(len(keys))),
        },
        schema_overrides={"source_updated_at": pl.Datetime("us", "UTC"), ORDER: pl.Int64},
    )
    return pl.concat(
        [base.with_columns(pl.lit(None, pl.Int64).alias(ORDER)), rows], how="diagonal_relaxed"
    )


def test_reduction_across_groups_matches_finish(tmp_path):
    t1, t2 = datetime(2016, 6, 1, tzinfo=UTC), datetime(2016, 6, 2, tzinfo=UTC)
    sync = _rows(
        ["A", "B", None, "A", "C", "B", None, "C", "D", "D"],
        [t1, t2, t1, t2, None, t2, None, None, t2, t2],
        ["a1", "b1", "x1", "a2", "c1", "b2", "x2", "c2", "d1", "d2"],
    )
    expected = finish("household", sync)
    with staging.open_parts(tmp_path / "staged") as parts:
        for start in (0, 3, 7):  # three page groups, a key's versions in different ones
            parts.write("household", sync.slice(start, {0: 3, 3: 4, 7: 3}[start]))
        rows = parts.finish("household")
        got = pl.read_parquet(parts.frame_path("household"))
    assert rows == got.height == expected.height == 6
    assert got.equals(expected)
    # B: the later row of a tie; C: both null, the later; D: a tie, the later
    assert got["phone"].to_list() == ["x1", "a2", "b2", "x2", "c2", "d2"]
    assert got.schema == expected.schema


def test_an_entity_without_rows_stages_an_empty_frame(tmp_path):
    with staging.open_parts(tmp_path / "staged") as parts:
        assert parts.finish("household") == 0
        assert (
            pl.read_parquet(parts.frame_path("household")).schema == empty_frame("household").schema
        )


def test_a_small_single_part_reduced_in_memory_matches_the_out_of_core_reduction(
    tmp_path, monkeypatch
):
    """One part of at most ``SMALL_REDUCE_ROWS`` (a day's incremental) is reduced in memory;
    the frame it stages is the out-of-core passes' file, byte for byte."""
    t1, t2 = datetime(2016, 6, 1, tzinfo=UTC), datetime(2016, 6, 2, tzinfo=UTC)
    sync = _rows(
        ["A", "B", None, "A", "C", "B", None, "C", "D", "D", "E", "F", "F"],
        [t2, t2, t1, t1, None, t2, None, None, t2, t2, None, t1, None],
        ["a1", "b1", "x1", "a2", "c1", "b2", "x2", "c2", "d1", "d2", "e1", "f1", "f2"],
    )
    expected = finish("household", sync)
    staged = {}
    for small in (staging.SMALL_REDUCE_ROWS, 0):  # in memory, then the out-of-core passes
        monkeypatch.setattr(staging, "SMALL_REDUCE_ROWS", small)
        with staging.open_parts(tmp_path / f"staged-{small}") as parts:
            parts.write("household", sync)
            rows = parts.finish("household")
            used_duckdb = parts._con is not None
            staged[small] = parts.frame_path("household").read_bytes()
            got = pl.read_parquet(parts.frame_path("household"))
        assert used_duckdb == (small == 0)
        assert rows == got.height == expected.height == 8
        assert got.equals(expected)
        # A: the newer row though earlier; B, D: a tie, the later; C: both null, the later;
        # F: a time beats a later null (null is oldest)
        assert got["phone"].to_list() == ["a1", "x1", "b2", "x2", "c2", "d2", "e1", "f1"]
    assert staged[staging.SMALL_REDUCE_ROWS] == staged[0]
