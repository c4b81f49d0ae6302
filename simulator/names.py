"""Synthetic Chinese names: common surnames (weighted roughly as in Shaanxi) and given-name
characters by sex. Nothing here is a real person's name except by coincidence."""

from __future__ import annotations

import polars as pl

# (surname, weight): the most common surnames of southern Shaanxi, heavier at the top.
SURNAMES = (
    ("王", 8.0), ("李", 7.5), ("张", 7.0), ("刘", 6.0), ("陈", 4.5), ("杨", 4.5), ("赵", 3.0),
    ("黄", 2.0), ("周", 2.2), ("吴", 1.8), ("徐", 1.5), ("孙", 1.6), ("胡", 1.4), ("朱", 1.3),
    ("高", 1.6), ("林", 0.8), ("何", 1.1), ("郭", 1.3), ("马", 1.4), ("罗", 0.9), ("梁", 0.8),
    ("宋", 1.0), ("郑", 0.9), ("谢", 0.7), ("韩", 0.9), ("唐", 0.8), ("冯", 0.9), ("于", 0.6),
    ("董", 0.8), ("萧", 0.3), ("程", 0.8), ("曹", 0.8), ("袁", 0.7), ("邓", 0.7), ("许", 0.7),
    ("傅", 0.4), ("沈", 0.4), ("曾", 0.4), ("彭", 0.6), ("吕", 0.6), ("苏", 0.5), ("卢", 0.5),
    ("蒋", 0.5), ("蔡", 0.4), ("贾", 0.7), ("丁", 0.5), ("魏", 0.7), ("薛", 0.6), ("叶", 0.4),
    ("阎", 0.5), ("余", 0.6), ("潘", 0.4), ("杜", 0.6), ("戴", 0.3), ("夏", 0.4), ("钟", 0.3),
    ("汪", 0.3), ("田", 0.8), ("任", 0.6), ("姜", 0.4), ("范", 0.5), ("方", 0.4), ("石", 0.6),
    ("姚", 0.4), ("谭", 0.3), ("廖", 0.3), ("邹", 0.3), ("熊", 0.4), ("金", 0.3), ("陆", 0.3),
    ("郝", 0.5), ("孔", 0.3), ("白", 0.6), ("崔", 0.4), ("康", 0.4), ("毛", 0.4), ("邱", 0.3),
    ("秦", 0.5), ("江", 0.3), ("史", 0.4), ("顾", 0.2), ("侯", 0.5), ("邵", 0.3), ("孟", 0.4),
    ("龙", 0.3), ("万", 0.3), ("段", 0.4), ("雷", 0.6), ("钱", 0.2), ("汤", 0.3), ("尹", 0.3),
    ("黎", 0.2), ("易", 0.2), ("常", 0.4), ("武", 0.4), ("乔", 0.4), ("贺", 0.4), ("赖", 0.1),
    ("龚", 0.3), ("文", 0.3), ("柯", 0.2), ("屈", 0.3), ("党", 0.3), ("寇", 0.2), ("巩", 0.2),
)  # fmt: skip

MALE_CHARS = tuple(
    "建国军伟强明华平刚勇林海军峰涛斌鹏辉杰文武超波宏志忠成祥福贵德亮东新全有存发顺"
    "生宝才山永安春立军锋龙虎学兵荣胜利民俊杰浩宇航洋鑫磊晨"
)
FEMALE_CHARS = tuple(
    "秀英兰芳玉珍桂凤霞梅红丽娟琴云莲芬燕萍娥巧翠花香菊敏静婷雪慧佳怡欣悦晶倩丹艳娜彩霞春梅小月"
)


def _pick(chars: tuple[str, ...], u: pl.Expr) -> pl.Expr:
    idx = (u * len(chars)).floor().cast(pl.Int64).clip(0, len(chars) - 1)
    return idx.replace_strict(dict(enumerate(chars)), return_dtype=pl.String)


def weighted_choice(u: pl.Expr, options, weights, dtype: pl.DataType | None = None) -> pl.Expr:
    """Map a uniform draw ``u`` in [0, 1) to one of ``options`` with the given weights."""
    total = float(sum(weights))
    cum, acc = [], 0.0
    for w in weights:
        acc += w / total
        cum.append(acc)
    cum[-1] = 2.0  # u < 1 always lands in the table, whatever the rounding
    idx = pl.lit(pl.Series(cum)).search_sorted(u, side="right").cast(pl.Int64)
    return idx.replace_strict(dict(enumerate(options)), return_dtype=dtype)


def surname(u: pl.Expr) -> pl.Expr:
    """A surname drawn by weight from the uniform draw ``u``."""
    return weighted_choice(u, [n for n, _ in SURNAMES], [w for _, w in SURNAMES], pl.String())


def given_name(is_male: pl.Expr, u1: pl.Expr, u2: pl.Expr, u3: pl.Expr) -> pl.Expr:
    """One or two characters by sex; about 70% of given names have two characters."""
    first = pl.when(is_male).then(_pick(MALE_CHARS, u1)).otherwise(_pick(FEMALE_CHARS, u1))
    second = pl.when(is_male).then(_pick(MALE_CHARS, u2)).otherwise(_pick(FEMALE_CHARS, u2))
    return pl.when(u3 < 0.7).then(first + second).otherwise(first)
