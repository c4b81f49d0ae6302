"""The simulator's world: sizes, determinism, validity of clean data, defects and their truth,
and the clock.

``_fired`` re-implements the rule catalogue of docs/engineering/architecture.md independently
of the world's code, so "clean data triggers no rule and each defect exactly its own" is checked
against the catalogue rather than against the generator's intentions.
"""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from base import paths
from schemas.columns import CODED, ENTITIES, KEYS
from seeds import codes
from seeds.registry import County
from simulator import idcards
from simulator.world import CITY_FIGURES, World

DIVISIONS = paths.DIVISIONS
LINES = {2010: 2300, 2011: 2536, 2012: 2625, 2013: 2736, 2014: 2800, 2015: 2855, 2016: 2952,
         2017: 2952, 2018: 2995, 2019: 3218, 2020: 4000}  # fmt: skip
MALE = ["son", "son_in_law", "grandson", "grandson_ext", "father", "father_in_law",
        "husbands_father", "grandfather", "grandfather_ext"]  # fmt: skip
FEMALE = ["daughter", "daughter_in_law", "granddaughter", "granddaughter_ext", "mother",
          "mother_in_law", "husbands_mother", "grandmother", "grandmother_ext"]  # fmt: skip
BANDS = [(["preschool"], 2, 7), (["primary"], 5, 15), (["grade7", "grade8", "grade9"], 10, 18),
         (["senior1", "senior2", "senior3", "vocational1", "vocational2", "vocational3"], 13, 22),
         (["higher_voc1", "higher_voc2", "higher_voc3", "college"], 16, 35)]  # fmt: skip
FINDING = {
    "id_number_outside_shangluo", "member_count_mismatch", "school_age_implausible",
    "relation_sex_inconsistent", "exit_below_poverty_line", "exit_unsafe_housing",
    "exit_unsafe_water", "illness_cause_nobody_ill", "tekun_able_bodied_member",
    "cadre_registered_poor",
}  # fmt: skip


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=11, scale=0.02, defect_rate=0.05)


def _age(birth: pl.Expr, at: pl.Expr) -> pl.Expr:
    d = at.dt.convert_time_zone("Asia/Shanghai").dt.date()
    before = (d.dt.month() * 100 + d.dt.day()) < (birth.dt.month() * 100 + birth.dt.day())
    return d.dt.year().cast(pl.Int32) - birth.dt.year().cast(pl.Int32) - before.cast(pl.Int32)


def _unknown(df: pl.DataFrame, entity: str) -> pl.Expr:
    bad = pl.lit(False)
    for col, table in CODED.get(entity, {}).items():
        valid = codes.city_codes(table)
        if df.schema[col] == pl.List(pl.String):
            bad = bad | (
                pl.col(col).list.eval(~pl.element().is_in(valid)).list.any().fill_null(False)
            )
        else:
            bad = bad | (pl.col(col).is_not_null() & ~pl.col(col).is_in(valid))
    return bad


def _rows(df: pl.DataFrame, entity: str, cond: pl.Expr, rule: str) -> pl.DataFrame:
    return df.filter(cond.fill_null(False)).select(
        entity=pl.lit(entity), source_key="source_key", rule=pl.lit(rule)
    )


