"""Chinese labels of the rules, for county clerks (notifications, the weekly letter).

``label_zh(name)`` prefers a label carried by the rule itself (``Rule.label_zh``), so the
catalogue in ``schemas/rules.py`` stays the one place once every rule carries its label; this
table covers the rules that do not (yet).
"""

from __future__ import annotations

from schemas.rules import RULES

_LABELS = {
    "missing_value": "必填项为空",
    "key_format": "编号格式错误",
    "unknown_code": "代码不在市级代码表中",
    "bad_date": "日期无法识别",
    "bad_number": "数字无法识别",
    "bad_boolean": "是/否值无法识别",
    "id_number_format": "身份证号格式错误",
    "id_number_checksum": "身份证号校验位错误",
    "id_number_birth_date": "身份证号与出生日期不符",
    "id_number_sex": "身份证号与性别不符",
    "id_number_as_number": "身份证号被存为数字（后几位丢失）",
    "id_number_outside_shangluo": "身份证号地址码不在商洛",
    "head_count": "户主人数不是一人",
    "exit_before_identified": "脱贫年度早于识别年度",
    "exited_without_exit_year": "已脱贫但无脱贫年度",
    "other_causes_invalid": "其他致贫原因无效",
    "negative_income": "人均纯收入为负数",
    "work_months_range": "务工时间不在0-12个月",
    "health_exclusive": "健康与疾病/残疾并存",
    "orphan_household": "所属户不存在",
    "orphan_village": "所属村不存在",
    "orphan_cadre": "帮扶干部不存在",
    "parent_rejected": "所属户被拒收",
    "member_count_mismatch": "家庭人口数与成员数不符",
    "school_age_implausible": "在校生状况与年龄不符",
    "relation_sex_inconsistent": "与户主关系与性别不符",
    "exit_below_poverty_line": "脱贫时收入低于贫困线",
    "exit_unsafe_housing": "脱贫但住房不安全",
    "exit_unsafe_water": "脱贫但饮水不安全",
    "illness_cause_nobody_ill": "因病致贫但无患病成员",
    "tekun_able_bodied_member": "特困户有劳动能力成员",
    "cadre_registered_poor": "帮扶干部是建档立卡贫困人口",
    "duplicate_id_number": "身份证号重复",
    "unknown_village": "村/乡镇代码不在区划名录中",
    "key_owned_by_other_county": "编号已属于其他县区",
    "text_too_long": "文本超过最大长度",
    "text_control_character": "含控制字符或文字方向控制符",
    "source_time_in_future": "更新时间晚于当前时间",
}


def label_zh(name: str) -> str:
    """The rule's Chinese label (the rule name itself when none is known)."""
    rule = RULES.get(name)
    own = getattr(rule, "label_zh", None) if rule is not None else None
    return own or _LABELS.get(name) or name
