"""GB 11643 citizen ID numbers for the simulator, built with polars expressions.

An ID is ``address(6) + birth date yyyymmdd(8) + sequence(3) + check``. The sequence's last
digit is odd for men and even for women. The simulator keeps every number unique by giving each
kind of record its own sequence range within one (address, birth date) pair:

=========  ===========================================================
range      used by
=========  ===========================================================
000-599    persons of the initial register
600-799    IDs rewritten by injected defects (sex digit, marry-in)
800-899    persons added by the clock (births, new registrations)
900-999    cadres
=========  ===========================================================

Address codes never overlap between counties, so uniqueness within a county is uniqueness
city-wide.
"""

from __future__ import annotations

import polars as pl

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"

#: 商洛地区 codes (before the 2001 reform that made it 商洛市 6110xx); people born before 2001
#: mostly still carry them.
LEGACY_PREFECTURE = {
    "611002": "612501",  # 商州市
    "611021": "612522",  # 洛南县
    "611022": "612523",  # 丹凤县
    "611023": "612524",  # 商南县
    "611024": "612525",  # 山阳县
    "611025": "612526",  # 镇安县
    "611026": "612527",  # 柞水县
}

#: Address codes of neighbouring provinces, for marry-ins (the id_number_outside_shangluo defect).
OTHER_PROVINCES = ("420322", "420381", "411326", "411323", "500238", "620521")

SEQ_INITIAL, SEQ_DEFECT, SEQ_CLOCK, SEQ_CADRE = 0, 600, 800, 900
SEQ_RANGE = {SEQ_INITIAL: 600, SEQ_DEFECT: 200, SEQ_CLOCK: 100, SEQ_CADRE: 100}


def check_digit(body: pl.Expr) -> pl.Expr:
    """The GB 11643 check character of a 17-digit body."""
    total = sum(body.str.slice(i, 1).cast(pl.Int32) * w for i, w in enumerate(WEIGHTS))
    return (total % 11).replace_strict(dict(enumerate(CHECK_CHARS)), return_dtype=pl.String)


def wrong_check_digit(body: pl.Expr, shift: pl.Expr) -> pl.Expr:
    """A check character that is certainly wrong: the right one moved by 1..10 places."""
    total = sum(body.str.slice(i, 1).cast(pl.Int32) * w for i, w in enumerate(WEIGHTS))
    return ((total % 11 + shift.cast(pl.Int32)) % 11).replace_strict(
        dict(enumerate(CHECK_CHARS)), return_dtype=pl.String
    )


def is_valid(id_number: pl.Expr) -> pl.Expr:
    """True when the number has 18 characters, digits then digit/X, and the right check."""
    shape = id_number.str.contains(r"^\d{17}[\dX]$")
    return shape & (id_number.str.slice(17, 1) == check_digit(id_number.str.slice(0, 17)))


def address_code(county_code: str, born_before_2001: pl.Expr, legacy_share: pl.Expr) -> pl.Expr:
    """The address code a person born in the county carries.

    ``legacy_share`` is a uniform draw: born before 2001 and below 0.85 → the 商洛地区 code.
    A county with no 6125xx predecessor (a fictional one) always uses its own code.
    """
    legacy = LEGACY_PREFECTURE.get(county_code)
    if legacy is None:
        return pl.lit(county_code)
    return (
        pl.when(born_before_2001 & (legacy_share < 0.85))
        .then(pl.lit(legacy))
        .otherwise(pl.lit(county_code))
    )


def assign_ids(
    df: pl.DataFrame,
    base: int,
    existing: pl.Series | None = None,
    *,
    address: str = "_addr",
    birth: str = "birth_date",
    sex: str = "sex",
    out: str = "id_number",
) -> pl.DataFrame:
    """Give every row of ``df`` a valid, unique ID number in the sequence range ``base``.

    Rows are numbered within their (address, birth date, sex) group in frame order; numbers of
    ``existing`` in the same range and group are counted first, so repeated calls (one per
    simulated day) never hand out the same number twice.
    """
    prefix = pl.col(address) + pl.col(birth).dt.strftime("%Y%m%d")
    parity = pl.when(pl.col(sex) == "male").then(1).otherwise(0)
    df = df.with_columns(_prefix=prefix, _parity=parity)
    if existing is not None and len(existing):
        used = (
            pl.DataFrame({"id": existing})
            .filter(pl.col("id").str.len_chars() == 18)
            .with_columns(
                _prefix=pl.col("id").str.slice(0, 14),
                _seq=pl.col("id").str.slice(14, 3).cast(pl.Int32, strict=False),
            )
            .filter(pl.col("_seq").is_between(base, base + SEQ_RANGE[base] - 1))
            .group_by("_prefix", (pl.col("_seq") % 2).alias("_parity"))
            .agg(_used=pl.len().cast(pl.Int64))
        )
        df = df.join(used, on=["_prefix", "_parity"], how="left", maintain_order="left")
    else:
        df = df.with_columns(_used=pl.lit(0, pl.Int64))
    rank = pl.int_range(pl.len()).over("_prefix", "_parity").cast(pl.Int64)
    seq = base + 2 * (pl.col("_used").fill_null(0) + rank) + 2 - pl.col("_parity")
    df = df.with_columns(_body=pl.col("_prefix") + seq.cast(pl.String).str.zfill(3))
    if df.height and df.select((seq >= base + SEQ_RANGE[base]).any()).item():
        raise RuntimeError(f"ID sequence range {base} exhausted")
    return df.with_columns((pl.col("_body") + check_digit(pl.col("_body"))).alias(out)).drop(
        "_prefix", "_parity", "_used", "_body"
    )
