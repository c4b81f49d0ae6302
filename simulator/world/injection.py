"""Defect injection, the steps: pick the records for each defect of the table (``defects``),
apply the changes, give fresh ID numbers, and collect the truth list."""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from seeds.registry import County
from simulator import idcards
from simulator.world.base import TRUTH_SCHEMA, Rng, age_years, ts_lit
from simulator.world.defects import (
    CONFLICTS,
    DEFECTS,
    FINDINGS,
    HOUSEHOLD_DEFECTS,
    PERSON_DEFECTS,
    POOL,
    Injection,
    carried,
    household_carries,
    mark,
)

if TYPE_CHECKING:
    from simulator.world.model import World


def kinds_for(county: County) -> dict[str, tuple[str, ...]]:
    """Defect kinds each entity of this county can carry, by what its platform sends."""
    workbook = county.kind == "workbook"
    sends_birth_date = county.kind == "bigdata" or (
        county.kind == "battle" and county.version == "3"
    )
    person = tuple(
        k
        for k in PERSON_DEFECTS
        if not (
            (k == "id_number_birth_date" and not sends_birth_date)
            # workbooks carry no sex column: sex is read from the ID, so it cannot disagree
            or (k == "id_number_sex" and workbook)
            or (k == "id_number_as_number" and not (workbook and county.version == "xlsx"))
            # A member whose household number exists nowhere cannot be attributed to a
            # poverty attribute, so the report's persons-by-attribute figures could never
            # reconcile; orphan references are injected on measures and loans instead.
            or k == "orphan_household"
        )
    )
    out: dict[str, tuple[str, ...]] = {"household": tuple(HOUSEHOLD_DEFECTS), "person": person}
    if not workbook:
        for entity in ("measure", "loan", "cadre"):
            out[entity] = tuple(DEFECTS[entity])
    return out


