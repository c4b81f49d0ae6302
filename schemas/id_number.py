"""Citizen ID numbers (公民身份号码, GB 11643-1999) as vectorised polars expressions.

An 18-character number is: 6-digit address code (the county where it was first issued), 8-digit
birth date ``YYYYMMDD``, 3-digit order code (odd for men, even for women) and a check digit
computed over the first 17 digits with the ISO 7064 MOD 11-2 weights below (``10`` is written
``X``). The older 15-digit numbers (GB 11643-1989) lack the century and the check digit; the
standard upgrades them by inserting ``19`` after the address code and computing the check digit.

Everything here works on whole columns (no ``map_elements``): the pipeline validates up to half a
million people per county sync. The plain-Python helpers at the end (``check_digit``,
``make_id``, ``upgrade_15``) are for tests and the simulator.
"""

from __future__ import annotations

from datetime import date

import polars as pl

#: GB 11643 weights of the first 17 digits (2**(18-i) mod 11).
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
#: check character for (weighted sum mod 11) = 0, 1, ..., 10.
CHECK_CHARS = "10X98765432"

FORMAT_18 = r"^\d{17}[\dX]$"
FORMAT_15 = r"^\d{15}$"

# Full-width forms (what a Chinese IME types in "全角" mode) and their ASCII equivalents.
_FULL_WIDTH = {chr(0xFF10 + i): str(i) for i in range(10)}
_FULL_WIDTH |= {chr(0xFF21 + i): chr(ord("A") + i) for i in range(26)}
_FULL_WIDTH |= {chr(0xFF41 + i): chr(ord("a") + i) for i in range(26)}
# Whitespace anywhere in the value: Rust's Unicode \s covers U+3000 (ideographic space) and
# U+00A0; zero-width space and BOM are not White_Space, but spreadsheets leave them too. A leading
# apostrophe is the text marker of spreadsheet exports (丹凤's CSV), never part of the number.
_NOISE = r"[\s\u200b\u200c\u200d\ufeff]|^'"


def _clean(expr: pl.Expr) -> pl.Expr:
    cleaned = (
        expr.cast(pl.String)
        .str.replace_many(_FULL_WIDTH)
        .str.replace_all(_NOISE, "")
        .str.to_uppercase()  # lower-case x; any other letter is invalid either way
    )
    return pl.when(cleaned != "").then(cleaned)


def _digit(raw: pl.Expr, i: int) -> pl.Expr:
    """Digit ``i`` of a binary-cast ASCII string (byte value minus ``'0'``)."""
    return raw.bin.get(i, null_on_oob=True).cast(pl.Int32) - 48


def _remainder(raw: pl.Expr) -> pl.Expr:
    """Weighted sum of the first 17 digits mod 11 (the index into ``CHECK_CHARS``)."""
    # Reading bytes of the binary view is several times faster than 17 substring or integer
    # division columns (measured on 490k rows).
    return pl.sum_horizontal(_digit(raw, i) * w for i, w in enumerate(WEIGHTS)) % 11


def check_digit_expr(first17: pl.Expr) -> pl.Expr:
    """The GB 11643 check character of a 17-digit string column (null unless 17 digits)."""
    char = _remainder(first17.cast(pl.Binary)).replace_strict(
        dict(enumerate(CHECK_CHARS)), return_dtype=pl.String, default=None
    )
    return pl.when(first17.str.contains(r"^\d{17}$")).then(char)


def normalise(expr: pl.Expr) -> pl.Expr:
    """Normalise an ID number column → struct ``{id_number: str, id_upgraded: bool}``.

    Strips whitespace (including the full-width space), maps full-width digits and letters to
    ASCII, upper-cases ``x``; a 15-digit legacy number becomes 18 digits (``19`` inserted after
    the address code, check digit computed) with ``id_upgraded`` true. Anything else is kept as
    cleaned, so validation can reject it by value. Empty → null.
    """
    cleaned = _clean(expr)
    is_legacy = cleaned.str.contains(FORMAT_15).fill_null(False)
    first17 = cleaned.str.slice(0, 6) + pl.lit("19") + cleaned.str.slice(6, 9)
    upgraded = first17 + check_digit_expr(first17)
    return pl.struct(
        pl.when(is_legacy).then(upgraded).otherwise(cleaned).alias("id_number"),
        is_legacy.alias("id_upgraded"),
    )


