"""core.region (行政区划) as a pandera-polars model: column-level rules of the city standard."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from schemas.rules import optional, required

LEVELS = ("county", "town", "village")


class RegionModel(pa.DataFrameModel):
    code: pl.String = required(
        "区划代码",
        "NBS division code: 6 digits county, 9 town, 12 village",
        str_matches=r"^(\d{6}|\d{9}|\d{12})$",
        metadata={"rule": "key_format"},
    )
    level: pl.String = required(
        "级别",
        "county / town / village",
        isin=LEVELS,
        metadata={"rule": "unknown_code", "code_table": "region level"},
    )
    name: pl.String = required("名称", "division name")
    parent_code: pl.String = optional("上级区划代码", "code of the enclosing division")
    is_poor_village: pl.Boolean = optional("是否贫困村", "poor village (villages only)")
    poor_village_exit_year: pl.Int32 = optional("贫困村退出年份", "year the village exited")
    is_statistical_unit: pl.Boolean = optional(
        "是否统计单位", "codes 4xx/5xx: reservoirs, forest farms, parks, not real townships"
    )

    class Config:
        strict = False
        coerce = False


#: Message details of the model's checks, evaluated on failing rows: {(column, rule): expr}.
DETAILS: dict[tuple[str, str], pl.Expr] = {
    ("code", "key_format"): pl.lit("6, 9 or 12 digits"),
}