def _fired(w: World, county: County, all_persons: pl.DataFrame) -> pl.DataFrame:
    """(entity, source_key, rule) of every rule the catalogue fires on this county's records."""
    code = county.code
    served = ("household", "person") if county.kind == "workbook" else tuple(ENTITIES)
    f = {e: w.records(code, e) for e in ENTITIES}
    hh, p = f["household"], f["person"]
    villages = f["region"].filter(pl.col("level") == "village")["code"]
    out: list[pl.DataFrame] = []
    # ---- persons
    idn = pl.col("id_number")
    fmt_ok = idn.str.contains(r"^\d{17}[\dX]$")
    id_birth = idn.str.slice(6, 8).str.to_date("%Y%m%d", strict=False)
    members = p.group_by("household_no").agg(
        n=pl.len(),
        heads=(pl.col("relation_to_head") == "head").sum(),
        ill=(
            pl.col("health").list.contains("chronic")
            | pl.col("health").list.contains("serious_illness")
        ).any(),
        able=(
            _age(pl.col("birth_date"), pl.col("updated_at")).is_between(16, 59)
            & pl.col("labor_skill").is_in(["ordinary", "skilled"])
            & pl.col("health").list.contains("healthy")
        ).any(),
    )
    pr = [
        ("unknown_code", _unknown(p, "person")),
        ("id_number_format", ~fmt_ok),
        ("id_number_checksum", fmt_ok & ~idcards.is_valid(idn)),
        (
            "id_number_birth_date",
            fmt_ok & (id_birth.is_null() | (id_birth != pl.col("birth_date"))),
        ),
        (
            "id_number_sex",
            fmt_ok & ((idn.str.slice(16, 1).cast(pl.Int32) % 2 == 1) != (pl.col("sex") == "male")),
        ),
        ("id_number_as_number", pl.col("render_hint") == "id_as_number"),
        ("work_months_range", ~pl.col("work_months").is_between(0, 12)),
        (
            "health_exclusive",
            pl.col("health").list.contains("healthy") & (pl.col("health").list.len() > 1),
        ),
        ("orphan_household", ~pl.col("household_no").is_in(hh["household_no"].implode())),
        ("key_format", pl.col("person_no").str.slice(0, 16) != pl.col("household_no")),
    ]
    if county.kind == "workbook":
        pr = [r for r in pr if r[0] != "orphan_household"]
    for rule, cond in pr:
        out.append(_rows(p, "person", cond, rule))
    # ---- households
    h = hh.join(members, on="household_no", how="left")
    causes = pl.concat_list(pl.col("main_cause"), pl.col("other_causes"))
    line = pl.col("exit_year").replace_strict(LINES, default=None, return_dtype=pl.Float64)
    exited = pl.col("poverty_status") == "exited"
    hr = [
        ("unknown_code", _unknown(hh, "household")),
        ("head_count", pl.col("heads").fill_null(0) != 1),
        ("exit_before_identified", pl.col("exit_year") < pl.col("identified_year")),
        ("exited_without_exit_year", exited & pl.col("exit_year").is_null()),
        (
            "other_causes_invalid",
            (pl.col("other_causes").list.len() > 2)
            | pl.col("other_causes").list.contains(pl.col("main_cause")),
        ),
        ("negative_income", pl.col("income_per_capita") < 0),
        (
            "key_format",
            ~pl.col("household_no").str.contains(r"^\d{16}$")
            | (pl.col("household_no").str.slice(0, 12) != pl.col("village_code")),
        ),
    ]
    if county.kind != "workbook":
        hr.append(("orphan_village", ~pl.col("village_code").is_in(villages.implode())))
    hfind = [
        ("member_count_mismatch", pl.col("member_count") != pl.col("n").fill_null(0)),
        ("exit_below_poverty_line", exited & (pl.col("income_per_capita") < line)),
        ("exit_unsafe_housing", exited & ~pl.col("housing_safe")),
        ("exit_unsafe_water", exited & ~pl.col("water_safe")),
        (
            "illness_cause_nobody_ill",
            causes.list.contains("illness") & ~pl.col("ill").fill_null(False),
        ),
        (
            "tekun_able_bodied_member",
            (pl.col("poverty_attribute") == "tekun") & pl.col("able").fill_null(False),
        ),
    ]
    for rule, cond in hr:
        out.append(_rows(h, "household", cond, rule))
    rejected = pl.concat(out).filter(pl.col("entity") == "household")["source_key"].unique()
    for rule, cond in hfind:
        out.append(
            _rows(h, "household", cond & ~pl.col("household_no").is_in(rejected.implode()), rule)
        )
    # ---- children of households
    for entity in ("measure", "loan", "household_cadre"):
        out.append(
            _rows(
                f[entity],
                entity,
                ~pl.col("household_no").is_in(hh["household_no"].implode()),
                "orphan_household",
            )
        )
    out.append(
        _rows(
            f["household_cadre"],
            "household_cadre",
            ~pl.col("cadre_id").is_in(f["cadre"]["cadre_id"].implode()),
            "orphan_cadre",
        )
    )
    out.append(
        _rows(
            f["project"],
            "project",
            pl.col("village_code").is_not_null()
            & ~pl.col("village_code").is_in(villages.implode()),
            "orphan_village",
        )
    )
    for entity in ("measure", "loan", "project", "cadre"):
        out.append(_rows(f[entity], entity, _unknown(f[entity], entity), "unknown_code"))
    cid = pl.col("id_number")
    out.append(_rows(f["cadre"], "cadre", ~cid.str.contains(r"^\d{17}[\dX]$"), "id_number_format"))
    out.append(
        _rows(
            f["cadre"],
            "cadre",
            cid.str.contains(r"^\d{17}[\dX]$") & ~idcards.is_valid(cid),
            "id_number_checksum",
        )
    )
    for entity in ("person", "measure", "loan", "household_cadre"):
        out.append(
            _rows(
                f[entity],
                entity,
                pl.col("household_no").is_in(rejected.implode()),
                "parent_rejected",
            )
        )
    rej = pl.concat(out)
    rejected_keys = rej.filter(~pl.col("rule").is_in(list(FINDING)))
    # ---- person findings (on accepted rows only) and conflicts
    age = _age(pl.col("birth_date"), pl.col("updated_at"))
    band_bad = pl.lit(False)
    for statuses, lo, hi in BANDS:
        band_bad = band_bad | (pl.col("school_status").is_in(statuses) & ~age.is_between(lo, hi))
    addr = idn.str.slice(0, 6)
    outside = ~addr.str.starts_with("6110") & ~(
        addr.str.starts_with("6125") & (pl.col("birth_date") < date(2001, 1, 1))
    )
    pfind = [
        ("id_number_outside_shangluo", outside),
        ("school_age_implausible", band_bad),
        (
            "relation_sex_inconsistent",
            (pl.col("relation_to_head").is_in(MALE) & (pl.col("sex") != "male"))
            | (pl.col("relation_to_head").is_in(FEMALE) & (pl.col("sex") != "female")),
        ),
    ]
    p_ok = p.filter(
        ~pl.col("source_key").is_in(
            rejected_keys.filter(pl.col("entity") == "person")["source_key"].implode()
        )
    )
    for rule, cond in pfind:
        out.append(_rows(p_ok, "person", cond, rule))
    poor_ids = all_persons["id_number"]
    out.append(
        _rows(
            f["cadre"],
            "cadre",
            pl.col("id_number").is_in(poor_ids.implode()),
            "cadre_registered_poor",
        )
    )
    # duplicate ID numbers city-wide: the later record of each pair is the conflict
    dup = all_persons.filter(pl.col("id_number").is_duplicated()).sort("updated_at", "person_no")
    later = dup.filter(pl.int_range(pl.len()).over("id_number") > 0)
    out.append(
        _rows(
            p.filter(pl.col("person_no").is_in(later["person_no"].implode())),
            "person",
            pl.lit(True),
            "duplicate_id_number",
        )
    )
    fired = pl.concat(out).filter(pl.col("entity").is_in(served)).unique()
    return fired.sort("entity", "source_key", "rule")


