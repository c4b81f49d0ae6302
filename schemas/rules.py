"""The data-quality rule catalogue: every rule's stable name, level, entities, message and source.

The names are part of the warehouse's contract: they are what ``ops.reject.rule``,
``ops.finding.rule`` and the simulator's truth endpoint say. ``docs/data-quality.md`` explains
each rule for county admins; ``docs/engineering/architecture.md`` summarises them.

Levels:
- ``reject``: the record is not merged; one ``ops.reject`` row per rule it failed.
- ``finding``: the record is merged; the problem is listed in ``ops.finding`` for the county.
- ``conflict``: the record is merged; the clash is recorded in ``ops.conflict``.

Messages are templates with ``{column}``, ``{value}`` and ``{detail}``; ``render_message`` fills
them in a vectorised way for a frame of failures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import polars as pl

from schemas.entities import CHILD_ENTITIES, ISSUE_COLUMNS, SPECS

# the building blocks of the pandera models live in schemas.fields; the models import them here
from schemas.fields import coded, elements_in, optional, required, unknown_elements  # noqa: F401

Level = Literal["reject", "finding", "conflict"]

ALL = tuple(SPECS)
CHILDREN = CHILD_ENTITIES
CODED_ENTITIES = ("region", "household", "person", "measure", "loan", "project", "cadre")

GB11643 = "GB 11643-1999 公民身份号码"
CODES = "contract/codes.md (city code tables, seeds/codes.csv)"
STANDARD = "contract/city-standard.md"
NATIONAL = (
    "national 建档立卡 data-cleaning (数据清洗) logic checks of the poverty registration system"
)
CONTRACT4 = "docs/engineering/architecture.md, Contract 4 (validate)"


@dataclass(frozen=True)
class Rule:
    name: str
    level: Level
    entities: tuple[str, ...]
    message: str  # template: {column}, {value}, {detail}
    checks: str  # what the rule checks, in plain words
    why: str  # why it matters
    source: str  # where the rule comes from
    where: str  # where it is implemented: "model" (pandera, schemas/<entity>.py) or "validate"
    # What county admins read (Chinese first); ``name`` stays the key everywhere. Required, so a
    # new rule without its Chinese label does not even import.
    label_zh: str

    def __post_init__(self) -> None:
        if not any("\u4e00" <= ch <= "\u9fff" for ch in self.label_zh):
            raise ValueError(f"rule {self.name}: label_zh must be Chinese, got {self.label_zh!r}")


_RULES = (
    Rule(
        "missing_value",
        "reject",
        ALL,
        "{column} is empty but required",
        "a required column is empty (null or blank)",
        "a record without its key, parent key or defining codes cannot be merged or counted",
        STANDARD,
        "model",
        label_zh="必填项为空",
    ),
    Rule(
        "key_format",
        "reject",
        ("household", "person", "region"),
        "{column}: '{value}' is not {detail}",
        "household_no is 16 digits starting with its village_code; person_no is household_no "
        "plus 2 digits; a region code has 6, 9 or 12 digits",
        "the keys are the city-wide identity of households and people; a malformed key would "
        "create a phantom record or attach members to the wrong household",
        STANDARD + " (identity rules of the national registration system)",
        "model",
        label_zh="编号格式错误",
    ),
    Rule(
        "unknown_code",
        "reject",
        CODED_ENTITIES,
        "{column}: '{value}' is not a {detail} code",
        "a coded column (or an element of a coded list) holds a value that maps to no city code",
        "an unmapped code would silently fall out of every breakdown; the county must fix the "
        "value or the city must add a variant to seeds/codes.csv",
        CODES,
        "model",
        label_zh="代码不在市级代码表中",
    ),
    Rule(
        "bad_date",
        "reject",
        ALL,
        "{column}: '{value}' is not a valid date",
        "a date value the connector could not parse (from parse_errors)",
        "the value was lost in parsing; merging would store an empty date",
        "architecture.md, Contract 1 (parse_errors)",
        "validate",
        label_zh="日期无法识别",
    ),
    Rule(
        "bad_number",
        "reject",
        ALL,
        "{column}: '{value}' is not a number",
        "a number the connector could not parse (from parse_errors)",
        "the value was lost in parsing; merging would store an empty number",
        "architecture.md, Contract 1 (parse_errors)",
        "validate",
        label_zh="数字无法识别",
    ),
    Rule(
        "bad_boolean",
        "reject",
        ALL,
        "{column}: '{value}' is not a yes/no value",
        "a yes/no value the connector could not parse (from parse_errors)",
        "the value was lost in parsing; merging would store an empty flag",
        "architecture.md, Contract 1 (parse_errors)",
        "validate",
        label_zh="是/否值无法识别",
    ),
    Rule(
        "id_number_format",
        "reject",
        ("person", "cadre"),
        "{column}: '{value}' is not 18 characters of 17 digits and a final digit or X",
        "after normalisation the ID number is not 17 digits followed by a digit or X",
        "the ID number identifies a person across counties; a malformed one cannot",
        GB11643,
        "model",
        label_zh="身份证号格式错误",
    ),
    Rule(
        "id_number_checksum",
        "reject",
        ("person", "cadre"),
        "{column}: '{value}' has a wrong check digit (GB 11643 gives {detail})",
        "the 18th character is not the ISO 7064 MOD 11-2 check digit of the first 17",
        "a wrong check digit almost always means a typing error in the number",
        GB11643,
        "model",
        label_zh="身份证号校验位错误",
    ),
    Rule(
        "id_number_birth_date",
        "reject",
        ("person",),
        "{column}: '{value}' {detail}",
        "the birth date in digits 7-14 is not a real date, or differs from birth_date",
        "one of the two is wrong; ages drive school, labour and pension rules",
        GB11643 + "; " + NATIONAL,
        "model",
        label_zh="身份证号与出生日期不符",
    ),
    Rule(
        "id_number_sex",
        "reject",
        ("person",),
        "{column}: '{value}' {detail}",
        "the 17th digit's parity (odd male, even female) disagrees with sex",
        "one of the two is wrong",
        GB11643 + "; " + NATIONAL,
        "model",
        label_zh="身份证号与性别不符",
    ),
    Rule(
        "id_number_as_number",
        "reject",
        ("person",),
        "{column}: '{value}' was stored as a number in the workbook; its last digits are lost",
        "the workbook cell held the ID number as a number (e.g. 6.11026E+17)",
        "the digits cannot be recovered; the county must re-export the file with the column "
        "as text",
        "platforms/workbook.md; architecture.md, Contract 1",
        "validate",
        label_zh="身份证号被存为数字（后几位丢失）",
    ),
    Rule(
        "id_number_outside_shangluo",
        "finding",
        ("person",),
        "{column}: address code '{value}' is outside Shangluo (6110xx, or 6125xx for people born "
        "before 2001)",
        "the address code is not 6110xx (商洛市), nor 6125xx (商洛地区) for people born before 2001",
        "people who married or moved in keep their number, so this is worth a look, not a reject",
        GB11643 + " (address code = place of first issue); NBS division codes",
        "validate",
        label_zh="身份证号地址码不在商洛",
    ),
    Rule(
        "head_count",
        "reject",
        ("household",),
        "{column}: the household has {value} members with relation head; exactly one is required",
        "the members delivered for the household (with members already in the warehouse for "
        "incremental syncs) do not include exactly one with relation_to_head = head",
        "every registered household has exactly one 户主; relations, counts and the head's "
        "name hang on it",
        NATIONAL,
        "validate",
        label_zh="户主人数不是一人",
    ),
    Rule(
        "exit_before_identified",
        "reject",
        ("household",),
        "{column}: {value} is before identified_year {detail}",
        "exit_year < identified_year",
        "a household cannot exit poverty before it was identified as poor",
        NATIONAL,
        "model",
        label_zh="脱贫年度早于识别年度",
    ),
    Rule(
        "exited_without_exit_year",
        "reject",
        ("household",),
        "{column} is empty although poverty_status is exited",
        "poverty_status = exited but exit_year is empty",
        "exit progress by year (mart.exit_progress) would lose the household",
        NATIONAL,
        "model",
        label_zh="已脱贫但无脱贫年度",
    ),
    Rule(
        "other_causes_invalid",
        "reject",
        ("household",),
        "{column}: '{value}' {detail}",
        "more than two other causes, or the main cause repeated among them",
        "the national form has one main cause and at most two others; a repeated main cause "
        "double-counts it in cause breakdowns",
        CODES + "; " + NATIONAL,
        "model",
        label_zh="其他致贫原因无效",
    ),
    Rule(
        "negative_income",
        "reject",
        ("household",),
        "{column}: {value} is negative",
        "income_per_capita < 0",
        "net income per person below zero is a data-entry error (a sign or a misplaced field)",
        NATIONAL,
        "model",
        label_zh="人均纯收入为负数",
    ),
    Rule(
        "work_months_range",
        "reject",
        ("person",),
        "{column}: {value} is outside 0-12",
        "work_months outside 0-12",
        "months worked in a year",
        STANDARD,
        "model",
        label_zh="务工时间不在0-12个月",
    ),
    Rule(
        "health_exclusive",
        "reject",
        ("person",),
        "{column}: '{value}' combines healthy with another health value",
        "health contains healthy together with another value",
        "健康 excludes chronic illness, serious illness and disability",
        CODES,
        "model",
        label_zh="健康与疾病/残疾并存",
    ),
    Rule(
        "orphan_household",
        "reject",
        CHILDREN,
        "{column}: household '{value}' is neither in this sync nor in the warehouse",
        "household_no matches no accepted household of the sync and no household in core",
        "a member, measure, loan or aid relation must belong to a registered household",
        STANDARD,
        "validate",
        label_zh="所属户不存在",
    ),
    Rule(
        "orphan_village",
        "reject",
        ("household", "project"),
        "{column}: village '{value}' is neither in this sync nor in the warehouse",
        "village_code matches no accepted region of the sync and no village in core",
        "village and town breakdowns need the village",
        STANDARD,
        "validate",
        label_zh="所属村不存在",
    ),
    Rule(
        "orphan_cadre",
        "reject",
        ("household_cadre",),
        "{column}: cadre '{value}' is neither in this sync nor in the warehouse",
        "cadre_id matches no accepted cadre of the sync and no cadre in core",
        "an aid relation must name a known cadre",
        STANDARD,
        "validate",
        label_zh="帮扶干部不存在",
    ),
    Rule(
        "parent_rejected",
        "reject",
        CHILDREN,
        "{column}: household '{value}' was rejected in this sync ({detail})",
        "the record's household was rejected in the same sync",
        "merging the child without its household would create an orphan; it follows its "
        "household once the household is fixed",
        CONTRACT4,
        "validate",
        label_zh="所属户被拒收",
    ),
    Rule(
        "member_count_mismatch",
        "finding",
        ("household",),
        "{column}: declared {value} members but {detail} delivered",
        "member_count differs from the number of members delivered (with members already in "
        "the warehouse for incremental syncs)",
        "either a member is missing from the register or the declared count is stale",
        NATIONAL,
        "validate",
        label_zh="家庭人口数与成员数不符",
    ),
    Rule(
        "school_age_implausible",
        "finding",
        ("person",),
        "{column}: '{value}' at age {detail}",
        "school_status outside its age band (preschool 2-7, primary 5-15, grade7-9 10-18, "
        "senior/vocational 13-22, higher vocational/college 16-35; not_in_school any age)",
        "education assistance (因学, 雨露计划) is targeted by school status",
        NATIONAL,
        "validate",
        label_zh="在校生状况与年龄不符",
    ),
    Rule(
        "relation_sex_inconsistent",
        "finding",
        ("person",),
        "{column}: '{value}' but sex is {detail}",
        "a male relation (son, father, ...) who is female, or a female one who is male",
        "usually a wrong relation or a wrong sex",
        NATIONAL,
        "validate",
        label_zh="与户主关系与性别不符",
    ),
    Rule(
        "exit_below_poverty_line",
        "finding",
        ("household",),
        "{column}: {value} yuan is below the poverty line {detail}",
        "exited with income_per_capita below the poverty line of its exit year",
        "exit requires income above the national line (两不愁三保障 exit standard)",
        NATIONAL + "; seeds/poverty_lines.csv",
        "validate",
        label_zh="脱贫时收入低于贫困线",
    ),
    Rule(
        "exit_unsafe_housing",
        "finding",
        ("household",),
        "{column}: {value} although the household has exited",
        "exited while housing_safe is false",
        "safe housing is an exit condition (住房安全有保障)",
        NATIONAL,
        "validate",
        label_zh="脱贫但住房不安全",
    ),
    Rule(
        "exit_unsafe_water",
        "finding",
        ("household",),
        "{column}: {value} although the household has exited",
        "exited while water_safe is false",
        "safe drinking water is an exit condition (饮水安全有保障)",
        NATIONAL,
        "validate",
        label_zh="脱贫但饮水不安全",
    ),
    Rule(
        "illness_cause_nobody_ill",
        "finding",
        ("household",),
        "{column}: '{value}' but no member is chronically or seriously ill",
        "因病 (main or other cause) but no member's health is chronic or serious_illness",
        "health assistance is targeted by this cause",
        NATIONAL,
        "validate",
        label_zh="因病致贫但无患病成员",
    ),
    Rule(
        "tekun_able_bodied_member",
        "finding",
        ("household",),
        "{column}: '{value}' household has an able-bodied member ({detail})",
        "特困 household with a member aged 16-59 who is healthy with ordinary or skilled labour",
        "特困供养 is for people without labour capacity and without supporters",
        NATIONAL,
        "validate",
        label_zh="特困户有劳动能力成员",
    ),
    Rule(
        "cadre_registered_poor",
        "finding",
        ("cadre",),
        "{column}: '{value}' is the ID number of a registered poor person",
        "the cadre's ID number belongs to a registered poor person (any county)",
        "a cadre should not be registered as poor (a typical 优亲厚友 / data-entry case)",
        NATIONAL,
        "validate",
        label_zh="帮扶干部是建档立卡贫困人口",
    ),
    Rule(
        "unknown_village",
        "finding",
        ("household",),
        "{column}: '{value}' is in no list of Shangluo's divisions{detail}",
        "village_code (or town_code) is neither in the NBS division list (seeds/divisions) nor "
        "among the historical codes registered in seeds/divisions/historical.csv; checked for "
        "counties the list covers",
        "one mistyped 户编号 must not invent a village; the household is kept and flagged so the "
        "county fixes the number, or the city registers a historical code with its source",
        "seeds/divisions/SOURCE.md (NBS 统计用区划代码, 2023)",
        "validate",
        label_zh="村/乡镇代码不在区划名录中",
    ),
    Rule(
        "unknown_division",
        "reject",
        ("region",),
        "{column}: {detail} '{value}' is in no list of Shangluo's divisions",
        "a town or village row whose code is neither in seeds/divisions nor in "
        "seeds/divisions/historical.csv (counties the list covers)",
        "core.region holds known divisions only: a region is never created silently from an "
        "unknown code; register a real historical code in historical.csv with its source",
        "seeds/divisions/SOURCE.md (NBS 统计用区划代码, 2023)",
        "validate",
        label_zh="区划代码不在区划名录中",
    ),
    Rule(
        "duplicate_id_number",
        "conflict",
        ("person",),
        "{column}: '{value}' is also the ID number of {detail}",
        "two person records (different person_no) carry the same ID number",
        "an ID number identifies one person; the warehouse records the clash instead of "
        "overwriting (the record with the larger person_no is the duplicate)",
        STANDARD,
        "validate",
        label_zh="身份证号重复",
    ),
    # Values no clerk types: hostile or broken platforms (issue 10). Implemented in
    # schemas/sanity.py; the limits are TEXT_MAX_LENGTHS below.
    Rule(
        "text_too_long",
        "reject",
        ALL,
        "{column}: '{value}' is longer than {detail}",
        "a free-text column (name, phone, description, unit, lender) or an unformatted key is "
        "longer than its maximum length (TEXT_MAX_LENGTHS); the value shown is cut",
        "no real name, phone or description is that long; a huge value is a broken export or an "
        "attack, and merging it would bloat history, snapshots and every report that shows it",
        STANDARD + " (column meanings); lengths: docs/data-quality.md, 'Text limits'",
        "validate",
        label_zh="文本超过最大长度",
    ),
    Rule(
        "text_control_character",
        "reject",
        ALL,
        "{column}: '{value}' contains {detail}",
        "a free-text column or unformatted key contains a control character (U+0000-U+001F) or a "
        "bidirectional override/isolate (U+202A-U+202E, U+2066-U+2069)",
        "control characters break exports and terminals; bidi overrides make a name display as "
        "something else than it is (a spoofing trick), so the record must be corrected at source",
        "Unicode TR #36 (security considerations: bidi spoofing); " + STANDARD,
        "validate",
        label_zh="含控制字符或文字方向控制符",
    ),
    Rule(
        "source_time_in_future",
        "reject",
        ALL,
        "{column}: '{value}' is later than the hub's clock plus the allowed skew ({detail})",
        "the record's source update time (updatedAt / updateTime) is later than now plus "
        "HUB_CLOCK_SKEW_SECONDS (default 600), or beyond any representable time",
        "a time in the future is a typing or clock error; taken as the watermark it would make "
        "every later incremental sync ask for changes after that time and receive nothing",
        "docs/engineering/architecture.md, Contract 2 (watermarks)",
        "validate",
        label_zh="更新时间晚于当前时间",
    ),
)

RULES: dict[str, Rule] = {r.name: r for r in _RULES}

#: Rejects that come from the merge rather than validation (warehouse/sql/merge/20_claims.sql),
#: with their Chinese labels: not rules of the catalogue, but county admins see them in ops.reject.
MERGE_REJECTS: dict[str, str] = {"key_owned_by_other_county": "编号已属于其他县区"}


def label_zh(rule_name: str) -> str:
    """The Chinese label of a rule (or merge reject) name; the name itself if unknown."""
    rule = RULES.get(rule_name)
    return rule.label_zh if rule else MERGE_REJECTS.get(rule_name, rule_name)


#: Maximum length in characters of free-text columns and of keys no format rule checks (rule
#: ``text_too_long``; ``text_control_character`` checks the same columns). The city standard names
#: these columns but gives no lengths; these are the hub's, generous for any real value
#: (docs/data-quality.md, "Text limits", says why each).
TEXT_MAX_LENGTHS: dict[str, dict[str, int]] = {
    "region": {"name": 100},
    "household": {"phone": 40, "main_cause_label": 20},
    "person": {"name": 50},
    "measure": {"measure_id": 64, "description": 1000},
    "loan": {"loan_id": 64, "lender": 100},
    "project": {"project_id": 64, "name": 200},
    "cadre": {"cadre_id": 64, "name": 50, "phone": 40, "unit_name": 100},
    "household_cadre": {},
}
#: Characters ``text_control_character`` rejects: C0 controls, bidi embeddings/overrides, isolates.
CONTROL_CHARACTERS = r"[\x00-\x1f\u202a-\u202e\u2066-\u2069]"

REJECT_COLUMNS = ISSUE_COLUMNS
ISSUE_SCHEMA: dict[str, pl.DataType] = {c: pl.String() for c in REJECT_COLUMNS}


def _template_parts(template: str) -> list[str]:
    return re.split(r"(\{column\}|\{value\}|\{detail\})", template)


def render_message(rule_name: str, column: pl.Expr, value: pl.Expr, detail: pl.Expr) -> pl.Expr:
    """The rule's message for each row, from expressions giving column, value and detail."""
    rule = RULES.get(rule_name)
    template = rule.message if rule else f"{{column}}: '{{value}}' fails {rule_name}"
    slots = {"{column}": column, "{value}": value, "{detail}": detail}
    parts = [
        slots[p].cast(pl.String).fill_null("") if p in slots else pl.lit(p)
        for p in _template_parts(template)
        if p
    ]
    return pl.concat_str(parts)


def rules_for(entity: str, level: Level | None = None) -> list[Rule]:
    return [r for r in _RULES if entity in r.entities and (level is None or r.level == level)]
