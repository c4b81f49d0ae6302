"""core.household_cadre (帮扶关系: which cadre helps which household) as a pandera-polars model."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from schemas.rules import optional, required


class HouseholdCadreModel(pa.DataFrameModel):
    household_no: pl.String = required("户编号", "the household helped")
    cadre_id: pl.String = required("帮扶责任人编号", "the cadre helping it")
    since: pl.Date = optional("帮扶开始时间", "date the relation started")

    class Config:
        strict = False
        coerce = False


DETAILS: dict[tuple[str, str], pl.Expr] = {}
