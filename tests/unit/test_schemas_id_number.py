"""GB 11643 ID numbers: normalisation, 15→18 upgrade, checksum, birth date, sex, address."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from schemas import id_number as idn


def _one(expr: pl.Expr, value: str | None):
    return pl.DataFrame({"id": [value]}, schema={"id": pl.String}).select(expr.alias("x"))["x"][0]


def test_known_valid_number_passes_the_checksum():
    # the example of GB 11643-1999 itself
    assert idn.check_digit("11010519491231002") == "X"
    assert _one(idn.checksum_ok(pl.col("id")), "11010519491231002X") is True
    assert _one(idn.checksum_ok(pl.col("id")), "440524188001010014") is True


@pytest.mark.parametrize(
    "value",
    ["110105194912310021", "11010519491231002", "1101051949123100XX", "6.11026E+17", "abc"],
)
def test_wrong_or_malformed_numbers_fail_the_checksum(value):
    assert _one(idn.checksum_ok(pl.col("id")), value) is False


def test_checksum_of_null_is_null():
    assert _one(idn.checksum_ok(pl.col("id")), None) is None


@pytest.mark.parametrize(
    ("raw", "expected", "upgraded"),
    [
        ("11010519491231002X", "11010519491231002X", False),
        ("11010519491231002x", "11010519491231002X", False),  # lower-case x
        (" 11010519491231002X ", "11010519491231002X", False),  # spaces around it
        ("\u300011010519491231002X\u3000", "11010519491231002X", False),  # full-width spaces
        ("110105 19491231 002X", "11010519491231002X", False),  # spaces inside
        ("１１０１０５１９４９１２３１００２Ｘ", "11010519491231002X", False),  # full-width digits
        ("１１０１０５１９４９１２３１００２ｘ", "11010519491231002X", False),  # full-width x
        ("'11010519491231002X", "11010519491231002X", False),  # CSV text marker
        ("110105491231002", "11010519491231002X", True),  # 15-digit legacy number
        ("440524800101001", "440524198001010013", True),  # weighted sum 196, 196 % 11 = 9 → "3"
        ("１１０１０５４９１２３１００２", "11010519491231002X", True),  # full-width legacy
        ("6.11026E+17", "6.11026E+17", False),  # kept as is: validation rejects it by value
        ("", None, False),
        ("   ", None, False),
        (None, None, False),
    ],
)
def test_normalise(raw, expected, upgraded):
    df = idn.normalise_id_columns(
        pl.DataFrame({"id_number": [raw]}, schema={"id_number": pl.String})
    )
    assert df.row(0, named=True) == {"id_number": expected, "id_upgraded": upgraded}


def test_normalise_reads_another_column():
    df = pl.DataFrame({"sfzh": ["110105491231002"]})
    out = idn.normalise_id_columns(df, col="sfzh")
    assert out["id_number"][0] == "11010519491231002X"
    assert out["id_upgraded"][0] is True


def test_upgrade_15_matches_the_vectorised_upgrade():
    assert idn.upgrade_15("110105491231002") == "11010519491231002X"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("11010519491231002X", date(1949, 12, 31)),
        ("110105198002290013", date(1980, 2, 29)),  # leap day
        ("110105198102290013", None),  # 1981 has no 29 February
        ("110105198013010013", None),
        ("1101051980", None),
        (None, None),
    ],
)
def test_birth_date(value, expected):
    assert _one(idn.birth_date(pl.col("id")), value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("11010519491231002X", "female"), ("440524188001010014", "male"), ("123", None)],
)
def test_sex_from_the_17th_digit(value, expected):
    assert _one(idn.sex(pl.col("id")), value) == expected


@pytest.mark.parametrize(
    ("address", "born", "inside"),
    [
        ("611002", date(1980, 1, 1), True),
        ("611026", date(2005, 1, 1), True),
        ("612522", date(1980, 1, 1), True),  # 商洛地区 code, issued before 2001
        ("612522", date(2001, 1, 1), False),  # the old code cannot belong to someone born in 2001
        ("610102", date(1980, 1, 1), False),  # 西安
    ],
)
def test_address_in_shangluo(address, born, inside):
    number = idn.make_id(address, born, 7)
    df = pl.DataFrame({"id": [number], "born": [born]})
    out = df.select(idn.address_in_shangluo(pl.col("id"), pl.col("born")).alias("x"))
    assert out["x"][0] is inside


def test_make_id_is_valid_with_the_requested_sex():
    for sex in ("male", "female"):
        for order in (0, 1, 998, 999):
            number = idn.make_id("611002", date(1990, 6, 15), order, sex)
            df = pl.DataFrame({"id": [number]})
            row = df.select(
                idn.checksum_ok(pl.col("id")).alias("ok"),
                idn.sex(pl.col("id")).alias("sex"),
                idn.birth_date(pl.col("id")).alias("born"),
            ).row(0)
            assert row == (True, sex, date(1990, 6, 15))


def test_check_digit_expr_agrees_with_python_on_many_numbers():
    firsts = [
        f"6110021980{m:02d}{d:02d}{o:03d}"
        for m in (1, 7, 12)
        for d in (1, 15)
        for o in range(0, 1000, 37)
    ]
    df = pl.DataFrame({"f": firsts}).select(idn.check_digit_expr(pl.col("f")).alias("c"))
    assert df["c"].to_list() == [idn.check_digit(f) for f in firsts]
