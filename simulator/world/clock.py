"""The clock: a county's records change as simulated time passes. Each day's changes are
planned when the clock enters the day (``day_plan``) and applied as the clock passes each
change's timestamp, so a reader between two moments sees exactly what had committed."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import polars as pl

import simulator.world.day_plan as day_plan
from simulator.world.base import DAILY, CountyState, Plan, ts_lit

if TYPE_CHECKING:
    from simulator.world.model import World


def catch_up(world: World, st: CountyState) -> dict[str, int]:
    """Apply the county's changes from its own clock up to ``now``, day by day. A day's
    changes are planned from the state at the start of that day (seeded by the day number),
    so advancing in one step or in many gives the same records."""
    counts = dict.fromkeys(DAILY, 0)
    target = world.now
    one_day = timedelta(days=1)
    while st.clock < target:
        d = (st.clock - world.start) // one_day
        day_start = world.start + d * one_day
        day_end = day_start + one_day
        if st.plan is None or st.plan.day != d:
            st.plan = day_plan.plan_day(world, st, d, day_start, day_end)
        seg_end = min(target, day_end)
        for k, v in apply(st, st.plan, st.clock, seg_end).items():
            counts[k] = counts.get(k, 0) + v
        st.clock = seg_end
        if seg_end == day_end:
            st.plan = None
    return counts


def apply(st: CountyState, plan: Plan, lo: datetime, hi: datetime) -> dict[str, int]:
    lo_e, hi_e = ts_lit(lo), ts_lit(hi)

    def window(c: str) -> pl.Expr:
        return (pl.col(c) > lo_e) & (pl.col(c) <= hi_e)

    for entity, up in plan.upserts.items():
        rows = up.filter(window("updated_at"))
        if rows.height:
            df = st.frames[entity]
            keep = df.filter(~pl.col("source_key").is_in(rows["source_key"].implode()))
            st.frames[entity] = pl.concat([keep, rows.select(df.columns).cast(dict(df.schema))])
    gone = []
    for entity, dl in plan.deletes.items():
        rows = dl.filter(window("ts")).select("source_key", _del="ts")
        if not rows.height:
            continue
        df = st.frames[entity].join(rows, on="source_key", how="left", maintain_order="left")
        hit = pl.col("_del").is_not_null() & pl.col("deleted_at").is_null()
        st.frames[entity] = df.with_columns(
            deleted_at=pl.when(hit).then(pl.col("_del")).otherwise(pl.col("deleted_at")),
            updated_at=pl.when(hit).then(pl.col("_del")).otherwise(pl.col("updated_at")),
            visible_at=pl.when(hit).then(pl.col("_del")).otherwise(pl.col("visible_at")),
        ).drop("_del")
        gone.append(rows.select(entity=pl.lit(entity), source_key="source_key"))
    if gone:
        st.truth = st.truth.join(
            pl.concat(gone), on=["entity", "source_key"], how="anti", maintain_order="left"
        )
    ev = plan.events.filter(window("ts")).group_by("kind").len()
    return dict(ev.iter_rows())
