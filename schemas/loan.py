"""core.loan (扶贫小额信贷 / 贴息贷款) as a pandera-polars model."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from schemas.rules import coded, optional, required


class LoanModel(pa.DataFrameModel):
    loan_id: pl.String = required("贷款编号", "loan id (the platform's key)")
    household_no: pl.String = required("户编号", "borrowing household")
    lender: pl.String = optional("贷款银行", "lending bank")
    principal: pl.Float64 = required("贷款金额", "principal in yuan")
    issued_on: pl.Date = required("发放日期", "date the loan was issued")
    term_months: pl.Int32 = optional("期限(月)", "term in months")
    annual_rate: pl.Float64 = optional("年利率", "annual interest rate as a fraction (0.0435)")
    interest_subsidy: pl.Float64 = optional("贴息金额", "interest subsidy in yuan")
    status: pl.String = coded("loan_status", "贷款状态", "loan status", nullable=False)

    class Config:
        strict = False
        coerce = False


DETAILS: dict[tuple[str, str], pl.Expr] = {}
