"""The battle platform's published record layouts (shared/platforms/battle.md), v3 and the v2
differences: what the client checks on every page and what the normaliser reads."""

#: The documented v3 record layouts (every row carries these keys; values may be ""/null).
FIELDS_V3: dict[str, tuple[str, ...]] = {
    "region": ("areaCode", "areaName", "parentCode", "areaLevel", "sfpkc", "pkctcnf", "updateTime"),
    "household": (
        "hbh", "xzqh", "cmc", "hzxm", "hzrybh", "pkhsx", "tpzt", "zyzpyy", "qtzpyy", "sbnf",
        "tpnf", "fpnf", "rjcsr", "jtrk", "zfaq", "yssaq", "lxdh", "updateTime",
    ),
    "person": (
        "rybh", "hbh", "xm", "sfzh", "xb", "csrq", "yhzgx", "mz", "whcd", "zxsqk", "jkzk",
        "ldjn", "wgzk", "wgsj", "cjdbyl", "updateTime",
    ),
    "measure": ("csbh", "hbh", "cslb", "nd", "je", "csms", "updateTime"),
    "loan": ("dkbh", "hbh", "dkyh", "dkje", "ffrq", "dkqx", "nll", "txje", "dkzt", "updateTime"),
    "project": (
        "xmbh", "xzqh", "xmlb", "xmmc", "ysje", "bfje", "xmzt", "kgrq", "wgrq", "syhs",
        "updateTime",
    ),
    "cadre": (
        "bfrbh", "xm", "sfzh", "xb", "lxdh", "dwmc", "dwlx", "sfdysj", "sfzcdy", "updateTime",
    ),
    "household_cadre": ("hbh", "bfrbh", "bfkssj", "updateTime"),
}  # fmt: skip
#: v2 (商州区): the head's ID number instead of their person number; no birth date column.
FIELDS_V2: dict[str, tuple[str, ...]] = {
    **FIELDS_V3,
    "household": tuple("hzsfz" if f == "hzrybh" else f for f in FIELDS_V3["household"]),
    "person": tuple(f for f in FIELDS_V3["person"] if f != "csrq"),
}

FIELDS = {"3": FIELDS_V3, "2": FIELDS_V2}

#: Versions whose API has no "changed since" filter (商州's v2): "incremental" re-reads all.
VERSIONS_WITHOUT_TIME_FILTER = frozenset({"2"})