def _all_persons(w: World) -> pl.DataFrame:
    return pl.concat([w.records(c.code, "person") for c in w.counties])


def test_clean_world_fires_no_rule_and_references_resolve():
    w = World(seed=3, scale=0.01, defect_rate=0.0)
    everyone = _all_persons(w)
    for c in w.counties:
        assert w.truth(c.code).height == 0
        fired = _fired(w, c, everyone)
        assert fired.height == 0, f"{c.code}: clean data fires {fired.head(10)}"


def test_truth_is_exactly_what_the_rules_fire(world: World):
    everyone = _all_persons(world)
    seen_rules: set[str] = set()
    for c in world.counties:
        truth = world.truth(c.code)
        assert truth["county_code"].unique().to_list() == [c.code]
        fired = _fired(world, c, everyone)
        expected = truth.select("entity", "source_key", "rule").sort("entity", "source_key", "rule")
        missing = expected.join(fired, on=["entity", "source_key", "rule"], how="anti")
        extra = fired.join(expected, on=["entity", "source_key", "rule"], how="anti")
        assert missing.height == 0 and extra.height == 0, (
            f"{c.code} missing {missing} extra {extra}"
        )
        # at most one defect per record, apart from the parent_rejected cascade
        own = truth.filter(pl.col("rule") != "parent_rejected")
        assert own.select("entity", "source_key").is_duplicated().sum() == 0
        levels = dict(truth.select("rule", "level").unique().iter_rows())
        assert all((lv == "finding") == (r in FINDING) for r, lv in levels.items())
        assert levels.get("duplicate_id_number", "conflict") == "conflict"
        seen_rules |= set(truth["rule"])
    # every kind appears somewhere at this rate
    for rule in ("id_number_checksum", "id_number_birth_date", "id_number_sex", "id_number_format",
                 "id_number_as_number", "id_number_outside_shangluo", "unknown_code", "head_count",
                 "exit_before_identified", "exited_without_exit_year", "other_causes_invalid",
                 "negative_income", "work_months_range", "health_exclusive", "orphan_household",
                 "member_count_mismatch", "school_age_implausible", "relation_sex_inconsistent",
                 "exit_below_poverty_line", "exit_unsafe_housing", "exit_unsafe_water",
                 "illness_cause_nobody_ill", "tekun_able_bodied_member", "cadre_registered_poor",
                 "duplicate_id_number", "parent_rejected"):  # fmt: skip
        assert rule in seen_rules, rule


