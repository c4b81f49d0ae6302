"""core.household (贫困户) as a pandera-polars model: column and within-row rules."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from schemas.rules import coded, elements_in, optional, required


class HouseholdModel(pa.DataFrameModel):
    household_no: pl.String = required(
        "户编号", "household number: 12-digit village code + 4-digit sequence (16 digits)"
    )
    town_code: pl.String = optional("乡镇代码", "9-digit town code")
    village_code: pl.String = required("行政村代码", "12-digit village code")
    head_person_no: pl.String = optional("户主人编号", "person_no of the household head")
    poverty_attribute: pl.String = coded(
        "poverty_attribute", "贫困户属性", "general / dibao / tekun", nullable=False
    )
    poverty_status: pl.String = coded(
        "poverty_status", "脱贫状态", "poverty status", nullable=False
    )
    main_cause: pl.String = coded("poverty_cause", "主要致贫原因", "main cause", nullable=False)
    main_cause_label: pl.String = optional(
        "主要致贫原因(原文)", "the label as sent when it differs from the standard (因婚, 因丧)"
    )
    other_causes: list[str] = optional(
        "其他致贫原因", "up to two further causes (city code table poverty_cause)"
    )
    identified_year: pl.Int32 = required("识别年度", "year the household was identified as poor")
    exit_year: pl.Int32 = optional("脱贫年度", "year the household exited poverty")
    relapse_year: pl.Int32 = optional("返贫年度", "year the household fell back into poverty")
    income_per_capita: pl.Float64 = optional(
        "人均纯收入",
        "net income per person, yuan per year",
        ge=0,
        metadata={"rule": "negative_income"},
    )
    member_count: pl.Int32 = optional("家庭人口数", "number of members as declared by the source")
    housing_safe: pl.Boolean = optional("住房安全", "housing is safe")
    water_safe: pl.Boolean = optional("饮水安全", "drinking water is safe")
    phone: pl.String = optional("联系电话", "contact phone (PII)")

    class Config:
        strict = False
        coerce = False

    @pa.check("household_no", name="key_format")
    def household_no_format(cls, data: PolarsData) -> pl.LazyFrame:
        no = pl.col("household_no")
        in_village = no.str.starts_with(pl.col("village_code")).fill_null(True)
        return data.lazyframe.select(no.str.contains(r"^\d{16}$") & in_village)

    @pa.check("other_causes", name="unknown_code")
    def other_causes_codes(cls, data: PolarsData) -> pl.LazyFrame:
        return elements_in(data, "poverty_cause")

    @pa.check("other_causes", name="other_causes_invalid")
    def other_causes_valid(cls, data: PolarsData) -> pl.LazyFrame:
        causes = pl.col("other_causes")
        repeats_main = causes.list.contains(pl.col("main_cause")).fill_null(False)
        return data.lazyframe.select((causes.list.len() <= 2) & ~repeats_main)

    @pa.check("exit_year", name="exit_before_identified")
    def exit_after_identified(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("exit_year") >= pl.col("identified_year"))

    @pa.check("exit_year", name="exited_without_exit_year")
    def exit_year_when_exited(cls, data: PolarsData) -> pl.LazyFrame:
        # null (status unknown) counts as a pass: missing_value / unknown_code cover the status
        exited = pl.col("poverty_status") == "exited"
        return data.lazyframe.select(~(exited & pl.col("exit_year").is_null()))


DETAILS: dict[tuple[str, str], pl.Expr] = {
    ("household_no", "key_format"): pl.format(
        "16 digits starting with its village_code '{}'", pl.col("village_code").fill_null("")
    ),
    ("exit_year", "exit_before_identified"): pl.col("identified_year").cast(pl.String),
    ("other_causes", "other_causes_invalid"): pl.when(pl.col("other_causes").list.len() > 2)
    .then(pl.lit("lists more than two other causes"))
    .otherwise(pl.format("repeats main_cause '{}'", pl.col("main_cause"))),
}
