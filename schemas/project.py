"""core.project (扶贫项目) as a pandera-polars model."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from schemas.rules import coded, optional, required


class ProjectModel(pa.DataFrameModel):
    project_id: pl.String = required("项目编号", "project id (the platform's key)")
    village_code: pl.String = optional("行政村代码", "village of the project; empty: county-wide")
    category: pl.String = coded(
        "project_category", "项目类别", "one of the city's ten major projects", nullable=False
    )
    name: pl.String = required("项目名称", "project name")
    budget: pl.Float64 = optional("预算金额", "budget in yuan")
    disbursed: pl.Float64 = optional("拨付金额", "disbursed in yuan")
    status: pl.String = coded("project_status", "项目状态", "project status", nullable=False)
    start_on: pl.Date = optional("开工日期", "start date")
    end_on: pl.Date = optional("完工日期", "completion date")
    households_benefited: pl.Int32 = optional("受益户数", "households benefiting")

    class Config:
        strict = False
        coerce = False


DETAILS: dict[tuple[str, str], pl.Expr] = {}
