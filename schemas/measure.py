"""core.measure (帮扶措施) as a pandera-polars model."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from schemas.rules import coded, optional, required


class MeasureModel(pa.DataFrameModel):
    measure_id: pl.String = required("措施编号", "measure id (the platform's key)")
    household_no: pl.String = required("户编号", "household the measure helps")
    category: pl.String = coded(
        "measure_category", "措施类别", "assistance category", nullable=False
    )
    year: pl.Int32 = required("年度", "year of the measure")
    amount: pl.Float64 = optional("金额", "amount in yuan (empty when not monetary)")
    description: pl.String = optional("措施描述", "description")

    class Config:
        strict = False
        coerce = False


DETAILS: dict[tuple[str, str], pl.Expr] = {}
