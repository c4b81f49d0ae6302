"""Battle-platform normaliser (v3 and v2): hand-written list pages → canonical frames."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import polars as pl
import pytest

from base.errors import SourceError
from pipelines.connectors.battle.normalise import normalise
from pipelines.landing import LandingWriter, Page, read_manifest
from schemas.columns import frame_schema
from schemas.id_number import make_id
from seeds.registry import county

SHANGNAN = county("shangnan")  # v3
SHANGZHOU = county("shangzhou")  # v2
BASE = "http://127.0.0.1:9"
HH = "6110231001010001"
HH2 = "6110231001010002"
HEAD_ID = make_id("611023", date(1960, 3, 1), 11, "male")
WIFE_ID = make_id("611023", date(1962, 5, 2), 12, "female")
KID_ID = make_id("611023", date(2001, 9, 9), 13, "male")
PATHS = {
    "region": "/system/area/list", "household": "/fpzz/pkh/list", "person": "/fpzz/pkry/list",
    "measure": "/fpzz/bfcs/list", "loan": "/fpzz/xd/list", "project": "/fpzz/xmk/list",
    "cadre": "/fpzz/bfr/list", "household_cadre": "/fpzz/bfgx/list",
}  # fmt: skip


def rows_page(entity: str, rows, since: str | None = None, code=200, page_num=1) -> Page:
    url = f"{BASE}{PATHS[entity]}?pageNum={page_num}&pageSize=1000"
    if since:
        url += "&params%5BbeginUpdateTime%5D=" + since.replace(" ", "+").replace(":", "%3A")
    body = {"total": len(rows), "rows": rows, "code": code, "msg": "查询成功"}
    meta = {"pageNum": page_num, "beginUpdateTime": since}
    return Page(
        entity, url, json.dumps(body, ensure_ascii=False).encode(), "application/json", meta
    )


def listing_page(totals: dict[str, int], since: str | None = None) -> Page:
    body = {
        e: {"total": n, "distinct": n, "mode": "incremental" if since else "full",
            "beginUpdateTime": since, "complete": True}
        for e, n in totals.items()
    }  # fmt: skip
    return Page("listing", BASE, json.dumps(body).encode(), "application/json", {"complete": True})


def land(tmp_path, county_, pages):
    with LandingWriter(county_, root=tmp_path) as writer:
        writer.write_all(pages)
    return read_manifest(writer.dir)


def pkh(**over):
    rec = {
        "hbh": HH, "xzqh": HH[:12], "cmc": "东村", "hzxm": "张三", "hzrybh": HH + "01",
        "pkhsx": "低保户", "tpzt": "脱贫", "zyzpyy": "因婚", "qtzpyy": "缺技术，缺劳力",
        "sbnf": "2014", "tpnf": "2016", "fpnf": "", "rjcsr": "3,520.50", "jtrk": "3",
        "zfaq": "是", "yssaq": "否", "lxdh": "13800000000", "updateTime": "2016-07-14 09:30:00",
    }  # fmt: skip
    return {**rec, **over}


def pkry(seq: int, **over):
    rec = {
        "rybh": f"{HH}{seq:02d}", "hbh": HH, "xm": "张三", "sfzh": HEAD_ID, "xb": "男",
        "csrq": "1960-03-01", "yhzgx": "户主", "mz": "汉族", "whcd": "小学", "zxsqk": "非在校生",
        "jkzk": "长期慢性病,患有大病", "ldjn": "普通劳动力", "wgzk": "乡（镇）内务工", "wgsj": "6",
        "cjdbyl": "是", "updateTime": "2016-07-14 09:30:00",
    }  # fmt: skip
    return {**rec, **over}


V3_PAGES = [
    rows_page("region", [
        {"areaCode": "611023", "areaName": "商南县", "parentCode": "611000", "areaLevel": "2",
         "sfpkc": "否", "pkctcnf": "", "updateTime": "2016-01-01 00:00:00"},
        {"areaCode": "611023100", "areaName": "城关街道", "parentCode": "611023", "areaLevel": "4",
         "sfpkc": "", "pkctcnf": "", "updateTime": "2016-01-01 00:00:00"},
        {"areaCode": "611023100101", "areaName": "东村", "parentCode": "611023100",
         "areaLevel": "5", "sfpkc": "是", "pkctcnf": "2016", "updateTime": "2016-01-01 00:00:00"},
        {"areaCode": "611023500201", "areaName": "水库村", "parentCode": "611023500",
         "areaLevel": "5", "sfpkc": "否", "pkctcnf": "", "updateTime": "2016-01-02 00:00:00"},
    ]),
    rows_page("household", [
        pkh(),
        pkh(hbh=HH2, hzrybh=HH2 + "01", zyzpyy="因病", qtzpyy="缺技术,缺资金", rjcsr="3520.5元",
            pkhsx="五保户", tpzt="未脱贫", tpnf="", zfaq="否", yssaq="是", jtrk="1"),
    ]),
    rows_page("person", [
        pkry(1),
        pkry(2, xm="李四", sfzh=f" {WIFE_ID.lower()} ", xb="女", csrq="1962/5/2", yhzgx="配偶",
             jkzk="健康", wgzk="", wgsj="", cjdbyl="否", mz="外星族"),
        pkry(3, xm="张小", sfzh=KID_ID.translate(str.maketrans("0123456789", "０１２３４５６７８９")),
             csrq="20010909", yhzgx="之子", zxsqk="九年级", whcd="初中", jkzk="", wgzk="无"),
        pkry(1, hbh=HH2, rybh=HH2 + "01", xm="王五", sfzh="611023400101123", csrq="1940年1月1日",
             jkzk="残疾，长期慢性病"),
    ]),
    rows_page("measure", [{"csbh": "M1", "hbh": HH, "cslb": "产业扶持", "nd": "2016", "je": "",
                           "csms": "养猪", "updateTime": "2016-07-01 08:00:00"}]),
    rows_page("loan", [
        {"dkbh": "L1", "hbh": HH, "dkyh": "农商行", "dkje": "50,000", "ffrq": "2016-03-01",
         "dkqx": "36", "nll": "4.35%", "txje": "2175", "dkzt": "在贷", "updateTime": "2016-07-01 08:00:00"},
        {"dkbh": "L2", "hbh": HH2, "dkyh": "邮储", "dkje": "30000.00元", "ffrq": "2015/6/1",
         "dkqx": "24", "nll": "0.0435", "txje": "", "dkzt": "已还清", "updateTime": "2016-07-01 08:00:00"},
    ]),
    rows_page("project", [{"xmbh": "P1", "xzqh": "", "xmlb": "村级道路", "xmmc": "通村路",
                           "ysje": "1,000,000", "bfje": "250000.5", "xmzt": "在建", "kgrq": "2016-04-01",
                           "wgrq": "", "syhs": "120", "updateTime": "2016-07-01 08:00:00"}]),
    rows_page("cadre", [{"bfrbh": "C1", "xm": "赵六", "sfzh": make_id("611002", date(1980, 1, 1), 31),
                         "xb": "男", "lxdh": "139", "dwmc": "县财政局", "dwlx": "国家机关", "sfdysj": "是",
                         "sfzcdy": "否", "updateTime": "2016-07-01 08:00:00"}]),
    rows_page("household_cadre", [{"hbh": HH, "bfrbh": "C1", "bfkssj": "2015-10-01",
                                   "updateTime": "2016-07-01 08:00:00"}]),
    listing_page({"region": 4, "household": 2, "person": 4, "measure": 1, "loan": 2,
                  "project": 1, "cadre": 1, "household_cadre": 1}),
]  # fmt: skip


def test_v3_full_sync(tmp_path):
    staged = normalise(SHANGNAN, land(tmp_path, SHANGNAN, V3_PAGES))
    for entity, df in staged.frames.items():
        assert df.schema == pl.Schema(frame_schema(entity)), entity
    assert staged.full_listing == set(PATHS)
    assert staged.source_counts["person"] == 4 and staged.source_counts["region"] == 4
    assert staged.deletions == {}

    regions = {r["code"]: r for r in staged.frames["region"].rows(named=True)}
    assert [regions[c]["level"] for c in ("611023", "611023100", "611023100101")] == [
        "county", "town", "village"
    ]  # fmt: skip
    assert regions["611023100101"]["is_poor_village"] is True
    assert regions["611023100101"]["poor_village_exit_year"] == 2016
    assert regions["611023100"]["is_poor_village"] is None
    assert regions["611023500201"]["is_statistical_unit"] is True
    assert regions["611023100101"]["is_statistical_unit"] is False

    hh = {r["household_no"]: r for r in staged.frames["household"].rows(named=True)}
    one, two = hh[HH], hh[HH2]
    assert one["main_cause"] == "other" and one["main_cause_label"] == "因婚"
    assert one["other_causes"] == ["lack_skills", "lack_labor"]
    assert two["other_causes"] == ["lack_skills", "lack_capital"]
    assert two["main_cause"] == "illness" and two["main_cause_label"] is None
    assert (one["poverty_attribute"], two["poverty_attribute"]) == ("dibao", "tekun")
    assert (one["poverty_status"], two["poverty_status"]) == ("exited", "not_exited")
    assert one["income_per_capita"] == 3520.5 and two["income_per_capita"] == 3520.5
    assert one["exit_year"] == 2016 and two["exit_year"] is None and one["relapse_year"] is None
    assert one["housing_safe"] is True and one["water_safe"] is False
    assert one["head_person_no"] == HH + "01" and one["town_code"] == "611023100"
    assert one["source_updated_at"] == datetime(2016, 7, 14, 1, 30, tzinfo=UTC)
    assert one["parse_errors"] == [] and two["parse_errors"] == []

    people = {r["person_no"]: r for r in staged.frames["person"].rows(named=True)}
    head, wife, kid, old = (
        people[HH + "01"],
        people[HH + "02"],
        people[HH + "03"],
        people[HH2 + "01"],
    )
    assert head["birth_date"] == date(1960, 3, 1) and wife["birth_date"] == date(1962, 5, 2)
    assert kid["birth_date"] == date(2001, 9, 9) and old["birth_date"] == date(1940, 1, 1)
    assert wife["id_number"] == WIFE_ID and kid["id_number"] == KID_ID
    assert old["id_upgraded"] is True and old["id_number"].startswith("61102319400101123")
    assert head["health"] == ["chronic", "serious_illness"] and kid["health"] == []
    assert old["health"] == ["disabled", "chronic"]
    assert head["work_status"] == "in_town" and wife["work_status"] == "not_working"
    assert kid["work_status"] == "not_working" and wife["work_months"] is None
    assert head["ethnicity"] == "01" and wife["ethnicity"] == "外星族"  # unknown: as sent
    assert kid["school_status"] == "grade9" and kid["relation_to_head"] == "son"
    assert wife["sex"] == "female" and wife["serious_illness_insured"] is False

    loans = {r["loan_id"]: r for r in staged.frames["loan"].rows(named=True)}
    assert loans["L1"]["annual_rate"] == 0.0435 and loans["L2"]["annual_rate"] == 0.0435
    assert loans["L1"]["principal"] == 50000 and loans["L2"]["principal"] == 30000
    assert loans["L2"]["issued_on"] == date(2015, 6, 1) and loans["L2"]["interest_subsidy"] is None
    assert loans["L2"]["status"] == "repaid"
    project = staged.frames["project"].row(0, named=True)
    assert project["village_code"] is None and project["budget"] == 1_000_000
    assert project["end_on"] is None and project["households_benefited"] == 120
    assert staged.frames["measure"].row(0, named=True)["amount"] is None
    assert staged.frames["cadre"].row(0, named=True)["is_first_secretary"] is True
    pair = staged.frames["household_cadre"].row(0, named=True)
    assert pair["source_key"] == f"{HH}:C1" and pair["since"] == date(2015, 10, 1)

    assert staged.watermarks["household"] == "2016-07-14 09:30:00"
    assert staged.watermarks["region"] == "2016-01-02 00:00:00"


def test_v3_parse_errors(tmp_path):
    pages = [
        rows_page("household", [pkh(rjcsr="三千", sbnf="二〇一四", zfaq="也许")]),
        rows_page("person", [pkry(1, csrq="1960-02-30", wgsj="6.5", updateTime="2016/07/14")]),
        rows_page("loan", [{"dkbh": "L1", "hbh": HH, "dkyh": "x", "dkje": "5万元", "ffrq": "去年",
                            "dkqx": "36", "nll": "4.35%%", "txje": "0", "dkzt": "冻结",
                            "updateTime": "2016-07-01 08:00:00"}]),
    ]  # fmt: skip
    staged = normalise(SHANGNAN, land(tmp_path, SHANGNAN, pages))

    def errors(entity):
        return sorted(
            (e["rule"], e["column"], e["value"])
            for e in staged.frames[entity].row(0, named=True)["parse_errors"]
        )

    assert errors("household") == [
        ("bad_boolean", "housing_safe", "也许"),
        ("bad_number", "identified_year", "二〇一四"),
        ("bad_number", "income_per_capita", "三千"),
    ]
    assert errors("person") == [
        ("bad_date", "birth_date", "1960-02-30"),
        ("bad_date", "source_updated_at", "2016/07/14"),
        ("bad_number", "work_months", "6.5"),
    ]
    assert errors("loan") == [
        ("bad_date", "issued_on", "去年"),
        ("bad_number", "annual_rate", "4.35%%"),
        ("bad_number", "principal", "5万元"),
    ]
    loan = staged.frames["loan"].row(0, named=True)
    assert loan["status"] == "冻结" and loan["principal"] is None  # unknown code kept
    assert staged.frames["household"].row(0, named=True)["income_per_capita"] is None


def test_v3_incremental_repasses_keep_newest(tmp_path):
    since = "2016-07-14 00:00:00"
    pages = [
        rows_page("person", [pkry(1, xm="旧"), pkry(2, sfzh=WIFE_ID)], since),
        # A second pass sees the record again after it changed, and once more unchanged.
        rows_page(
            "person", [pkry(1, xm="新", updateTime="2016-07-14 10:00:00")], since, page_num=2
        ),
        rows_page("person", [pkry(2, sfzh=WIFE_ID, xm="后页")], since, page_num=3),
        rows_page("household", [pkh()], since),
        listing_page({"person": 2, "household": 1}, since),
    ]
    previous = {"person": "2016-07-14 00:00:00", "cadre": "2016-06-01 12:00:00"}
    staged = normalise(SHANGNAN, land(tmp_path, SHANGNAN, pages), previous)
    people = staged.frames["person"].sort("person_no")
    assert people["name"].to_list() == ["新", "后页"]  # newest; on a tie the later page
    assert staged.full_listing == set()
    assert staged.source_counts == {}  # incremental totals are not live counts
    assert staged.watermarks == {
        "person": "2016-07-14 10:00:00",
        "household": "2016-07-14 09:30:00",
        "cadre": "2016-06-01 12:00:00",
    }


def test_v2_heads_by_id_number_and_birth_dates_from_ids(tmp_path):
    def v2_member(seq, **over):
        rec = pkry(seq, **over)
        del rec["csrq"]
        return rec

    def v2_household(**over):
        rec = pkh(**over)
        del rec["hzrybh"]
        return rec

    hh_no, twins = "6110021001010001", "6110021001010003"
    pages = [
        rows_page("household", [
            v2_household(hbh=hh_no, xzqh=hh_no[:12], hzsfz=f" {WIFE_ID.lower()}", rjcsr=3520.5),
            v2_household(hbh=HH2, hzsfz="611002999999999999", rjcsr=4000),
            v2_household(hbh=twins, xzqh=twins[:12], hzsfz=HEAD_ID),
        ]),
        rows_page("person", [
            v2_member(1, hbh=hh_no, rybh=hh_no + "01", sfzh=HEAD_ID),
            v2_member(2, hbh=hh_no, rybh=hh_no + "02", sfzh=WIFE_ID, yhzgx="户主"),
            v2_member(1, hbh=HH2, rybh=HH2 + "01", sfzh="611023400101123"),
            # two members of one household with the head's number: no head can be told
            v2_member(1, hbh=twins, rybh=twins + "01", sfzh=HEAD_ID),
            v2_member(2, hbh=twins, rybh=twins + "02", sfzh=HEAD_ID),
        ]),
        listing_page({"household": 3, "person": 5}),
    ]  # fmt: skip
    staged = normalise(SHANGZHOU, land(tmp_path, SHANGZHOU, pages))
    hh = {r["household_no"]: r for r in staged.frames["household"].rows(named=True)}
    assert hh[hh_no]["head_person_no"] == hh_no + "02"
    assert hh[HH2]["head_person_no"] is None  # nobody in the household has that number
    assert hh[twins]["head_person_no"] is None  # two have it
    assert hh[hh_no]["income_per_capita"] == 3520.5 and hh[HH2]["income_per_capita"] == 4000
    people = {r["person_no"]: r for r in staged.frames["person"].rows(named=True)}
    assert people[hh_no + "01"]["birth_date"] == date(1960, 3, 1)
    assert people[HH2 + "01"]["birth_date"] == date(1940, 1, 1)  # from the upgraded legacy ID
    assert staged.full_listing == {"household", "person"}
    assert staged.source_counts == {"household": 3, "person": 5}


def test_v2_is_always_a_full_listing(tmp_path):
    rec = pkh()
    del rec["hzrybh"]
    rec["hzsfz"] = HEAD_ID
    page = rows_page("household", [rec], since="2016-07-01 00:00:00")
    staged = normalise(SHANGZHOU, land(tmp_path, SHANGZHOU, [page]))
    assert staged.full_listing == {"household"}


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<!DOCTYPE html><html>500</html>", "HTML"),
        (b'{"total": 1, "rows": [{"hbh": "1"', "truncated JSON"),
        ('{"code": 500, "msg": "系统繁忙，请稍后再试"}'.encode(), "500"),
        (b'{"code": 200, "msg": "ok", "total": 0}', "rows"),
        (json.dumps({"code": 200, "total": 1, "rows": [{"hbh": HH}]}).encode(), "xzqh"),
    ],
)
def test_malformed_pages_raise_source_error(tmp_path, body, problem):
    url = f"{BASE}/fpzz/pkh/list?pageNum=1&pageSize=1000"
    manifest = land(tmp_path, SHANGNAN, [Page("household", url, body, "application/json", {})])
    with pytest.raises(SourceError) as err:
        normalise(SHANGNAN, manifest)
    message = str(err.value)
    assert SHANGNAN.label in message and url in message and problem in message