def normalise_id_columns(df: pl.DataFrame, col: str = "id_number") -> pl.DataFrame:
    """Replace ``id_number`` (read from ``col``) with its normalised form and set ``id_upgraded``:
    :func:`normalise`'s values, computed in steps so that the cleaned number is computed once
    and the upgrade (and its check digit) only for the 15-digit numbers: ~7× less CPU than the
    one struct expression, whose branches re-cleaned every row four times (issue 13)."""
    clean, legacy = pl.col("__id_clean"), pl.col("__id_legacy")
    first17 = pl.when(legacy).then(clean.str.slice(0, 6) + pl.lit("19") + clean.str.slice(6, 9))
    return (
        df.lazy()
        .with_columns(_clean(pl.col(col)).alias("__id_clean"))
        .with_columns(clean.str.contains(FORMAT_15).fill_null(False).alias("__id_legacy"))
        .with_columns(
            pl.when(legacy)
            .then(first17 + check_digit_expr(first17))
            .otherwise(clean)
            .alias("id_number"),
            legacy.alias("id_upgraded"),
        )
        .drop("__id_clean", "__id_legacy")
        .collect()
    )


def format_ok(expr: pl.Expr) -> pl.Expr:
    """18 characters: 17 digits then a digit or ``X`` (null stays null)."""
    return expr.str.contains(FORMAT_18)


def checksum_ok(expr: pl.Expr) -> pl.Expr:
    """True when the check digit is right; false for a wrong one or a malformed number."""
    raw = expr.cast(pl.Binary)
    expected_byte = _remainder(raw).replace_strict(
        {i: ord(c) for i, c in enumerate(CHECK_CHARS)}, return_dtype=pl.UInt8, default=None
    )
    return format_ok(expr) & (raw.bin.get(17, null_on_oob=True) == expected_byte)


def birth_date(expr: pl.Expr) -> pl.Expr:
    """The birth date the number encodes (digits 7-14); null when it is not a real date."""
    digits = pl.when(format_ok(expr)).then(expr.str.slice(6, 8))
    return digits.str.to_date("%Y%m%d", strict=False)


def sex(expr: pl.Expr) -> pl.Expr:
    """``"male"`` when the 17th digit is odd, ``"female"`` when even (null if malformed)."""
    order_digit = pl.when(format_ok(expr)).then(_digit(expr.cast(pl.Binary), 16))
    return (
        pl.when(order_digit % 2 == 1)
        .then(pl.lit("male"))
        .when(order_digit.is_not_null())
        .then(pl.lit("female"))
    )


def address_code(expr: pl.Expr) -> pl.Expr:
    """The 6-digit address code (where the number was first issued)."""
    return expr.str.slice(0, 6)


def address_in_shangluo(id_expr: pl.Expr, birth_date_expr: pl.Expr) -> pl.Expr:
    """Issued in Shangluo: 6110xx (商洛市, since 2001), or 6125xx (商洛地区, the prefecture's
    code until 2001) for people born before 2001, whose number was issued under the old code."""
    prefix = id_expr.str.slice(0, 4)
    return (prefix == "6110") | ((prefix == "6125") & (birth_date_expr < date(2001, 1, 1)))


# ----------------------------------------------------------------------------------------------
# Plain-Python helpers (tests, simulator): not for the record path.


def check_digit(first17: str) -> str:
    """GB 11643 check character of 17 digits."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError(f"need 17 digits, got {len(first17)} characters")
    total = sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True))
    return CHECK_CHARS[total % 11]


def make_id(address: str, birth: date, order: int = 1, sex: str | None = None) -> str:
    """A valid 18-character ID number. ``order`` is the 3-digit order code; when ``sex`` is given
    its last digit is adjusted to the right parity (odd male, even female)."""
    if len(address) != 6 or not address.isdigit():
        raise ValueError("address must be 6 digits")
    if not 0 <= order <= 999:
        raise ValueError("order must be 0..999")
    if sex is not None:
        order = order - order % 2 + (1 if sex == "male" else 0)
    first17 = f"{address}{birth:%Y%m%d}{order:03d}"
    return first17 + check_digit(first17)


def upgrade_15(legacy: str) -> str:
    """The 18-character form of a 15-digit legacy number."""
    if len(legacy) != 15 or not legacy.isdigit():
        raise ValueError("need 15 digits")
    first17 = legacy[:6] + "19" + legacy[6:]
    return first17 + check_digit(first17)
