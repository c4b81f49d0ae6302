"""The registry drives everything (DESIGN decision 1, README "Adding a county"): one extra row
plus its environment variables gives a county its own Dagster group, jobs and schedule entries,
and a sync lands it; a county that moves from workbook uploads to a battle platform keeps its
keys and history.

Dagster definitions are built from the registry when ``pipelines.definitions`` is imported, so
a run under another registry happens in a fresh interpreter (``HUB_REGISTRY`` set), never by
reloading modules in this one."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from base.paths import REPO, SEEDS
from schemas.columns import ENTITIES
from seeds.registry import county
from tests.conftest import TEST_SCALE
from tests.e2e.helpers import live, sync_county

pytestmark = pytest.mark.e2e
ZHASHUI = county("zhashui")
EIGHTH = "611099,新城县,Xincheng County,xincheng,battle,3,0.05,team:xincheng-fpb"


def _registry(tmp_path: Path, edit=lambda text: text, extra: str | None = None) -> Path:
    text = edit((SEEDS / "counties.csv").read_text(encoding="utf-8"))
    if extra:
        text = text.rstrip("\n") + "\n" + extra + "\n"
    path = tmp_path / "counties.csv"
    path.write_text(text, encoding="utf-8")
    return path


def _run(script: str, registry: Path, *args: str) -> dict:
    """Run ``script`` in a fresh interpreter under ``registry``; it prints ``RESULT <json>``."""
    env = {
        **os.environ,
        "HUB_REGISTRY": str(registry),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-4000:]
    return json.loads(lines[-1].removeprefix("RESULT "))


# --- an eighth county from one registry row ----------------------------------------------------

EIGHTH_COUNTY = r"""
import json, os, sys
import dagster as dg
import polars as pl
from simulator import embedded
from seeds.registry import county
from pipelines.defs.keys import entities_of

new = county(sys.argv[1])
# The simulator serves the counties of the registry it is given: here the new one alone.
sim = embedded.start_in_thread(seed=7, scale=float(sys.argv[2]), counties=[new])
os.environ.update(sim.env())  # HUB_XINCHENG_URL/_KEY/_SECRET

from pipelines.definitions import defs
from pipelines.defs.city import MARTS
from tests.e2e.helpers import failure_messages, live, simulator_keys, sync_county, truth, warehouse_keys

graph = defs.resolve_asset_graph()
out = {
    "group": sorted("/".join(k.path) for k in graph.get_all_asset_keys()
                    if graph.get(k).group_name == new.slug),
    "marts_depend_on_it": dg.AssetKey([new.slug, "household"]) in graph.get(MARTS).parent_keys,
    "job": defs.resolve_job_def(f"sync_{new.slug}").name,
}
for name in ("hourly_incremental_api_counties", "nightly_full_all_counties"):
    tick = defs.resolve_schedule_def(name).evaluate_tick(dg.build_schedule_context())
    out[name] = f"{new.slug}__landing" in tick.run_requests[0].run_config["ops"]
result = sync_county(new, "full", raise_on_error=False)
out["success"], out["errors"] = result.success, failure_messages(result)
t = truth(sim, new)
out["entities"] = {}
with live() as con:
    for e in entities_of(new):
        rejected = set(t.filter((pl.col("entity") == e) & (pl.col("level") == "reject"))["source_key"])
        expected = simulator_keys(sim, new, e) - rejected
        got = warehouse_keys(con, new, e)
        out["entities"][e] = {"expected": len(expected), "equal": got == expected}
    out["platforms"] = [r[0] for r in con.execute(
        "SELECT DISTINCT source_platform FROM core.household WHERE county_code = ?", [new.code]
    ).fetchall()]
sim.stop()
print("RESULT " + json.dumps(out))
"""


def test_an_eighth_county_from_one_registry_row_syncs_into_its_own_group(tmp_path, hub_home):
    registry = _registry(tmp_path, extra=EIGHTH)
    out = _run(EIGHTH_COUNTY, registry, "xincheng", str(TEST_SCALE))

    assert "xincheng/landing" in out["group"] and "xincheng/household" in out["group"]
    assert len(out["group"]) == 9  # landing + the eight battle entities
    assert out["marts_depend_on_it"] and out["job"] == "sync_xincheng"
    assert out["hourly_incremental_api_counties"] and out["nightly_full_all_counties"]
    assert out["success"], out["errors"]
    assert out["entities"]["household"]["expected"] > 0
    assert {e: v["equal"] for e, v in out["entities"].items()} == dict.fromkeys(
        out["entities"], True
    )
    assert out["platforms"] == ["battle"]


# --- 柞水 moves from workbook uploads to a battle platform --------------------------------------

RESYNC = r"""
import json, sys
from seeds.registry import county
from tests.e2e.helpers import failure_messages, sync_county

