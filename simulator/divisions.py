"""Administrative divisions for the simulated counties: the region frame of each county.

By default the real division list (``seeds/divisions``, copied from the NBS list with its
source) gives the codes and names, and the 701 poor villages are picked among its real 村; a
county the list does not cover (or ``divisions_dir=None``) gets synthetic towns and villages
that follow the NBS code rules (town = county +
3 digits: 001-099 街道, 100-199 镇, 200-399 乡; village = town + 3 digits: 001-199 社区,
200-399 村).
The city figures: 7 counties, 98 towns and 701 poor villages (mid-2016 report).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from seeds import DIVISIONS
from seeds.divisions import short_name

CITY_CODE = "611000"
POOR_VILLAGES_CITY = 701
VILLAGES_CITY = 1300  # synthetic mode: poor + non-poor villages over the seven counties

#: Household shares of the seven real counties (also used for villages and other entities).
COUNTY_SHARES = {
    "611002": 0.17,
    "611021": 0.19,
    "611022": 0.13,
    "611023": 0.11,
    "611024": 0.19,
    "611025": 0.13,
    "611026": 0.08,
}
#: Share of a county that is not in the table (added on top of the city totals).
EXTRA_COUNTY_SHARE = 0.05
#: Synthetic towns per county (98 in all, as the city reports).
TOWNS = {
    "611002": 18,
    "611021": 16,
    "611022": 12,
    "611023": 10,
    "611024": 18,
    "611025": 15,
    "611026": 9,
}
EXTRA_COUNTY_TOWNS = 8

_PLACE_CHARS = (
    "东西南北上下前后大小中新老高黄白青红石金柳杨桃李枣花龙凤马牛羊鹤峪沟河川坪岭坡湾塬"
    "庄寨营店铺堡园泉水山岩竹松柏桥关口城坝池塘溪梁峰寺庙台阳明和兴安宁丰乐福寿"
)

REGION_SCHEMA = {
    "code": pl.String(),
    "level": pl.String(),
    "name": pl.String(),
    "parent_code": pl.String(),
    "is_poor_village": pl.Boolean(),
    "poor_village_exit_year": pl.Int32(),
    "is_statistical_unit": pl.Boolean(),
}


def round_half_up(x: float) -> int:
    return int(x + 0.5) if x >= 0 else -int(-x + 0.5)


def share_of(code: str) -> float:
    return COUNTY_SHARES.get(code, EXTRA_COUNTY_SHARE)


def split(total: int, codes: Sequence[str]) -> dict[str, int]:
    """Split ``total`` over the seven real counties by share with exact largest remainders.

    A county outside the share table gets ``round(total * 0.05)`` on top, so the seven still
    add up to ``total`` exactly.
    """
    known = [c for c in codes if c in COUNTY_SHARES]
    weight = sum(COUNTY_SHARES[c] for c in known)
    out: dict[str, int] = {}
    if known:
        quotas = {c: total * COUNTY_SHARES[c] / weight for c in known}
        out = {c: int(q) for c, q in quotas.items()}
        rest = total - sum(out.values())
        # Largest fractional part first; ties go to the county listed first.
        order = sorted(known, key=lambda c: (-(quotas[c] - out[c]), known.index(c)))
        for c in order[:rest]:
            out[c] += 1
    for c in codes:
        if c not in out:
            out[c] = round_half_up(total * EXTRA_COUNTY_SHARE)
    return out


def _rng(seed: int, *parts: object) -> random.Random:
    digest = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "little"))


def _unique_names(rnd: random.Random, n: int, suffix: str, taken: set[str]) -> list[str]:
    names = []
    while len(names) < n:
        name = rnd.choice(_PLACE_CHARS) + rnd.choice(_PLACE_CHARS)
        if name[0] == name[1] or name + suffix in taken:
            continue
        taken.add(name + suffix)
        names.append(name + suffix)
    return names


def _county_row(code: str, name: str) -> dict:
    return {
        "code": code,
        "level": "county",
        "name": name,
        "parent_code": CITY_CODE,
        "is_poor_village": False,
        "poor_village_exit_year": None,
        "is_statistical_unit": False,
    }


def _synthetic(seed: int, code: str, name: str, n_villages: int, n_poor: int) -> pl.DataFrame:
    rnd = _rng(seed, "divisions", code)
    n_towns = TOWNS.get(code, EXTRA_COUNTY_TOWNS)
    n_streets = 1 + (n_towns >= 15)
    n_xiang = n_towns // 6
    kinds = (
        ["street"] * n_streets + ["zhen"] * (n_towns - n_streets - n_xiang) + ["xiang"] * n_xiang
    )
    counters = {"street": 1, "zhen": 100, "xiang": 200}
    suffix = {"street": "街道", "zhen": "镇", "xiang": "乡"}
    taken: set[str] = set()
    rows = [_county_row(code, name)]
    villages: list[dict] = []
    per_town = [n_villages // n_towns + (i < n_villages % n_towns) for i in range(n_towns)]
    for kind, n_v in zip(kinds, per_town, strict=True):
        town_code = f"{code}{counters[kind]:03d}"
        counters[kind] += 1
        rows.append(
            {
                "code": town_code,
                "level": "town",
                "name": _unique_names(rnd, 1, suffix[kind], taken)[0],
                "parent_code": code,
                "is_poor_village": False,
                "poor_village_exit_year": None,
                "is_statistical_unit": False,
            }
        )
        # 街道 are mostly 社区; rural towns have one 社区 at the seat (乡 none), the rest 村.
        n_comm = {"street": max(1, n_v * 2 // 3), "zhen": 1, "xiang": 0}[kind]
        n_comm = min(n_comm, n_v)
        comm_names = _unique_names(rnd, n_comm, "社区", taken)
        vill_names = _unique_names(rnd, n_v - n_comm, "村", taken)
        for i, vname in enumerate(comm_names):
            villages.append({"code": f"{town_code}{i + 1:03d}", "name": vname, "town": town_code})
        for i, vname in enumerate(vill_names):
            villages.append({"code": f"{town_code}{200 + i:03d}", "name": vname, "town": town_code})
    cun = [v for v in villages if v["code"][9] in "23"]
    if n_poor > len(cun):
        raise ValueError(f"county {code}: {n_poor} poor villages but only {len(cun)} 村")
    poor = set(v["code"] for v in rnd.sample(cun, n_poor))
    for v in villages:
        is_poor = v["code"] in poor
        rows.append(
            {
                "code": v["code"],
                "level": "village",
                "name": v["name"],
                "parent_code": v["town"],
                "is_poor_village": is_poor,
                # A few poor villages already left the list in 2015.
                "poor_village_exit_year": 2015 if is_poor and rnd.random() < 0.05 else None,
                "is_statistical_unit": False,
            }
        )
    return pl.DataFrame(rows, schema=REGION_SCHEMA)


_short_name = short_name  # one rule for short names, shared with the hub's seeding


def _real(
    seed: int, code: str, name: str, towns: pl.DataFrame, villages: pl.DataFrame, n_poor: int
) -> pl.DataFrame:
    rnd = _rng(seed, "divisions-real", code)
    t = towns.filter(pl.col("parent_code") == code).sort("code")
    town_codes = set(t["code"].to_list())
    v = villages.filter(pl.col("parent_code").is_in(town_codes)).sort("code")
    statistical_towns = {c for c in town_codes if c[6] in "45"}
    rows = [_county_row(code, name)]
    for tc, tn in zip(t["code"], t["name"], strict=True):
        rows.append(
            {
                "code": tc,
                "level": "town",
                "name": tn,
                "parent_code": code,
                "is_poor_village": False,
                "poor_village_exit_year": None,
                "is_statistical_unit": tc in statistical_towns,
            }
        )
    vrows = list(zip(v["code"], v["name"], v["parent_code"], strict=True))
    # Poor villages are real 村 (village digits 200-399) of real townships.
    cun = [vc for vc, _, tc in vrows if vc[9] in "23" and tc not in statistical_towns]
    poor = set(rnd.sample(cun, min(n_poor, len(cun))))
    for vc, vn, tc in vrows:
        is_poor = vc in poor
        rows.append(
            {
                "code": vc,
                "level": "village",
                "name": _short_name(vn),
                "parent_code": tc,
                "is_poor_village": is_poor,
                "poor_village_exit_year": 2015 if is_poor and rnd.random() < 0.05 else None,
                # 4xx/5xx units (reservoirs, farms, virtual communities) are statistical only.
                "is_statistical_unit": tc in statistical_towns or vc[9] in "45",
            }
        )
    return pl.DataFrame(rows, schema=REGION_SCHEMA)


def build(
    seed: int,
    counties: Sequence[tuple[str, str]],
    divisions_dir: str | Path | None = DIVISIONS,
) -> dict[str, pl.DataFrame]:
    """The region frame (county, towns, villages) of every county, keyed by county code.

    By default the real division list (``seeds/divisions``) is used for every county it
    covers; ``divisions_dir=None`` makes every county synthetic.

    ``counties`` is a sequence of (code, name). Poor villages are split over the counties by
    household share (701 over the seven real ones)."""
    codes = [c for c, _ in counties]
    n_poor = split(POOR_VILLAGES_CITY, codes)
    n_villages = split(VILLAGES_CITY, codes)
    towns = villages = None
    if divisions_dir is not None:
        d = Path(divisions_dir)
        towns = pl.read_csv(
            d / "towns.csv", schema_overrides={"code": pl.String, "parent_code": pl.String}
        )
        villages = pl.read_csv(
            d / "villages.csv", schema_overrides={"code": pl.String, "parent_code": pl.String}
        )
    out = {}
    for code, name in counties:
        if towns is not None and villages is not None and code in set(towns["parent_code"]):
            out[code] = _real(seed, code, name, towns, villages, n_poor[code])
        else:
            out[code] = _synthetic(seed, code, name, max(n_villages[code], 3), n_poor[code])
    return out
