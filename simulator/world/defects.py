"""Defect injection: a table of defects, one small entry per defect, and the steps that inject
them into a freshly generated county and write the truth list.

Each defective record carries one defect that triggers exactly its rule: defects go to records
of otherwise clean households, and every change keeps the other rules true (e.g. a flipped sex
digit gets a fresh unique sequence number and checksum).

Every entry of ``DEFECTS`` declares what it records in the truth: a row ``(entity, source_key,
rule, level)`` for each record that carries it (``level`` says whether the hub must reject the
record, flag it as a finding, or resolve a conflict). A household defect of level ``reject``
also records ``parent_rejected`` for everything hanging off the household (members, measures,
loans and pairs; on a workbook platform only the members).

The order of each entity's table is the order in which records are picked for the defects: a
defect with a precondition (``eligible``) is picked before the unconditional ones, so the few
records that qualify are not taken by another defect first. The draws are counter-based (a pure
function of a stream name and a row index), so the order in which expressions are built does
not change them; the picking order does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import polars as pl

from seeds.registry import County
from simulator import idcards
from simulator.divisions import round_half_up
from simulator.names import weighted_choice as choice
from simulator.world.base import GENDERED_SWAP, Rng, poverty_line

if TYPE_CHECKING:
    from simulator.world.model import World

Exprs = dict[str, "pl.Expr | bool | None"]  # column -> new value


@dataclass
class Injection:
    """One county's injection in progress: its frames, the records picked so far (``carried``
    on households and persons) and the truth rows collected."""

    world: World
    county: County
    rng: Rng
    kinds: dict[str, tuple[str, ...]]
    frames: dict[str, pl.DataFrame]
    hh: pl.DataFrame
    persons: pl.DataFrame
    truth: list[pl.DataFrame] = field(default_factory=list)

    def count(self, rule: str, entity: str, n: int) -> int:
        """How many of ``n`` records of ``entity`` get the defect (the rate is shared out
        evenly over the entity's defects unless a rate is set for the rule)."""
        w = self.world
        rate = w.defect_rates.get(rule, w.defect_rate / len(self.kinds[entity]))
        return max(0, round_half_up(rate * n))


@dataclass(frozen=True)
class Defect:
    """One defect of one entity.

    ``eligible``: which records may carry it (else any record of the pool). ``change``: the new
    column values of the records that carry it. ``members``: for a household defect, the new
    values of its members' columns. ``new_id``: the address code and sex of a fresh ID number
    (assigned to all such records at once). ``pick``: a picker of its own (pairs of records,
    records of another entity). ``after``: a change to the frames once all defects are set.
    """

    entity: str
    level: str  # reject | finding | conflict
    records: str  # what the defect records in the truth, in words
    eligible: Callable[[Injection], pl.Expr] | None = None
    change: Callable[[Injection], Exprs] | None = None
    members: Callable[[Injection], Exprs] | None = None
    new_id: Callable[[Injection], Exprs] | None = None
    pick: Callable[[Injection], None] | None = None
    after: Callable[[Injection], None] | None = None
    cap: int | None = None


carried = pl.col("_kind")  # the defect a household or person carries ("donor": lends its ID)
household_carries = pl.col("_hkind")  # the defect of a person's household
#: Persons who may carry a defect: in a household without one, never the head, never 特困.
POOL = (
    carried.is_null()
    & household_carries.is_null()
    & (pl.col("relation_to_head") != "head")
    & (pl.col("_attr") != "tekun")
)


def _exited(_: Injection) -> pl.Expr:
    return pl.col("poverty_status") == "exited"


def _ill_cause() -> pl.Expr:
    return (pl.col("main_cause") == "illness") | pl.col("other_causes").list.contains("illness")


# ---------------------------------------------------------------------------- households
def _tekun_with_able_member(inj: Injection) -> pl.Expr:
    able = inj.persons.filter(
        (pl.col("_age").is_between(18, 57)) & pl.col("_age_now").is_between(18, 57)
    )["household_no"].unique()
    tekun = pl.col("poverty_attribute") == "tekun"
    return tekun & ~_ill_cause() & pl.col("household_no").is_in(able.implode())


def _first_able_member_fit_for_work(_: Injection) -> Exprs:
    able_member = (
        (household_carries == "tekun_able_bodied_member")
        & pl.col("_age").is_between(18, 57)
        & pl.col("_age_now").is_between(18, 57)
    )
    first_able = able_member & (
        pl.col("person_no") == pl.col("person_no").filter(able_member).min().over("household_no")
    )
    return {
        "health": pl.when(first_able)
        .then(pl.concat_list(pl.lit("healthy")))
        .otherwise(pl.col("health")),
        "labor_skill": pl.when(first_able)
        .then(pl.lit("ordinary"))
        .otherwise(pl.col("labor_skill")),
    }


def _nobody_ill(_: Injection) -> Exprs:
    return {
        "health": pl.when(pl.col("health").list.contains("disabled"))
        .then(pl.concat_list(pl.lit("disabled")))
        .otherwise(pl.concat_list(pl.lit("healthy")))
    }


def _second_head_or_none(_: Injection) -> Exprs:
    seq = pl.col("person_no").str.slice(16, 2)
    return {
        "relation_to_head": pl.when((pl.col("_hsize") >= 2) & (seq == "02"))
        .then(pl.lit("head"))
        .when(pl.col("_hsize") < 2)
        .then(pl.lit("other"))
        .otherwise(pl.col("relation_to_head"))
    }


def _unknown_cause(inj: Injection) -> Exprs:
    causes = ["因病返贫", "缺发展资金", "因房致贫", "其它原因"]
    return {
        "main_cause": pl.lit("!") + choice(inj.rng.u("hh.unk"), causes, [1] * 4, pl.String()),
        "main_cause_label": None,
    }


def _below_the_line(inj: Injection) -> Exprs:
    line = poverty_line(pl.col("exit_year"), inj.world._lines)
    return {"income_per_capita": (line * (0.6 + 0.3 * inj.rng.u("hh.below"))).round(2)}


HOUSEHOLD_DEFECTS: dict[str, Defect] = {
    "tekun_able_bodied_member": Defect(
        "household", "finding", "the 特困 household; its first member of working age is made "
        "healthy and an ordinary worker", eligible=_tekun_with_able_member,
        members=_first_able_member_fit_for_work,
    ),
    "illness_cause_nobody_ill": Defect(
        "household", "finding", "the household registered 因病; no member is ill any more",
        eligible=lambda _: (pl.col("main_cause") == "illness")
        & (pl.col("poverty_attribute") != "tekun"),
        members=_nobody_ill,
    ),
    "exit_before_identified": Defect(
        "household", "reject", "the exited household, identified the year after its exit",
        eligible=_exited, change=lambda _: {"identified_year": pl.col("exit_year") + 1},
    ),
    "exited_without_exit_year": Defect(
        "household", "reject", "the exited household, without its exit year",
        eligible=_exited, change=lambda _: {"exit_year": None},
    ),
    "exit_below_poverty_line": Defect(
        "household", "finding", "the exited household, with an income below its exit year's line",
        eligible=_exited, change=_below_the_line,
    ),
    "exit_unsafe_housing": Defect(
        "household", "finding", "the exited household, in unsafe housing",
        eligible=_exited, change=lambda _: {"housing_safe": False},
    ),
    "exit_unsafe_water": Defect(
        "household", "finding", "the exited household, without safe water",
        eligible=_exited, change=lambda _: {"water_safe": False},
    ),
    "negative_income": Defect(
        "household", "reject", "the household (not exited), with a negative income",
        eligible=lambda inj: ~_exited(inj),
        change=lambda _: {
            "income_per_capita": -(pl.col("income_per_capita").abs() + 100).round(2)
        },
    ),
    "unknown_code": Defect(
        "household", "reject", "the household, with a main cause outside the code table",
        change=_unknown_cause,
    ),
    "head_count": Defect(
        "household", "reject", "the household, with two heads (or none when alone)",
        members=_second_head_or_none,
    ),
    "other_causes_invalid": Defect(
        "household", "reject", "the household, its main cause repeated among the other causes",
        change=lambda _: {
            "other_causes": pl.concat_list(pl.col("main_cause"), pl.col("other_causes"))
        },
    ),
    "member_count_mismatch": Defect(
        "household", "finding", "the household, declaring one member more than it has",
        change=lambda _: {"member_count": pl.col("member_count") + 1},
    ),
}  # fmt: skip


# ---------------------------------------------------------------------------- persons
def _duplicate_ids(inj: Injection) -> None:
    """Pairs of adults of one sex: the later record (the victim) takes the earlier one's (the
    donor's) ID number and birth date."""
    persons = inj.persons
    k = inj.count("duplicate_id_number", "person", persons.height)
    adults = POOL & pl.col("_age").is_between(25, 55) & (pl.col("school_status") == "not_in_school")
    pairs = []
    for sex, k_s in (("male", k // 2), ("female", k - k // 2)):
        c = persons.filter(adults & (pl.col("sex") == sex)).head(2 * k_s)
        c = c.head(c.height - c.height % 2).with_columns(_pair=pl.int_range(pl.len()) // 2)
        pairs.append(c)
    c = pl.concat(pairs) if pairs else persons.head(0)
    c = c.with_columns(_pair=pl.col("_pair") * 2 + (pl.col("sex") == "male").cast(pl.Int64))
    donors = c.filter(pl.col("person_no") == pl.col("person_no").min().over("_pair"))
    victims = c.filter(pl.col("person_no") != pl.col("person_no").min().over("_pair"))
    d = donors.select("_pair", _did="id_number", _dbirth="birth_date", _dts="updated_at")
    v = victims.select("person_no", "_pair").join(d, on="_pair")
    persons = mark(persons, donors["person_no"], "donor")
    persons = mark(persons, victims["person_no"], "duplicate_id_number")
    persons = persons.join(v.drop("_pair"), on="person_no", how="left", maintain_order="left")
    inj.persons = persons.with_columns(
        id_number=pl.coalesce("_did", "id_number"),
        birth_date=pl.coalesce("_dbirth", "birth_date"),
        # The duplicate is the later record.
        updated_at=pl.when(pl.col("_dts").is_not_null())
        .then(pl.max_horizontal("updated_at", pl.col("_dts") + pl.duration(seconds=1)))
        .otherwise(pl.col("updated_at")),
    ).drop("_did", "_dbirth", "_dts")


def _wrong_check_digit(inj: Injection) -> Exprs:
    body = pl.col("id_number").str.slice(0, 17)
    wrong = idcards.wrong_check_digit(body, 1 + (inj.rng.u("p.chk", "_i") * 10).floor())
    return {"id_number": body + wrong}


def _birth_date_off(inj: Injection) -> Exprs:
    days = 1 + (inj.rng.u("p.bd", "_i") * 27).floor()
    return {"birth_date": pl.col("birth_date") - pl.duration(days=days)}


def _unknown_person_code(inj: Injection) -> Exprs:
    """One of three coded columns gets a value outside its code table."""
    unk = inj.rng.u("p.unk", "_i")
    return {
        "education": pl.when(unk < 1 / 3).then(pl.lit("!中专")).otherwise(pl.col("education")),
        "work_status": pl.when(unk.is_between(1 / 3, 2 / 3, closed="left"))
        .then(pl.lit("!外出务工"))
        .otherwise(pl.col("work_status")),
        "labor_skill": pl.when(unk >= 2 / 3)
        .then(pl.lit("!半劳动力"))
        .otherwise(pl.col("labor_skill")),
    }


def _healthy_and_ill(_: Injection) -> Exprs:
    return {
        "health": pl.when(pl.col("health").list.contains("healthy"))
        .then(pl.concat_list(pl.lit("healthy"), pl.lit("chronic")))
        .otherwise(pl.concat_list(pl.lit("healthy"), pl.col("health")))
    }


def _sex_flipped(_: Injection) -> Exprs:
    """Same address code, the other sex: the ID's sex digit disagrees with the record."""
    return {
        "_addr": pl.col("id_number").str.slice(0, 6),
        "_idsex": pl.when(pl.col("sex") == "male").then(pl.lit("female")).otherwise(pl.lit("male")),
    }


def _marry_in_from_outside(inj: Injection) -> Exprs:
    """A marry-in's address code from a neighbouring province, the same sex."""
    provinces = idcards.OTHER_PROVINCES
    return {
        "_addr": choice(inj.rng.u("p.prov", "_i"), provinces, [1] * len(provinces), pl.String()),
        "_idsex": pl.when(pl.col("sex") == "male").then(pl.lit("male")).otherwise(pl.lit("female")),
    }


def _move_orphans(inj: Injection) -> None:
    """The member moves to a household number that does not exist; its own household declares
    one member less, so only orphan_household fires."""
    persons, hh = inj.persons, inj.hh
    orphans = persons.filter(carried == "orphan_household")
    if not orphans.height:
        return
    less = orphans.group_by("household_no").agg(_less=pl.len().cast(pl.Int32))
    inj.hh = (
        hh.join(less, on="household_no", how="left", maintain_order="left")
        .with_columns(member_count=pl.col("member_count") - pl.col("_less").fill_null(0))
        .drop("_less")
    )
    rank = pl.int_range(pl.len()).over(pl.col("household_no").str.slice(0, 12))
    moved = pl.col("household_no").str.slice(0, 12) + (9000 + rank).cast(pl.String)
    orphan_map = orphans.sort("person_no").select("person_no", _new_hh=moved)
    persons = persons.join(orphan_map, on="person_no", how="left", maintain_order="left")
    persons = persons.with_columns(
        household_no=pl.coalesce("_new_hh", "household_no"),
        person_no=pl.when(pl.col("_new_hh").is_not_null())
        .then(pl.col("_new_hh") + "01")
        .otherwise(pl.col("person_no")),
    ).drop("_new_hh")
    inj.persons = persons.with_columns(source_key=pl.col("person_no"))


PERSON_DEFECTS: dict[str, Defect] = {
    "duplicate_id_number": Defect(
        "person", "conflict", "the later of two people sharing an ID number (and birth date)",
        pick=_duplicate_ids,
    ),
    "id_number_outside_shangluo": Defect(
        "person", "finding", "a marry-in whose ID number was issued in another province",
        eligible=lambda _: pl.col("relation_to_head").is_in(
            ["spouse", "daughter_in_law", "son_in_law"]
        ),
        new_id=_marry_in_from_outside,
    ),
    "orphan_household": Defect(
        "person", "reject", "the member, moved to a household number that does not exist",
        eligible=lambda _: (pl.col("health").list.len() == 1)
        & pl.col("health").list.contains("healthy")
        & (pl.col("_hsize") >= 2),
        after=_move_orphans, cap=999,
    ),
    "school_age_implausible": Defect(
        "person", "finding", "a person of 40 to 80 in primary school",
        eligible=lambda _: pl.col("_age").is_between(40, 80),
        change=lambda _: {"school_status": pl.lit("primary")},
    ),
    "relation_sex_inconsistent": Defect(
        "person", "finding", "a son recorded as a daughter's relation (and the like)",
        eligible=lambda _: pl.col("relation_to_head").is_in(list(GENDERED_SWAP)),
        change=lambda _: {"relation_to_head": pl.col("relation_to_head").replace(GENDERED_SWAP)},
    ),
    "id_number_checksum": Defect(
        "person", "reject", "the person, with a wrong check digit", change=_wrong_check_digit
    ),
    "id_number_birth_date": Defect(
        "person", "reject", "the person, whose birth date disagrees with the ID number",
        change=_birth_date_off,
    ),
    "id_number_sex": Defect(
        "person", "reject", "the person, whose ID number says the other sex",
        new_id=_sex_flipped,
    ),
    "id_number_format": Defect(
        "person", "reject", "the person, with a 17-character ID number",
        change=lambda _: {"id_number": pl.col("id_number").str.slice(0, 17)},
    ),
    "id_number_as_number": Defect(
        "person", "reject", "the person, whose ID number the workbook stores as a number",
        change=lambda _: {"render_hint": pl.lit("id_as_number")},
    ),
    "unknown_code": Defect(
        "person", "reject", "the person, with a code outside its table", change=_unknown_person_code
    ),
    "work_months_range": Defect(
        "person", "reject", "the person, working 13 to 24 months a year",
        change=lambda inj: {
            "work_months": 13 + (inj.rng.u("p.wm", "_i") * 12).floor().cast(pl.Int32)
        },
    ),
    "health_exclusive": Defect(
        "person", "reject", "the person, both healthy and ill", change=_healthy_and_ill
    ),
}  # fmt: skip


# ---------------------------------------------------------------------------- other entities
def _cadres_registered_poor(inj: Injection) -> None:
    """Cadres whose ID number (and sex and name) are a clean poor person's, who is marked as
    the lender so that nothing else changes about them."""
    cadres = inj.frames.get("cadre")
    if cadres is None or not cadres.height:
        return
    k = min(inj.count("cadre_registered_poor", "cadre", cadres.height), cadres.height)
    donors = inj.persons.filter(POOL).head(k)
    k = donors.height
    inj.persons = mark(inj.persons, donors["person_no"], "donor")
    cad = cadres.with_columns(_u=inj.rng.u("c.pick", pl.int_range(pl.len()))).sort("_u")
    chosen = (
        cad.head(k)
        .select("cadre_id")
        .with_columns(_did=donors["id_number"], _dsex=donors["sex"], _dname=donors["name"])
    )
    cadres = cadres.join(chosen, on="cadre_id", how="left", maintain_order="left")
    inj.frames["cadre"] = cadres.with_columns(
        id_number=pl.coalesce("_did", "id_number"),
        sex=pl.coalesce("_dsex", "sex"),
        name=pl.coalesce("_dname", "name"),
    ).drop("_did", "_dsex", "_dname")
    inj.truth.append(
        chosen.select(
            entity=pl.lit("cadre"), source_key="cadre_id", rule=pl.lit("cadre_registered_poor")
        )
    )


def _orphan_reference(entity: str, key: str, base: int) -> Callable[[Injection], None]:
    """Records of ``entity`` (of clean households) pointing at a household number that does
    not exist: ``<village><base + n>``."""

    def pick(inj: Injection) -> None:
        clean_hh = inj.hh.filter(pl.col("_flag") == 0)["household_no"]
        df = inj.frames[entity]
        k = inj.count("orphan_household", entity, df.height)
        picked = (
            df.filter(pl.col("household_no").is_in(clean_hh.implode()))
            .with_columns(_u=inj.rng.u(entity + ".pick", pl.int_range(pl.len())))
            .sort("_u")
            .head(k)
            .select(
                key,
                _new_hh=pl.col("household_no").str.slice(0, 12)
                + (base + pl.int_range(pl.len()) % 300).cast(pl.String),
            )
        )
        df = df.join(picked, on=key, how="left", maintain_order="left")
        inj.frames[entity] = df.with_columns(
            household_no=pl.coalesce("_new_hh", "household_no")
        ).drop("_new_hh")
        inj.truth.append(
            picked.select(entity=pl.lit(entity), source_key=key, rule=pl.lit("orphan_household"))
        )

    return pick


#: The defects of each entity, by the rule each one makes fire (in picking order).
DEFECTS: dict[str, dict[str, Defect]] = {
    "household": HOUSEHOLD_DEFECTS,
    "person": PERSON_DEFECTS,
    "cadre": {
        "cadre_registered_poor": Defect(
            "cadre", "finding", "the cadre whose ID number is a registered poor person's",
            pick=_cadres_registered_poor,
        )
    },
    "measure": {
        "orphan_household": Defect(
            "measure", "reject", "the measure, of a household number that does not exist",
            pick=_orphan_reference("measure", "measure_id", 9400),
        )
    },
    "loan": {
        "orphan_household": Defect(
            "loan", "reject", "the loan, of a household number that does not exist",
            pick=_orphan_reference("loan", "loan_id", 9700),
        )
    },
}  # fmt: skip
#: The level of each rule's truth rows (a rule has one level whatever the entity).
LEVELS = {rule: d.level for table in DEFECTS.values() for rule, d in table.items()} | {
    "parent_rejected": "reject"
}
FINDINGS = {rule for rule, level in LEVELS.items() if level == "finding"}
CONFLICTS = {rule for rule, level in LEVELS.items() if level == "conflict"}


def mark(df: pl.DataFrame, keys: pl.Series, kind: str) -> pl.DataFrame:
    return df.with_columns(
        _kind=pl.when(pl.col("person_no").is_in(keys.implode()))
        .then(pl.lit(kind))
        .otherwise(pl.col("_kind"))
    )
