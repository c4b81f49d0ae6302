"""Workbook normaliser: hand-made .xlsx (柞水) and GB18030 .csv (丹凤) register exports."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime

import polars as pl
import pytest
import xlsxwriter

from base.errors import SourceError
from pipelines.connectors.workbook.normalise import COLUMNS, normalise
from pipelines.landing import LandingWriter, Page, read_manifest
from schemas.columns import frame_schema
from schemas.id_number import make_id
from seeds.registry import county

ZHASHUI = county("zhashui")  # xlsx
DANFENG = county("danfeng")  # csv
BASE = "http://127.0.0.1:9/exports/"
HH1 = "6110261001010001"  # town 611026100, village 611026100101
HH2 = "6110265002010001"  # a statistical-unit town (5xx)
HEAD_ID = make_id("611026", date(1960, 3, 1), 11, "male")
WIFE_ID = make_id("611026", date(1962, 5, 2), 12, "female")
KID_ID = make_id("611026", date(2005, 9, 9), 14, "female")


def row(hh: str, seq: int, id_number, **over) -> dict:
    rec = {
        "县": "柞水县", "乡(镇)": "乾佑街道", "行政村": "东村", "户编号": hh,
        "人编号": f"{hh}{seq:02d}", "姓名": "张三", "证件号码": id_number, "人数": 3,
        "与户主关系": "户主", "民族": "汉族", "文化程度": "小学", "在校生状况": "非在校生",
        "健康状况": "长期慢性病，残疾", "劳动技能": "普通劳动力", "务工状况": "县外省内务工",
        "务工时间(月)": 6, "参加大病医疗": "是", "贫困户属性": "一般贫困户", "主要致贫原因": "因丧",
        "其他致贫原因": "缺技术,缺资金", "脱贫状态": "未脱贫", "识别年度": 2014, "脱贫年度": None,
        "危房户": "是", "饮水安全": "否", "人均纯收入": 3520.5, "联系电话": "13800000000",
    }  # fmt: skip
    return {**rec, **over}


ROWS = [
    row(HH1, 1, HEAD_ID),
    row(HH1, 2, f" {WIFE_ID.lower()} ", 姓名="李四", 与户主关系="配偶", 健康状况="健康",
        务工状况="", 务工时间="", 参加大病医疗="否"),
    row(HH1, 3, 611026200509091000, 姓名="张小", 与户主关系="之女", 在校生状况="五年级"),
    row(HH2, 1, "611026600301123", 乡="水库管理处", 行政村="库区村", 人数="1", 主要致贫原因="因病",
        其他致贫原因="", 脱贫状态="已脱贫", 识别年度="2014年", 脱贫年度="2016", 危房户="否",
        饮水安全="是", 人均纯收入="3,520.50", 与户主关系="之子"),
]  # fmt: skip
# The test rows use short keyword names for the columns with parentheses.
for _r in ROWS:
    for short, full in (("乡", "乡(镇)"), ("务工时间", "务工时间(月)")):
        if short in _r:
            _r[full] = _r.pop(short)


def xlsx(rows: list[dict], *, title_rows: int = 2, sheet: str = "贫困人口明细", total=True,
         columns=COLUMNS) -> bytes:  # fmt: skip
    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True})
    ws = wb.add_worksheet(sheet)
    sci = wb.add_format({"num_format": "0.00000E+00"})
    day = wb.add_format({"num_format": "yyyy-mm-dd"})
    r = 0
    if title_rows:
        ws.merge_range(0, 0, 0, len(columns) - 1, "柞水县建档立卡贫困人口明细表")
        ws.write(1, 0, "导出时间：2016-07-01 18:10:22")
        ws.write(1, len(columns) - 1, "单位：人、元")
        r = title_rows
    ws.write_row(r, 0, columns)
    for rec in rows:
        r += 1
        for c, name in enumerate(columns):
            value = rec.get(name)
            if value is None or value == "":
                continue
            if isinstance(value, datetime):
                ws.write_datetime(r, c, value, day)
            elif isinstance(value, int | float):
                ws.write_number(r, c, value, sci if name == "证件号码" else None)
            else:
                ws.write_string(r, c, value)
    r += 2  # an empty row, then the total row
    if total:
        ws.write_row(r, 0, ["合计", "", "", "2户", "4人"])
    wb.close()
    return buf.getvalue()


def csv_bytes(rows: list[dict], encoding="gb18030") -> bytes:
    def cell(name, value):
        if value is None:
            return ""
        if name == "证件号码":
            # the exporter marks IDs as text; one typed as a number shows as 6.11026E+17
            return "6.11026E+17" if isinstance(value, int) else "'" + value
        return str(value)

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerows([cell(c, r.get(c)) for c in COLUMNS] for r in rows)
    return out.getvalue().encode(encoding)


def file_page(name: str, body: bytes, uploaded="2016-07-01T18:20:00+08:00", export="2016-07-01"):
    meta = {"name": name, "exportDate": export, "uploadedAt": uploaded, "kind": "register"}
    return Page("file", BASE + name, body, "application/octet-stream", meta)


def land(tmp_path, county_, pages):
    index = {"files": [p.meta for p in pages]}
    pages = [Page("index", BASE + "index.json", json.dumps(index).encode(), "application/json", {}),
             *pages]  # fmt: skip
    with LandingWriter(county_, root=tmp_path) as writer:
        writer.write_all(pages)
    return read_manifest(writer.dir)


def check_people(staged, exported_at):
    for entity, df in staged.frames.items():
        assert df.schema == pl.Schema(frame_schema(entity)), entity
    assert staged.full_listing == {"household", "person"}
    assert staged.source_counts == {"household": 2, "person": 4}

    people = {r["person_no"]: r for r in staged.frames["person"].rows(named=True)}
    head, wife, kid, other = (people[HH1 + "01"], people[HH1 + "02"], people[HH1 + "03"],
                              people[HH2 + "01"])  # fmt: skip
    assert head["sex"] == "male" and head["birth_date"] == date(1960, 3, 1)
    assert wife["id_number"] == WIFE_ID and wife["sex"] == "female"
    assert head["health"] == ["chronic", "disabled"] and wife["health"] == ["healthy"]
    assert wife["work_status"] == "not_working" and wife["work_months"] is None
    assert head["work_months"] == 6 and head["serious_illness_insured"] is True
    assert head["ethnicity"] == "01" and head["relation_to_head"] == "head"
    assert kid["school_status"] == "五年级"  # unknown label kept as sent
    # The ID typed as a number: digits lost, reported, nothing derived from it.
    assert kid["id_number"] is None and kid["sex"] is None and kid["birth_date"] is None
    assert kid["parse_errors"] == [
        {"rule": "id_number_as_number", "column": "id_number", "value": "6.11026E+17"}
    ]
    assert other["id_upgraded"] is True and other["birth_date"] == date(1960, 3, 1)
    # every row carries the export time (Contract 1), the region rows too
    for frame in staged.frames.values():
        assert frame["source_updated_at"].to_list() == [exported_at] * frame.height
    assert head["source_key"] == HH1 + "01"
    assert [p["parse_errors"] for p in (head, wife, other)] == [[], [], []]

    hh = {r["household_no"]: r for r in staged.frames["household"].rows(named=True)}
    one, two = hh[HH1], hh[HH2]
    assert one["head_person_no"] == HH1 + "01"
    assert two["head_person_no"] is None  # nobody is 户主
    assert (one["town_code"], one["village_code"]) == ("611026100", "611026100101")
    assert one["main_cause"] == "other" and one["main_cause_label"] == "因丧"
    assert two["main_cause"] == "illness" and two["main_cause_label"] is None
    assert one["other_causes"] == ["lack_skills", "lack_capital"] and two["other_causes"] == []
    assert one["housing_safe"] is False and one["water_safe"] is False  # 危房户 是 → unsafe
    assert two["housing_safe"] is True and two["water_safe"] is True
    assert one["member_count"] == 3 and two["member_count"] == 1
    assert one["income_per_capita"] == 3520.5 and two["income_per_capita"] == 3520.5
    assert one["identified_year"] == 2014 and two["identified_year"] == 2014
    assert one["exit_year"] is None and two["exit_year"] == 2016
    assert one["poverty_attribute"] == "general" and two["poverty_status"] == "exited"
    assert one["relapse_year"] is None and one["parse_errors"] == []

    regions = {r["code"]: r for r in staged.frames["region"].rows(named=True)}
    assert set(regions) == {"611026100", "611026100101", "611026500", "611026500201"}
    assert regions["611026100101"]["name"] == "东村"
    assert regions["611026100101"]["parent_code"] == "611026100"
    assert (
        regions["611026100"]["level"] == "town" and regions["611026100"]["parent_code"] == "611026"
    )
    assert regions["611026500"]["name"] == "水库管理处"
    assert regions["611026500201"]["is_statistical_unit"] is True
    assert regions["611026100101"]["is_statistical_unit"] is False
    assert regions["611026100101"]["is_poor_village"] is None
    return people, hh


def test_xlsx_register(tmp_path):
    name = "柞水县建档立卡贫困人口明细_20160701.xlsx"
    staged = normalise(ZHASHUI, land(tmp_path, ZHASHUI, [file_page(name, xlsx(ROWS))]))
    # the file's 导出时间 (2016-07-01 18:10:22 Beijing time)
    people, _ = check_people(staged, datetime(2016, 7, 1, 10, 10, 22, tzinfo=UTC))
    assert staged.watermarks == {"file": name} and staged.as_of == date(2016, 7, 1)
    assert people[HH1 + "01"]["raw_ref"].endswith(":2#0")
    assert people[HH2 + "01"]["raw_ref"].endswith(":2#3")


def test_csv_register(tmp_path):
    name = "丹凤县贫困人口_20160701.csv"
    staged = normalise(DANFENG, land(tmp_path, DANFENG, [file_page(name, csv_bytes(ROWS))]))
    # no title rows: the index's exportDate, 00:00 Beijing time
    check_people(staged, datetime(2016, 6, 30, 16, 0, tzinfo=UTC))
    assert staged.watermarks == {"file": name} and staged.as_of == date(2016, 7, 1)


def test_csv_title_row_gives_the_export_time(tmp_path):
    name = "丹凤县贫困人口_20160701.csv"
    body = "丹凤县贫困人口\r\n导出时间：2016-07-01 09:30:00\r\n".encode("gb18030") + csv_bytes(ROWS)
    staged = normalise(DANFENG, land(tmp_path, DANFENG, [file_page(name, body)]))
    check_people(staged, datetime(2016, 7, 1, 1, 30, tzinfo=UTC))


def test_index_export_date_wins_over_a_header_of_another_day(tmp_path):
    # the header says 07-01 (a re-upload of an old file's layout); the index declares 07-08
    page = file_page("b_20160708.xlsx", xlsx(ROWS), "2016-07-08T18:20:00+08:00", "2016-07-08")
    staged = normalise(ZHASHUI, land(tmp_path, ZHASHUI, [page]))
    check_people(staged, datetime(2016, 7, 7, 16, 0, tzinfo=UTC))
    assert staged.as_of == date(2016, 7, 8)


def test_xlsx_layout_quirks(tmp_path):
    """Header found below any number of title rows; Excel date serials and date cells in year
    columns; numbers as text; bad values reported."""
    rows = [
        row(HH1, 1, HEAD_ID, 识别年度=datetime(2014, 3, 1), 人均纯收入="三千", 人数="3.5",
            参加大病医疗="不详"),
        row(HH2, 1, WIFE_ID, 识别年度="41699", 脱贫年度="2016-12-31"),
    ]  # fmt: skip
    body = xlsx(rows, title_rows=4, total=False)
    staged = normalise(ZHASHUI, land(tmp_path, ZHASHUI, [file_page("x.xlsx", body)]))
    hh = {r["household_no"]: r for r in staged.frames["household"].rows(named=True)}
    assert hh[HH1]["identified_year"] == 2014 and hh[HH2]["identified_year"] == 2014
    assert hh[HH2]["exit_year"] == 2016
    assert sorted((e["rule"], e["column"], e["value"]) for e in hh[HH1]["parse_errors"]) == [
        ("bad_number", "income_per_capita", "三千"),
        ("bad_number", "member_count", "3.5"),
    ]
    person = staged.frames["person"].filter(pl.col("household_no") == HH1).row(0, named=True)
    assert person["parse_errors"] == [
        {"rule": "bad_boolean", "column": "serious_illness_insured", "value": "不详"}
    ]
    assert staged.as_of == date(2016, 7, 1)


def test_newest_file_is_the_snapshot(tmp_path):
    old = file_page("a_20160701.xlsx", xlsx(ROWS[:1]), "2016-07-01T18:20:00+08:00", "2016-07-01")
    new = file_page("b_20160708.xlsx", xlsx(ROWS), "2016-07-08T18:20:00+08:00", "2016-07-08")
    staged = normalise(ZHASHUI, land(tmp_path, ZHASHUI, [new, old]), {"file": "z.xlsx", "x": "1"})
    assert staged.frames["person"].height == 4
    assert staged.watermarks == {"file": "b_20160708.xlsx", "x": "1"}
    assert staged.as_of == date(2016, 7, 8)


def test_no_new_file_keeps_watermarks(tmp_path):
    staged = normalise(ZHASHUI, land(tmp_path, ZHASHUI, []), {"file": "a.xlsx"})
    assert staged.frames == {} and staged.full_listing == set()
    assert staged.watermarks == {"file": "a.xlsx"}


def _truncated(body: bytes) -> bytes:
    return body[: len(body) // 2]


@pytest.mark.parametrize(
    ("county_", "name", "body", "problem"),
    [
        (ZHASHUI, "t.xlsx", _truncated(xlsx(ROWS)), "not a readable .xlsx"),
        (ZHASHUI, "h.xlsx", b"<html><body>502 Bad Gateway</body></html>", "not a readable .xlsx"),
        (ZHASHUI, "s.xlsx", xlsx(ROWS, sheet="汇总"), "no sheet"),
        (ZHASHUI, "n.xlsx", xlsx(ROWS, columns=[c.replace("户编号", "户号") for c in COLUMNS]),
         "no header row"),
        (ZHASHUI, "c.xlsx", xlsx(ROWS, columns=[*COLUMNS[:-1], "电话"]), "联系电话"),
        (DANFENG, "u.csv", csv_bytes(ROWS, "utf-8"), "UTF-8"),
        (DANFENG, "t.csv", _truncated(csv_bytes(ROWS)), "truncated"),
        (DANFENG, "w.csv", "乡(镇),户数,人数\r\n城关,1,2\r\n".encode("gb18030"), "no header row"),
        (DANFENG, "b.csv", b"\x81\x20\x81\x30\r\n", "GB18030"),
    ],
)  # fmt: skip
def test_broken_files_raise_source_error(tmp_path, county_, name, body, problem):
    manifest = land(tmp_path, county_, [file_page(name, body)])
    with pytest.raises(SourceError) as err:
        normalise(county_, manifest)
    message = str(err.value)
    assert county_.label in message and name in message and problem in message
