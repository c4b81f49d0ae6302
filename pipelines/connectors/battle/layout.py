"""The battle platform's published record layouts (shared/platforms/battle.md), v3 and the v2
differences: what the client checks on every page and what the normaliser reads."""

from pipelines.connectors.parsing import Layout, Read

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

#: The area levels the platform writes (``areaLevel``) → canonical levels; others stay as sent.
LEVELS = {"2": "county", "4": "town", "5": "village"}
#: ``updateTime``: Beijing local time, second precision.
UPDATE_TIME = Read("updateTime", "local_timestamp")
#: Canonical column ← record field and parser, per entity (``parsing.layout_columns``; coded
#: values are Chinese labels). ``source_key`` is the entity's key; a household's town its
#: village's. v2 names a household's head by ID number, v3 by person number: the absent one
#: reads null.
CANONICAL: dict[str, Layout] = {
    "region": {
        "code": Read("areaCode"),
        "level": Read("areaLevel", values=LEVELS),
        "name": Read("areaName"),
        "parent_code": Read("parentCode"),
        "is_poor_village": Read("sfpkc", "boolean"),
        "poor_village_exit_year": Read("pkctcnf", "year"),
        "source_updated_at": UPDATE_TIME,
    },
    "household": {
        "household_no": Read("hbh"),
        "village_code": Read("xzqh"),
        "head_person_no": Read("hzrybh"),
        "head_id_number": Read("hzsfz"),  # v2: resolved among the members when staged
        "poverty_attribute": Read("pkhsx", "code"),
        "poverty_status": Read("tpzt", "code"),
        "main_cause": Read("zyzpyy", "code"),
        "main_cause_label": Read("zyzpyy", "variant_label", table="poverty_cause"),
        "other_causes": Read("qtzpyy", "code_list"),
        "identified_year": Read("sbnf", "year"),
        "exit_year": Read("tpnf", "year"),
        "relapse_year": Read("fpnf", "year"),
        "income_per_capita": Read("rjcsr", "number"),
        "member_count": Read("jtrk", "integer"),
        "housing_safe": Read("zfaq", "boolean"),
        "water_safe": Read("yssaq", "boolean"),
        "phone": Read("lxdh"),
        "source_updated_at": UPDATE_TIME,
    },
    "person": {
        "person_no": Read("rybh"),
        "household_no": Read("hbh"),
        "name": Read("xm"),
        "id_number": Read("sfzh"),
        "sex": Read("xb", "code"),
        "birth_date": Read("csrq", "date"),  # v2: from the ID number
        "relation_to_head": Read("yhzgx", "code"),
        "ethnicity": Read("mz", "code"),
        "education": Read("whcd", "code"),
        "school_status": Read("zxsqk", "code"),
        "health": Read("jkzk", "code_list"),
        "labor_skill": Read("ldjn", "code"),
        "work_status": Read("wgzk", "code"),
        "work_months": Read("wgsj", "integer"),
        "serious_illness_insured": Read("cjdbyl", "boolean"),
        "source_updated_at": UPDATE_TIME,
    },
    "measure": {
        "measure_id": Read("csbh"),
        "household_no": Read("hbh"),
        "category": Read("cslb", "code"),
        "year": Read("nd", "year"),
        "amount": Read("je", "number"),
        "description": Read("csms"),
        "source_updated_at": UPDATE_TIME,
    },
    "loan": {
        "loan_id": Read("dkbh"),
        "household_no": Read("hbh"),
        "lender": Read("dkyh"),
        "principal": Read("dkje", "number"),
        "issued_on": Read("ffrq", "date"),
        "term_months": Read("dkqx", "integer"),
        "annual_rate": Read("nll", "number"),  # "4.35%" → 0.0435
        "interest_subsidy": Read("txje", "number"),
        "status": Read("dkzt", "code"),
        "source_updated_at": UPDATE_TIME,
    },
    "project": {
        "project_id": Read("xmbh"),
        "village_code": Read("xzqh"),  # "" (county-wide) → null
        "category": Read("xmlb", "code"),
        "name": Read("xmmc"),
        "budget": Read("ysje", "number"),
        "disbursed": Read("bfje", "number"),
        "status": Read("xmzt", "code"),
        "start_on": Read("kgrq", "date"),
        "end_on": Read("wgrq", "date"),
        "households_benefited": Read("syhs", "integer"),
        "source_updated_at": UPDATE_TIME,
    },
    "cadre": {
        "cadre_id": Read("bfrbh"),
        "name": Read("xm"),
        "id_number": Read("sfzh"),
        "sex": Read("xb", "code"),
        "phone": Read("lxdh"),
        "unit_name": Read("dwmc"),
        "unit_type": Read("dwlx", "code"),
        "is_first_secretary": Read("sfdysj", "boolean"),
        "is_resident_team": Read("sfzcdy", "boolean"),
        "source_updated_at": UPDATE_TIME,
    },
    "household_cadre": {
        "household_no": Read("hbh"),
        "cadre_id": Read("bfrbh"),
        "since": Read("bfkssj", "date"),
        "source_updated_at": UPDATE_TIME,
    },
}
