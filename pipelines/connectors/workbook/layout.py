"""The workbook export's published layout (shared/platforms/workbook.md): the sheet, where its
header row is found, the columns it must have and how they are read."""

from pipelines.connectors.parsing import Layout, Read

SHEET = "贫困人口明细"
HEADER_MARK = "户编号"
HEADER_SEARCH_ROWS = 50
COLUMNS = (
    "县", "乡(镇)", "行政村", "户编号", "人编号", "姓名", "证件号码", "人数", "与户主关系", "民族",
    "文化程度", "在校生状况", "健康状况", "劳动技能", "务工状况", "务工时间(月)", "参加大病医疗",
    "贫困户属性", "主要致贫原因", "其他致贫原因", "脱贫状态", "识别年度", "脱贫年度", "危房户",
    "饮水安全", "人均纯收入", "联系电话",
)  # fmt: skip
ID_COL = "证件号码"


def _village_code(f):
    """The register has no village code column: the first 12 digits of the 户编号."""
    return f.text("户编号").str.slice(0, 12)


#: Canonical column ← register column and parser (``parsing.layout_columns``; coded values
#: are Chinese labels). Each row is a person with the household's columns repeated. None:
#: not in the export, or filled by the normaliser (the household's head from its members,
#: sex and birth date from the ID number, ``source_updated_at`` from the export time).
CANONICAL: dict[str, Layout] = {
    "household": {
        "household_no": Read("户编号"),
        "village_code": _village_code,
        "head_person_no": None,
        "poverty_attribute": Read("贫困户属性", "code"),
        "poverty_status": Read("脱贫状态", "code"),
        "main_cause": Read("主要致贫原因", "code"),
        "main_cause_label": Read("主要致贫原因", "variant_label", table="poverty_cause"),
        "other_causes": Read("其他致贫原因", "code_list"),
        "identified_year": Read("识别年度", "year"),
        "exit_year": Read("脱贫年度", "year"),
        "relapse_year": None,
        "income_per_capita": Read("人均纯收入", "number"),
        "member_count": Read("人数", "integer"),
        # 危房户 "是" means the house is unsafe: the opposite sense of housing_safe.
        "housing_safe": Read("危房户", "boolean", negate=True),
        "water_safe": Read("饮水安全", "boolean"),
        "phone": Read("联系电话"),
        "source_updated_at": None,
    },
    "person": {
        "person_no": Read("人编号"),
        "household_no": Read("户编号"),
        "name": Read("姓名"),
        "id_number": Read(ID_COL),
        "sex": None,
        "birth_date": None,
        "relation_to_head": Read("与户主关系", "code"),
        "ethnicity": Read("民族", "code"),
        "education": Read("文化程度", "code"),
        "school_status": Read("在校生状况", "code"),
        "health": Read("健康状况", "code_list"),
        "labor_skill": Read("劳动技能", "code"),
        "work_status": Read("务工状况", "code"),
        "work_months": Read("务工时间(月)", "integer"),
        "serious_illness_insured": Read("参加大病医疗", "boolean"),
        "source_updated_at": None,
    },
}
