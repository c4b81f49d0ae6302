"""core.person (贫困人口, household members) as a pandera-polars model.

The ID-number rules are gated so that one defect triggers one rule: a malformed number fails
only ``id_number_format``; a number with a wrong check digit fails only ``id_number_checksum``
(its other digits cannot be trusted); birth date and sex are compared only for numbers that pass
the checksum, and only with values that are present and valid.
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from schemas import id_number as idn
from schemas.rules import coded, elements_in, optional, required

ID = pl.col("id_number")
_TRUSTED_ID = idn.checksum_ok(ID)  # well formed with a right check digit


class PersonModel(pa.DataFrameModel):
    person_no: pl.String = required("人编号", "person number: household_no + 2-digit sequence")
    household_no: pl.String = required("户编号", "household number")
    name: pl.String = required("姓名", "name (PII)")
    id_number: pl.String = required(
        "身份证号", "citizen ID number, normalised: 18 characters, upper-case X (PII)"
    )
    id_upgraded: pl.Boolean = optional(
        "身份证号已升位", "was a 15-digit legacy number, upgraded per GB 11643"
    )
    sex: pl.String = coded("sex", "性别", "sex")
    birth_date: pl.Date = optional("出生日期", "date of birth")
    relation_to_head: pl.String = coded(
        "relation_to_head", "与户主关系", "relation to the household head", nullable=False
    )
    ethnicity: pl.String = coded("ethnicity", "民族", "ethnicity, GB 3304 code")
    education: pl.String = coded("education", "文化程度", "education")
    school_status: pl.String = coded("school_status", "在校生状况", "school status")
    health: list[str] = optional("健康状况", "health, one or more (city code table health)")
    labor_skill: pl.String = coded("labor_skill", "劳动技能", "labour skill")
    work_status: pl.String = coded("work_status", "务工状况", "migrant work status")
    work_months: pl.Int32 = optional(
        "务工时间(月)",
        "months worked away from home in the year (0-12)",
        in_range={"min_value": 0, "max_value": 12},
        metadata={"rule": "work_months_range"},
    )
    serious_illness_insured: pl.Boolean = optional("参加大病医疗", "insured for serious illness")

    class Config:
        strict = False
        coerce = False

    @pa.check("person_no", name="key_format")
    def person_no_format(cls, data: PolarsData) -> pl.LazyFrame:
        no = pl.col("person_no")
        in_household = no.str.starts_with(pl.col("household_no")).fill_null(True)
        return data.lazyframe.select(no.str.contains(r"^\d{18}$") & in_household)

    @pa.check("id_number", name="id_number_format")
    def id_format(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(idn.format_ok(ID))

    @pa.check("id_number", name="id_number_checksum")
    def id_checksum(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.when(idn.format_ok(ID)).then(_TRUSTED_ID))

    @pa.check("id_number", name="id_number_birth_date")
    def id_birth_date(cls, data: PolarsData) -> pl.LazyFrame:
        encoded = idn.birth_date(ID)
        agrees = encoded.is_not_null() & (encoded == pl.col("birth_date")).fill_null(True)
        return data.lazyframe.select(pl.when(_TRUSTED_ID).then(agrees))

    @pa.check("id_number", name="id_number_sex")
    def id_sex(cls, data: PolarsData) -> pl.LazyFrame:
        stated = pl.col("sex")
        comparable = _TRUSTED_ID & stated.is_in(["male", "female"])
        return data.lazyframe.select(pl.when(comparable).then(idn.sex(ID) == stated))

    @pa.check("health", name="unknown_code")
    def health_codes(cls, data: PolarsData) -> pl.LazyFrame:
        return elements_in(data, "health")

    @pa.check("health", name="health_exclusive")
    def healthy_alone(cls, data: PolarsData) -> pl.LazyFrame:
        health = pl.col("health")
        return data.lazyframe.select(
            ~(health.list.contains("healthy") & (health.list.n_unique() > 1))
        )


_ENCODED_BIRTH = idn.birth_date(ID)

DETAILS: dict[tuple[str, str], pl.Expr] = {
    ("person_no", "key_format"): pl.format(
        "household_no '{}' followed by 2 digits", pl.col("household_no").fill_null("")
    ),
    ("id_number", "id_number_checksum"): idn.check_digit_expr(ID.str.slice(0, 17)),
    ("id_number", "id_number_birth_date"): pl.when(_ENCODED_BIRTH.is_null())
    .then(pl.lit("encodes no real birth date"))
    .otherwise(
        pl.format(
            "encodes birth date {} but birth_date is {}", _ENCODED_BIRTH, pl.col("birth_date")
        )
    ),
    ("id_number", "id_number_sex"): pl.format(
        "is a {} number (17th digit) but sex is {}", idn.sex(ID), pl.col("sex")
    ),
}