def test_defects_follow_the_platform_kind(world: World):
    by_kind = {c.code: c for c in world.counties}
    for code, c in by_kind.items():
        rules = set(world.truth(code)["rule"])
        entities = set(world.truth(code)["entity"])
        if c.kind == "workbook":
            assert entities <= {"household", "person"}
            assert "id_number_birth_date" not in rules
        if c.version != "xlsx":
            assert "id_number_as_number" not in rules
        if c.kind == "battle" and c.version == "2":
            assert "id_number_birth_date" not in rules
    hinted = world.records("611026", "person").filter(pl.col("render_hint") == "id_as_number")
    assert hinted.height > 0


def test_rule_overrides_and_zero_rates():
    w = World(seed=5, scale=0.01, defect_rate=0.0, defect_rates={"negative_income": 0.1})
    t = w.truth("611021")
    assert set(t["rule"]) <= {"negative_income", "parent_rejected"}
    hh = w.records("611021", "household")
    assert t.filter(pl.col("rule") == "negative_income").height == round(0.1 * hh.height)


def test_exact_city_totals_by_attribute():
    w = World(seed=1, scale=0.03, defect_rate=0.02)
    for attr, (hh, pp) in CITY_FIGURES.items():
        got_h = sum(w.stats(c.code)["by_attribute"][attr]["households"] for c in w.counties)
        got_p = sum(w.stats(c.code)["by_attribute"][attr]["persons"] for c in w.counties)
        assert (got_h, got_p) == (round(hh * 0.03), round(pp * 0.03)), attr
    hh_total = sum(w.stats(c.code)["counts"]["household"] for c in w.counties)
    assert hh_total == sum(round(h * 0.03) for h, _ in CITY_FIGURES.values())


def test_scale_one_allocation_without_generating():
    # The split is computed eagerly; generating records is what is lazy.
    w = World(scale=1.0)
    for attr, (hh, pp) in CITY_FIGURES.items():
        assert sum(w._households[c.code][attr] for c in w.counties) == hh
        assert sum(w._persons[c.code][attr] for c in w.counties) == pp
    assert sum(w._cadres.values()) == 32100 and sum(w._projects.values()) == 2241
    assert sum(w._pairs.values()) == 72800
    assert w._states == {}


