"""The row-hash diff of the merge step (issue 13): staged Parquet files → diff against core →
validation (per-row checks only for rows that differ) → merge, on a real DuckDB file.

Each sync here runs the merge step's own functions in its order (``sync._context``,
``staged_rows.diff_staged``, ``sync._validate_and_merge``) on staged files written by
``staged.save`` and opened lazily by ``staged.open_verified``. The per-row checks are counted
by wrapping the real ``_column_failures`` (it still runs).
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import warehouse
from pipelines import staged as staged_io
from pipelines import sync
from pipelines.staged import Staged
from schemas.validate import ValidationContext, validate_county
from tests.unit.test_warehouse_fixtures import LUONAN, frame, household, manifest, person
from warehouse import staged_rows
from warehouse.batch import Batch

H1, H2 = "6110211010010001", "6110211010010002"
P11, P12, P21 = H1 + "01", H1 + "02", H2 + "01"
# valid GB 11643 numbers: birth dates and sexes (17th digit) as the rows say
ID11, ID12, ID21 = "611021197005011234", "611021198001012349", "61102119900101455X"


def world(**changes) -> dict[str, list[dict]]:
    """Two households: H1 (head P11, spouse P12) and H2 (head P21, declaring 3 members: a
    member_count_mismatch finding in every sync). ``changes``: person or household key ->
    fields to change."""
    households = [household(H1, member_count=2), household(H2, member_count=3)]
    persons = [
        person(P11, ID11, sex="male"),
        person(P12, ID12, relation_to_head="spouse", birth_date=datetime(1980, 1, 1).date()),
        person(P21, ID21, sex="male", birth_date=datetime(1990, 1, 1).date()),
    ]
    for row in (*households, *persons):
        key = row.get("person_no") or row["household_no"]
        row.update(changes.get(key, {}))
    return {"household": households, "person": persons}


def sync_once(tmp_path, run: str, rows: dict[str, list[dict]], day: int = 1):
    """Stage ``rows`` as Parquet (a full listing), then merge them as the merge step does."""
    frames = {e: frame(e, r) for e, r in rows.items()}
    staged = Staged(frames=frames, full_listing=set(frames), source_counts={})
    directory = staged_io.save(staged, tmp_path / run / "staged")
    lazy = staged_io.open_verified(directory, LUONAN.label)
    assert lazy.frames == {} and set(lazy.parts) == {"household", "person"}
    now = datetime(2016, 7, day, 12, tzinfo=UTC)
    with warehouse.connect(tmp_path / "hub.duckdb") as con:
        context = sync._context(con, LUONAN, lazy)
        context.now = now
        diff = staged_rows.diff_staged(
            Batch(con, {"county": LUONAN.code}), lazy, warehouse.merge_entities(con), now=now
        )
        try:
            result, _, _ = sync._validate_and_merge(
                con,
                LUONAN,
                SimpleNamespace(mode="full"),
                lazy,
                manifest(LUONAN.slug, run),
                0.9,
                now,
                run,
                None,
                context,
                diff,
            )
        finally:
            diff.release()
        ops = {
            table: sorted(
                con.execute(
                    f"SELECT entity, source_key, rule FROM ops.{table} WHERE sync_run_id = ?",
                    [run],
                ).fetchall()
            )
            for table in ("reject", "finding")
        }
        core = {
            e: dict(con.execute(f"SELECT {k}, sync_run_id FROM core.{e}").fetchall())
            for e, k in (("household", "household_no"), ("person", "person_no"))
        }
        history = dict(
            con.execute(
                "SELECT household_no, count(*) FROM core.household_history GROUP BY ALL"
            ).fetchall()
        )
    return result, diff, ops, core, history


def in_memory(rows: dict[str, list[dict]]):
    """What validation says of the same rows without any diff (all of them checked)."""
    validated = validate_county(
        {e: frame(e, r) for e, r in rows.items()}, ValidationContext(full_listing={"person"})
    )
    return {
        level: sorted(
            (e, k, rule)
            for e, v in validated.items()
            for k, rule in getattr(v, level).select("source_key", "rule").iter_rows()
        )
        for level in ("rejects", "findings")
    }


def test_an_unchanged_full_re_read_costs_a_hash_comparison(tmp_path, per_row_checked):
    first, _, ops1, _, history1 = sync_once(tmp_path, "r1", world())
    assert sum(per_row_checked) == 5  # the first sync checks every row
    assert first.total("inserted") == 5
    per_row_checked.clear()

    second, diff, ops2, core, history2 = sync_once(tmp_path, "r2", world(), day=2)
    assert per_row_checked == []  # no row reached the per-row checks
    assert {e: rows.len() for e, rows in diff.unchanged.items()} == {"household": 2, "person": 3}
    assert second.total("unchanged") == 5
    assert second.total("inserted") == second.total("updated") == 0
    assert second.counts["person"]["accepted"] == 3
    # every row records that this sync saw it; no version is added
    assert set(core["household"].values()) == set(core["person"].values()) == {"r2"}
    assert history2 == history1 == {H1: 1, H2: 1}
    # the unchanged rows' findings are recorded again, once each, as validation finds them
    assert ops1["finding"] == ops2["finding"] == in_memory(world())["findings"]
    assert ("household", H2, "member_count_mismatch") in ops2["finding"]
    assert ops2["reject"] == []


def test_a_changed_row_is_updated_with_a_new_version(tmp_path, per_row_checked):
    sync_once(tmp_path, "r1", world())
    per_row_checked.clear()
    changed = world(**{H1: {"income_per_capita": 9000.0}})
    result, _, _, core, history = sync_once(tmp_path, "r2", changed, day=2)
    assert per_row_checked == [1]  # only the changed household was checked row by row
    counts = result.counts["household"]
    assert (counts["inserted"], counts["updated"], counts["unchanged"]) == (0, 1, 1)
    assert result.counts["person"]["unchanged"] == 3
    assert history == {H1: 2, H2: 1}
    assert core["household"] == {H1: "r2", H2: "r2"}


def test_an_unchanged_household_is_still_rejected_when_a_member_changes(tmp_path, per_row_checked):
    """H1's row is byte for byte what core holds, but its spouse now says "head": the head
    count (a cross-record rule over every member delivered) rejects H1 exactly as validation
    without any diff would, and its unchanged head P11 goes with it (parent_rejected)."""
    sync_once(tmp_path, "r1", world())
    per_row_checked.clear()
    two_heads = world(**{P12: {"relation_to_head": "head", "sex": "male"}})
    result, diff, ops, core, history = sync_once(tmp_path, "r2", two_heads, day=2)

    # H1 and its head P11 are the same as core: they skip the per-row checks ...
    assert diff.unchanged["household"].len() == 2 and diff.unchanged["person"].len() == 2
    assert per_row_checked == [1]  # ... only the changed member is checked row by row
    expected = in_memory(two_heads)
    assert ops["reject"] == expected["rejects"]
    assert ops["finding"] == expected["findings"]
    assert ("household", H1, "head_count") in ops["reject"]
    assert ("person", P11, "parent_rejected") in ops["reject"]
    # the rejected rows were not touched: they keep the first sync's run
    assert core["household"] == {H1: "r1", H2: "r2"}
    assert core["person"] == {P11: "r1", P12: "r1", P21: "r2"}
    assert result.counts["household"]["rejected"] == 1
    assert result.counts["household"]["unchanged"] == 1
    assert history == {H1: 1, H2: 1}


def test_a_key_delivered_twice_keeps_the_newest_even_when_the_older_copy_is_unchanged(
    tmp_path, per_row_checked
):
    """A record that changed while the source was paging comes twice: the copy identical to
    core (older) and the changed one (newer). The newer wins, as without the diff."""
    first = world()
    for row in first["household"]:
        row["source_updated_at"] = datetime(2016, 7, 1, 8, tzinfo=UTC)
    sync_once(tmp_path, "r1", first)
    per_row_checked.clear()
    again = world()
    for row in again["household"]:
        row["source_updated_at"] = datetime(2016, 7, 1, 8, tzinfo=UTC)
    newer = {**again["household"][0], "income_per_capita": 9000.0}
    newer["source_updated_at"] = datetime(2016, 7, 2, 8, tzinfo=UTC)
    again["household"].append(newer)  # H1 twice: unchanged copy first, changed copy later
    result, _, _, _, history = sync_once(tmp_path, "r2", again, day=3)

    counts = result.counts["household"]
    assert (counts["fetched"], counts["updated"], counts["unchanged"]) == (3, 1, 1)
    assert per_row_checked == [1]  # only the changed copy
    with warehouse.connect(tmp_path / "hub.duckdb") as con:
        income = con.execute(
            "SELECT income_per_capita FROM core.household WHERE household_no = ?", [H1]
        ).fetchone()[0]
    assert float(income) == 9000.0
    assert history == {H1: 2, H2: 1}
