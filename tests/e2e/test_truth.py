"""Every county at test scale: the warehouse holds exactly the source minus what the simulator's
truth says is defective, and the pipeline's rejects, findings and conflicts ARE that truth."""

from __future__ import annotations

import polars as pl
import pytest

from seeds.registry import counties
from tests.e2e.helpers import live, simulator_keys, sync_county, truth, warehouse_keys

pytestmark = pytest.mark.e2e


def _pipeline_issues(con, county_code: str) -> set[tuple[str, str, str]]:
    rows = con.execute(
        """
        SELECT entity, source_key, rule FROM ops.reject WHERE county_code = $c
        UNION SELECT entity, source_key, rule FROM ops.finding WHERE county_code = $c
        UNION SELECT 'person', source_key_b, 'duplicate_id_number' FROM ops.conflict
              WHERE kind = 'id_number' AND county_code_b = $c
        """,
        {"c": county_code},
    ).fetchall()
    return set(rows)


@pytest.mark.parametrize("slug", [c.slug for c in counties()])
def test_county_matches_truth_exactly(simulator, backend, slug):
    county = next(c for c in counties() if c.slug == slug)
    result = sync_county(county)
    assert result.success
    t = truth(simulator, county)
    expected = {(r["entity"], r["source_key"], r["rule"]) for r in t.iter_rows(named=True)}
    from pipelines.defs.counties import entities_of

    with live() as con:
        got = _pipeline_issues(con, county.code)
        assert sorted(got - expected)[:20] == [], "false alarms"
        assert sorted(expected - got)[:20] == [], "missed defects"
        for entity in entities_of(county):
            if entity == "region" and county.kind == "workbook":
                continue  # derived from the file's names, not listed by the source
            rejected = set(
                t.filter((pl.col("entity") == entity) & (pl.col("level") == "reject"))["source_key"]
            )
            source = simulator_keys(simulator, county, entity)
            assert warehouse_keys(con, county, entity) == source - rejected, entity