def test_extra_county_is_added_on_top():
    extra = County("611099", "虚拟县", "Fictional", "xuni", "battle", "3", 0.05, "")
    seven = World(scale=0.01)._households
    w = World(scale=0.01, counties=(*World(scale=0.01).counties, extra))
    assert {c: w._households[c] for c in seven} == seven
    assert w._households["611099"]["general"] == round(108000 * 0.01 * 0.05)
    p = w.records("611099", "person")
    assert p.height > 0 and p["id_number"].str.starts_with("611099").all()


def test_deterministic():
    a = World(seed=9, scale=0.01)
    b = World(seed=9, scale=0.01)
    for e in ENTITIES:
        assert a.records("611024", e).equals(b.records("611024", e)), e
    assert a.truth("611024").equals(b.truth("611024"))
    c = World(seed=10, scale=0.01)
    assert not a.records("611024", "person").equals(c.records("611024", "person"))


def test_keys_unique_and_ids_unique_city_wide(world: World):
    everyone = []
    for c in world.counties:
        for e, key in KEYS.items():
            df = world.records(c.code, e)
            assert df.select(key).is_duplicated().sum() == 0, (c.code, e)
            assert df["source_key"].n_unique() == df.height
            assert set(df.columns) >= set(ENTITIES[e]) | {
                "source_key",
                "updated_at",
                "visible_at",
                "deleted_at",
            }
            assert [df.schema[k] for k in ENTITIES[e]] == list(ENTITIES[e].values())
        everyone.append(
            world.records(c.code, "person").join(world.truth(c.code), on="source_key", how="anti")
        )
    clean = pl.concat(everyone)
    assert clean["id_number"].n_unique() == clean.height
    assert clean.select(idcards.is_valid(pl.col("id_number")).all()).item()
    cadres = pl.concat([world.records(c.code, "cadre") for c in world.counties])
    assert cadres.select(idcards.is_valid(pl.col("id_number")).all()).item()


def test_realistic_shape():
    w = World(seed=2, scale=0.02, defect_rate=0.0)
    p = w.records("611021", "person")
    hh = w.records("611021", "household")
    assert p["person_no"].str.slice(16, 2).eq("01").sum() == hh.height
    assert (p["relation_to_head"] == "head").sum() == hh.height
    share_exited = (hh["poverty_status"] == "exited").mean()
    assert 0.18 < share_exited < 0.32
    top_cause = hh["main_cause"].value_counts(sort=True)["main_cause"][0]
    assert top_cause == "illness"
    addr = p.filter(pl.col("birth_date") < date(2001, 1, 1))["id_number"].str.slice(0, 6)
    assert (addr == "612522").mean() > 0.7
    young = p.filter(pl.col("birth_date") >= date(2001, 1, 1))["id_number"].str.slice(0, 6)
    assert (young == "611021").all()
    assert p["phone" if "phone" in p.columns else "name"].null_count() == 0
    assert hh["phone"].str.contains(r"^1[3-9]\d{9}$").all()
    poor = w.records("611021", "region").filter(pl.col("is_poor_village"))["code"]
    in_poor = hh["village_code"].is_in(poor.implode()).mean()
    assert 0.6 < in_poor < 0.8