moved = county(sys.argv[1])
result = sync_county(moved, "full", raise_on_error=False)
print("RESULT " + json.dumps({"kind": moved.kind, "success": result.success,
                              "errors": failure_messages(result)}))
"""


def _state(con, entity: str, key: str) -> pl.DataFrame:
    """The county's rows: contract columns, bookkeeping, and how many history versions each has."""
    columns = ", ".join(f"c.{c}" for c in ENTITIES[entity])
    return con.execute(
        f"""SELECT c.{key} AS key, {columns}, c.row_hash, c.first_seen_at, c.source_platform,
                   c.deleted_at IS NULL AS is_live,
                   (SELECT count(*) FROM core.{entity}_history h WHERE h.{key} = c.{key}) AS versions
            FROM core.{entity} c WHERE c.county_code = ?""",
        [ZHASHUI.code],
    ).pl()


def _changed_columns(old: pl.DataFrame, new: pl.DataFrame, entity: str) -> set[str]:
    both = old.join(new, on="key", suffix="_new")
    return {
        c
        for c in ENTITIES[entity]
        if c != "key" and both.filter(pl.col(c).ne_missing(pl.col(f"{c}_new"))).height
    }


def test_a_county_moving_from_workbook_to_battle_keeps_keys_and_history(
    simulator, hub_home, tmp_path
):
    from simulator.platforms.battle import BattlePlatform

    assert sync_county(ZHASHUI, "full").success
    keys = {"household": "household_no", "person": "person_no"}
    with live() as con:
        before = {e: _state(con, e, k) for e, k in keys.items()}

    # Same world, same URL: the county now answers as a battle platform (v3).
    battle = dataclasses.replace(ZHASHUI, kind="battle", version="3")
    simulator.sim.platforms[ZHASHUI.slug] = BattlePlatform(simulator.sim, battle)
    registry = _registry(
        tmp_path, edit=lambda text: text.replace("zhashui,workbook,xlsx", "zhashui,battle,3")
    )
    out = _run(RESYNC, registry, ZHASHUI.slug)
    assert out["kind"] == "battle" and out["success"], out["errors"]

    with live() as con:
        after = {e: _state(con, e, k) for e, k in keys.items()}
        # The workbook had no region list (regions came from the file's names); the battle
        # platform lists them all, so every region row is rewritten or added. Regions have no
        # history, so nothing is versioned for them.
        regions = con.execute(
            "SELECT DISTINCT source_platform FROM core.region WHERE county_code = ?", [ZHASHUI.code]
        ).fetchall()
    assert regions == [("battle",)]

    for entity in keys:
        old, new = before[entity], after[entity]
        both = old.join(new, on="key", how="left", suffix="_new")
        # Keys stay: every record the workbook delivered is still there and live.
        assert both["is_live_new"].fill_null(False).all(), entity
        # first_seen_at is when the warehouse first received the record: unchanged.
        assert (both["first_seen_at"] == both["first_seen_at_new"]).all(), entity
        # A record whose contract columns are unchanged gets no new version; a changed one
        # exactly one.
        same = both.filter(pl.col("row_hash") == pl.col("row_hash_new"))
        assert (same["versions_new"] == same["versions"]).all(), entity
        changed = both.filter(pl.col("row_hash") != pl.col("row_hash_new"))
        assert (changed["versions_new"] == changed["versions"] + 1).all(), entity
        assert changed.height < old.height / 5, f"{entity}: most records should be unchanged"

    # What does change, and why:
    # - the register export has no 返贫年度 column; the battle platform sends fpnf, so a relapsed
    #   household gains its relapse_year (one new version);
    # - battle clerks typed some ID numbers as the 15-digit legacy number: the same person and
    #   the same (upgraded) id_number, now flagged id_upgraded.
    assert _changed_columns(before["household"], after["household"], "household") == {
        "relapse_year"
    }
    assert _changed_columns(before["person"], after["person"], "person") == {"id_upgraded"}

    # Every row now comes from the battle platform.
    stale = {e: after[e].filter(pl.col("source_platform") != "battle").height for e in keys}
    assert not any(stale.values()), f"rows still attributed to the workbook platform: {stale}"