def inject(world: World, county: County, frames: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Inject the county's defects into ``frames`` (in place) and return the truth list."""
    hh_schema, p_schema = dict(frames["household"].schema), dict(frames["person"].schema)
    inj = _start(world, county, frames)
    _pick_households(inj)
    _change(inj, "household", "hh", "change", carried)
    inj.hh = inj.hh.with_columns(
        _flag=pl.when(carried.is_not_null()).then(pl.lit(1, pl.Int8)).otherwise(pl.col("_flag"))
    )
    inj.persons = inj.persons.join(
        inj.hh.select("household_no", _hkind="_kind", _hsize="member_count"),
        on="household_no",
        how="left",
        maintain_order="left",
    )
    _change(inj, "household", "persons", "members", household_carries)
    _pick_persons(inj)
    _pick_other(inj, "cadre")
    _change(inj, "person", "persons", "change", carried)
    _new_ids(inj)
    for defect in PERSON_DEFECTS.values():
        if defect.after is not None:
            defect.after(inj)
    _flag_touched_households(inj)
    inj.truth.append(
        inj.hh.filter(carried.is_not_null()).select(
            entity=pl.lit("household"), source_key="household_no", rule="_kind"
        )
    )
    inj.truth.append(
        inj.persons.filter(carried.is_not_null() & (carried != "donor")).select(
            entity=pl.lit("person"), source_key="person_no", rule="_kind"
        )
    )
    _pick_other(inj, "measure")
    _pick_other(inj, "loan")
    _parent_rejected(inj)
    frames["household"] = inj.hh.sort("household_no").select(list(hh_schema)).cast(hh_schema)
    frames["person"] = inj.persons.sort("person_no").select(list(p_schema)).cast(p_schema)
    return _truth(inj)


def _start(world: World, county: County, frames: dict[str, pl.DataFrame]) -> Injection:
    """Households and persons in a random order of the county's own stream, with ``carried``."""
    rng = Rng(world.seed, county.code, "defects")
    hh = frames["household"].with_columns(
        _i=pl.int_range(pl.len(), dtype=pl.UInt64), _kind=pl.lit(None, pl.String)
    )
    persons = frames["person"].with_columns(
        _i=pl.int_range(pl.len(), dtype=pl.UInt64),
        _kind=pl.lit(None, pl.String),
        _age=age_years(pl.col("birth_date"), pl.col("updated_at")),
        _age_now=age_years(pl.col("birth_date"), ts_lit(world.start)),
    )
    hh = hh.with_columns(_u=rng.u("hh.pick")).sort("_u")
    persons = persons.with_columns(_u=rng.u("p.pick")).sort("_u")
    return Injection(world, county, rng, kinds_for(county), frames, hh, persons)


def _pick_households(inj: Injection) -> None:
    n_hh = inj.hh.height
    eligible = {
        rule: d.eligible(inj) for rule, d in HOUSEHOLD_DEFECTS.items() if d.eligible is not None
    }
    for rule in HOUSEHOLD_DEFECTS:
        if rule not in inj.kinds["household"]:
            continue
        k = inj.count(rule, "household", n_hh)
        if not k:
            continue
        cond = carried.is_null() & eligible.get(rule, pl.lit(True))
        picked = inj.hh.filter(cond).head(k)["household_no"]
        inj.hh = inj.hh.with_columns(
            _kind=pl.when(pl.col("household_no").is_in(picked.implode()))
            .then(pl.lit(rule))
            .otherwise(carried)
        )


def _pick_persons(inj: Injection) -> None:
    """Persons only in households without a defect, never the head, never 特困."""
    n_p = inj.persons.height
    for rule, d in PERSON_DEFECTS.items():
        if rule not in inj.kinds["person"]:
            continue
        if d.pick is not None:
            d.pick(inj)
            continue
        k = inj.count(rule, "person", n_p)
        if d.cap is not None:
            k = min(k, d.cap)
        if not k:
            continue
        cond = POOL & (d.eligible(inj) if d.eligible is not None else pl.lit(True))
        picked = inj.persons.filter(cond).head(k)["person_no"]
        inj.persons = mark(inj.persons, picked, rule)


def _pick_other(inj: Injection, entity: str) -> None:
    for rule, d in DEFECTS[entity].items():
        if rule in inj.kinds.get(entity, ()) and d.pick is not None:
            d.pick(inj)


def _change(inj: Injection, entity: str, frame: str, what: str, kind: pl.Expr) -> None:
    """Apply each ``entity`` defect's ``change`` (or ``members``) to the records of ``frame``
    (``hh`` or ``persons``) whose ``kind`` column names it. A record carries one defect, so
    applying them one after the other is applying them at once."""
    df = getattr(inj, frame)
    for rule, d in DEFECTS[entity].items():
        fn = getattr(d, what)
        if fn is None:
            continue
        new = fn(inj)
        df = df.with_columns(
            **{c: pl.when(kind == rule).then(v).otherwise(pl.col(c)) for c, v in new.items()}
        )
    setattr(inj, frame, df)


def _new_ids(inj: Injection) -> None:
    """Fresh ID numbers (new sequence numbers, valid checksums) for the defects that need one,
    assigned in one go so that they are unique among themselves and the county's."""
    rules = [rule for rule, d in PERSON_DEFECTS.items() if d.new_id is not None]
    rewrite = inj.persons.filter(carried.is_in(rules))
    if not rewrite.height:
        return
    new = {rule: PERSON_DEFECTS[rule].new_id(inj) for rule in rules}  # type: ignore[misc]
    rewrite = rewrite.select(
        "person_no",
        birth_date=pl.col("id_number").str.slice(6, 8).str.to_date("%Y%m%d"),
        _addr=_by_rule({rule: v["_addr"] for rule, v in new.items()}),
        _idsex=_by_rule({rule: v["_idsex"] for rule, v in new.items()}),
    )
    rewrite = idcards.assign_ids(
        rewrite, idcards.SEQ_DEFECT, inj.persons["id_number"], sex="_idsex", out="_new_id"
    ).select("person_no", "_new_id")
    persons = inj.persons.join(rewrite, on="person_no", how="left", maintain_order="left")
    inj.persons = persons.with_columns(id_number=pl.coalesce("_new_id", "id_number")).drop(
        "_new_id"
    )


def _flag_touched_households(inj: Injection) -> None:
    """Households whose members carry defects (or lend their ID to one) are left alone by the
    clock's everyday changes; lenders' households are also never deleted."""
    touched = (
        inj.persons.filter(carried.is_not_null())
        .select(
            pl.col("person_no").str.slice(0, 16).alias("household_no"),
            _f=pl.when(carried == "donor").then(pl.lit(2, pl.Int8)).otherwise(pl.lit(1, pl.Int8)),
        )
        .group_by("household_no")
        .agg(pl.col("_f").max())
    )
    inj.hh = (
        inj.hh.join(touched, on="household_no", how="left", maintain_order="left")
        .with_columns(_flag=pl.max_horizontal("_flag", pl.col("_f").fill_null(0)).cast(pl.Int8))
        .drop("_f")
    )


def _parent_rejected(inj: Injection) -> None:
    """Everything that hangs off a rejected household."""
    rejected = inj.hh.filter(carried.is_not_null() & ~carried.is_in(list(FINDINGS)))["household_no"]
    for entity in ("person", "measure", "loan", "household_cadre"):
        if entity != "person" and inj.county.kind == "workbook":
            continue  # workbooks deliver households and members only
        df = inj.persons if entity == "person" else inj.frames[entity]
        inj.truth.append(
            df.filter(pl.col("household_no").is_in(rejected.implode())).select(
                entity=pl.lit(entity), source_key="source_key", rule=pl.lit("parent_rejected")
            )
        )


def _truth(inj: Injection) -> pl.DataFrame:
    rule = pl.col("rule")
    truth = pl.concat(inj.truth).with_columns(
        county_code=pl.lit(inj.county.code),
        level=pl.when(rule.is_in(list(FINDINGS)))
        .then(pl.lit("finding"))
        .when(rule.is_in(list(CONFLICTS)))
        .then(pl.lit("conflict"))
        .otherwise(pl.lit("reject")),
    )
    return truth.select(list(TRUTH_SCHEMA)).cast(TRUTH_SCHEMA).sort("entity", "source_key", "rule")


def _by_rule(values: dict[str, pl.Expr]) -> pl.Expr:
    """The value for the defect each record carries."""
    (first, value), *rest = values.items()
    expr = pl.when(carried == first).then(value)
    for rule, v in rest:
        expr = expr.when(carried == rule).then(v)
    return expr