def test_advance_changes_records_within_the_period():
    w = World(seed=4, scale=0.1, defect_rate=0.01)
    code = "611021"
    before_h = w.records(code, "household", include_deleted=True)
    t0 = w.now
    counts = w.advance(days=5)
    t1 = w.now
    assert (t1 - t0).days == 5
    assert counts["corrected"] > 0 and counts["registered"] > 0 and counts["exited"] > 0
    after = w.records(code, "household", include_deleted=True)
    changed = after.join(before_h, on=["source_key", "updated_at"], how="anti")
    assert changed.height > 0
    ts = changed["updated_at"]
    assert ts.min() > t0 and ts.max() <= t1
    deleted = after.filter(pl.col("deleted_at").is_not_null())
    assert deleted.height > 0
    # member counts still match the live members; the rules still hold
    live = w.records(code, "household").join(w.truth(code), on="source_key", how="anti")
    n = w.records(code, "person").group_by("household_no").len()
    j = live.join(n, on="household_no", how="left")
    assert (j["member_count"] == j["len"]).all()
    fired = _fired(w, w.county(code), _all_persons(w))
    truth = w.truth(code).select("entity", "source_key", "rule")
    assert fired.join(truth, on=["entity", "source_key", "rule"], how="anti").height == 0
    assert truth.join(fired, on=["entity", "source_key", "rule"], how="anti").height == 0
    # some bulk-imported writes are not committed yet
    vis = after.filter(pl.col("visible_at") > pl.col("updated_at"))
    assert vis.height > 0 and (vis["visible_at"] - vis["updated_at"]).max().total_seconds() <= 300


def test_advance_is_the_same_in_one_step_or_many_and_for_late_counties():
    a = World(seed=8, scale=0.02)
    b = World(seed=8, scale=0.02)
    a.records("611023", "household")  # generated before the clock moves
    a.advance(days=2)
    for _ in range(4):
        b.advance(minutes=720)  # never generated until after the clock moved
    for e in ("household", "person", "household_cadre"):
        assert (
            a.records("611023", e, include_deleted=True)
            .sort("source_key")
            .equals(b.records("611023", e, include_deleted=True).sort("source_key"))
        ), e
    assert a.truth("611023").equals(b.truth("611023"))


def test_real_divisions_are_the_default():
    w = World(seed=1, scale=0.01)
    region = pl.concat([w.records(c.code, "region") for c in w.counties])
    real = pl.read_csv(DIVISIONS / "villages.csv", schema_overrides={"code": pl.String})
    villages = region.filter(pl.col("level") == "village")
    assert set(villages["code"]) == set(real["code"])
    assert villages["is_poor_village"].sum() == 701
    towns = region.filter(pl.col("level") == "town")
    stat = towns.filter(pl.col("code").str.slice(6, 1).is_in(["4", "5"]))
    assert stat.height > 0 and stat["is_statistical_unit"].all()
    hh = w.records("611025", "household")
    assert hh["village_code"].is_in(villages["code"].implode()).all()
    assert not villages["name"].str.ends_with("委会").any()


def test_synthetic_divisions_follow_nbs_rules():
    w = World(seed=1, scale=0.01, divisions_dir=None)
    region = pl.concat([w.records(c.code, "region") for c in w.counties])
    towns = region.filter(pl.col("level") == "town")
    assert towns.height == 98
    assert region.filter(pl.col("is_poor_village")).height == 701
    t3 = towns["code"].str.slice(6, 3).cast(pl.Int32)
    kind_ok = (
        ((t3 < 100) & towns["name"].str.ends_with("街道"))
        | ((t3 >= 100) & (t3 < 200) & towns["name"].str.ends_with("镇"))
        | ((t3 >= 200) & towns["name"].str.ends_with("乡"))
    )
    assert kind_ok.all()
    villages = region.filter(pl.col("level") == "village")
    v3 = villages["code"].str.slice(9, 3).cast(pl.Int32)
    assert (
        ((v3 < 200) & villages["name"].str.ends_with("社区"))
        | ((v3 >= 200) & villages["name"].str.ends_with("村"))
    ).all()
    assert 1200 < villages.height < 1400


def test_repository_never_reads_outside_itself():
    """A user's clone has no sibling folders: no tracked file may point at the sibling shared folder."""
    import subprocess

    root = paths.REPO
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.split()
    needle = "../" + "shared"
    offenders = [
        f
        for f in tracked
        if f.endswith((".py", ".sh", ".toml", ".yaml", ".cfg", "Makefile", "run"))
        and needle in (root / f).read_text(encoding="utf-8", errors="ignore")
    ]
    assert offenders == []
