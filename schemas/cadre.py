"""core.cadre (帮扶责任人 / 驻村干部) as a pandera-polars model.

A cadre's ID number is optional (some platforms do not hold it), but when present it must be
well formed with a right check digit, as for household members.
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from schemas import id_number as idn
from schemas.rules import coded, optional, required

ID = pl.col("id_number")


class CadreModel(pa.DataFrameModel):
    cadre_id: pl.String = required("帮扶责任人编号", "cadre id (the platform's key)")
    name: pl.String = required("姓名", "name (PII)")
    id_number: pl.String = optional("身份证号", "citizen ID number, normalised (PII)")
    sex: pl.String = coded("sex", "性别", "sex")
    phone: pl.String = optional("联系电话", "phone (PII)")
    unit_name: pl.String = optional("单位名称", "the cadre's work unit")
    unit_type: pl.String = coded("unit_type", "单位类型", "type of work unit")
    is_first_secretary: pl.Boolean = optional("是否第一书记", "first secretary of a village")
    is_resident_team: pl.Boolean = optional("是否驻村工作队员", "member of a resident work team")

    class Config:
        strict = False
        coerce = False

    @pa.check("id_number", name="id_number_format")
    def id_format(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(idn.format_ok(ID))

    @pa.check("id_number", name="id_number_checksum")
    def id_checksum(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.when(idn.format_ok(ID)).then(idn.checksum_ok(ID)))


DETAILS: dict[tuple[str, str], pl.Expr] = {
    ("id_number", "id_number_checksum"): idn.check_digit_expr(ID.str.slice(0, 17)),
}
