"""A hand-written workbook drop (``platforms/workbook.md``) on loopback for 丹凤 (GB18030 CSV): an
index and one clean register file by default; a scenario uploads a second, hostile one."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import time
from datetime import date
from urllib.parse import unquote

from schemas.id_number import make_id
from tests.hostile.harness import Answer, LoopbackServer, Request, json_answer

USER, PASSWORD = "danfeng-drop", "danfeng-drop-pass-3"
VILLAGE = "611022101200"
HEADER = [
    "县",
    "乡(镇)",
    "行政村",
    "户编号",
    "人编号",
    "姓名",
    "证件号码",
    "人数",
    "与户主关系",
    "民族",
    "文化程度",
    "在校生状况",
    "健康状况",
    "劳动技能",
    "务工状况",
    "务工时间(月)",
    "参加大病医疗",
    "贫困户属性",
    "主要致贫原因",
    "其他致贫原因",
    "脱贫状态",
    "识别年度",
    "脱贫年度",
    "危房户",
    "饮水安全",
    "人均纯收入",
    "联系电话",
]


def person_row(n: int, seq: int, **kw) -> dict[str, str]:
    head = seq == 1
    sex = "male" if head else "female"
    born = date(1970, 5, 1) if head else date(1972, 3, 3)
    hh = f"{VILLAGE}{n:04d}"
    row = {
        "县": "丹凤县", "乡(镇)": "庾岭镇", "行政村": "街坊村", "户编号": hh,
        "人编号": f"{hh}{seq:02d}", "姓名": "张三" if head else "李四",
        "证件号码": "'" + make_id("611022", born, (n * 10 + seq * 2) % 1000, sex), "人数": "2",
        "与户主关系": "户主" if head else "配偶", "民族": "汉族", "文化程度": "初中",
        "在校生状况": "非在校生", "健康状况": "健康", "劳动技能": "普通劳动力",
        "务工状况": "乡(镇)内务工", "务工时间(月)": "6", "参加大病医疗": "是",
        "贫困户属性": "一般贫困户", "主要致贫原因": "缺资金", "其他致贫原因": "", "脱贫状态": "未脱贫",
        "识别年度": "2014", "脱贫年度": "", "危房户": "否", "饮水安全": "是",
        "人均纯收入": "3520.50", "联系电话": "13900000000",
    }  # fmt: skip
    return row | kw


def register_csv(rows: list[dict[str, str]]) -> bytes:
    lines = [",".join(HEADER)] + [",".join(r[c] for c in HEADER) for r in rows]
    return ("\r\n".join(lines) + "\r\n").encode("gb18030")


def clean_rows(households: int = 3) -> list[dict[str, str]]:
    return [person_row(n, seq) for n in range(1, households + 1) for seq in (1, 2)]


class HostileDrop:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.entries: list[dict] = []
        self.index_override: bytes | None = None
        self.stream_file: str | None = None  # name served as a body that never ends
        self.drip_file: str | None = None  # name served a byte every 0.2 s
        self.upload("丹凤县贫困人口_20160701.csv", register_csv(clean_rows()), "2016-07-01")
        self.server = LoopbackServer(self)

    def upload(self, name: str, body: bytes, day: str, **entry) -> dict:
        self.files[name] = body
        record = {
            "name": name,
            "sha256": hashlib.sha256(body).hexdigest(),
            "size": len(body),
            "uploadedAt": f"{day}T18:20:00+08:00",
            "exportDate": day,
            "kind": "register",
        } | entry
        self.entries.append(record)
        return record

    def __call__(self, req: Request) -> Answer:
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if req.headers.get("authorization") != expected:
            return Answer(401, b"unauthorized", "text/plain", {"WWW-Authenticate": "Basic"})
        if req.path == "/exports/index.json":
            if self.index_override is not None:
                return Answer(body=self.index_override)
            return json_answer({"files": self.entries})
        if not req.path.startswith("/exports/"):
            return Answer(404, b"not found", "text/plain")
        name = unquote(req.path.removeprefix("/exports/"))
        if name == self.stream_file:
            return Answer(stream=itertools.repeat(b"x" * 65536), content_type="text/csv")
        if name == self.drip_file:

            def drip():
                for byte in self.files[name]:
                    time.sleep(0.2)
                    yield bytes([byte])

            return Answer(stream=drip(), content_type="text/csv")
        if name not in self.files:
            return Answer(404, b"not found", "text/plain")
        return Answer(body=self.files[name], content_type="text/csv")

    def index_with(self, **changes) -> None:
        """Serve an index whose last entry is changed (bypassing ``upload``'s honesty)."""
        entries = [dict(e) for e in self.entries]
        entries[-1].update(changes)
        self.index_override = json.dumps({"files": entries}, ensure_ascii=False).encode()
