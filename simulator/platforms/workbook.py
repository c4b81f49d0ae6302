"""扶贫数据报送 workbook drop (``shared/platforms/workbook.md``): a small file service with an
index of uploaded register exports. 柞水 uploads .xlsx files as the national system lays them out,
丹凤 uploads GB18030 CSV files.

Each export is a full snapshot of the county's live households and members, one row per person,
rendered once and kept as bytes: files never change after "upload". A new export is produced when
the clock passes a week boundary (Monday 00:00 Beijing time) or on ``POST /_sim/export``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

import polars as pl

from schemas.columns import CODED, ENTITIES
from simulator.platforms import (
    SH_TZ,
    Platform,
    Request,
    Response,
    fixed2,
    label_expr,
    live,
    pick,
    text,
    variant_hash,
    yes_no,
)

COLUMNS = [
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
#: Columns a national-system export writes as numbers (a share of rows carries them as text).
NUMERIC = ("人数", "务工时间(月)", "识别年度", "脱贫年度", "人均纯收入")
SHEET = "贫困人口明细"
EXPORT_LAG = timedelta(minutes=10)  # export runs, then the clerk uploads it
TZ = ZoneInfo(SH_TZ)


@dataclass(frozen=True)
class Export:
    name: str
    data: bytes
    sha256: str
    uploaded_at: datetime
    export_date: date
    kind: str = "register"
    broken: str | None = None  # broken_upload variant, for the simulator's own bookkeeping

    def entry(self) -> dict:
        return {
            "name": self.name,
            "sha256": self.sha256,
            "size": len(self.data),
            "uploadedAt": self.uploaded_at.astimezone(TZ).isoformat(timespec="seconds"),
            "exportDate": self.export_date.isoformat(),
            "kind": self.kind,
        }


def _week_start(dt: datetime) -> date:
    local = dt.astimezone(TZ).date()
    return local - timedelta(days=local.weekday())


def _col_letter(i: int) -> str:
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(65 + r) + s
    return s


def _xml_escape(e: pl.Expr) -> pl.Expr:
    return (
        e.str.replace_all("&", "&amp;", literal=True)
        .str.replace_all("<", "&lt;", literal=True)
        .str.replace_all(">", "&gt;", literal=True)
    )


def _excel_general(idn: pl.Expr) -> pl.Expr:
    """How a spreadsheet shows an 18-digit number in a General cell: "6.11026E+17"."""
    six = (idn.str.slice(0, 7).cast(pl.Int64, strict=False) + 5) // 10  # 6 significant digits
    digits = six.cast(pl.String)
    frac = digits.str.slice(1).str.strip_chars_end("0")
    mantissa = (
        pl.when(frac == "")
        .then(digits.str.slice(0, 1))
        .otherwise(pl.concat_str(digits.str.slice(0, 1), pl.lit("."), frac))
    )
    return pl.concat_str(mantissa, pl.lit("E+"), (idn.str.len_chars() - 1).cast(pl.String))


_CT = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
    "</Types>"
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
    "</Relationships>"
)
_WB_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/>'
    "</Relationships>"
)
# styles: 0 default, 1 scientific "0.00000E+00" (ID numbers typed as numbers), 2 bold centred title
_STYLES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<numFmts count="1"><numFmt numFmtId="164" formatCode="0.00000E+00"/></numFmts>'
    '<fonts count="2"><font><sz val="11"/><name val="宋体"/></font>'
    '<font><b/><sz val="16"/><name val="宋体"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="3"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1" applyAlignment="1">'
    '<alignment horizontal="center"/></xf></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)
_NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'


def _text_cell(ref: str, value: str, style: int = 0) -> str:
    v = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = f' s="{style}"' if style else ""
    return f'<c r="{ref}" t="inlineStr"{s}><is><t>{v}</t></is></c>'


def xlsx_bytes(
    sheet: str,
    title: str,
    subtitle: list[tuple[int, str]],
    header: list[str],
    cells: pl.DataFrame,
    total_row: list[tuple[int, str]] | None,
) -> bytes:
    """A minimal, deterministic .xlsx: title merged across the columns (row 1), ``subtitle`` cells
    (row 2), the header (row 3), data from row 4, an optional total row.

    ``cells`` has, per column ``c`` of ``header``, a String column ``c`` (the value; null or ""
    for an empty cell) and a Boolean column ``c#num`` (write as a number) and an Int column
    ``c#style``. Cell XML is built with polars string expressions: no per-cell Python.
    """
    ncols = len(header)
    last_col = _col_letter(ncols - 1)
    first_data = 4
    data_xml = _data_rows_xml(header, cells, first_data)
    head_rows = [
        f'<row r="1">{_text_cell("A1", title, 2)}</row>',
        '<row r="2">'
        + "".join(_text_cell(f"{_col_letter(c)}2", v) for c, v in subtitle)
        + "</row>",
        '<row r="3">'
        + "".join(_text_cell(f"{_col_letter(i)}3", h) for i, h in enumerate(header))
        + "</row>",
    ]
    last_row = first_data + cells.height - 1
    tail = ""
    if total_row is not None:
        last_row += 1
        tail = (
            f'<row r="{last_row}">'
            + "".join(_text_cell(f"{_col_letter(c)}{last_row}", v) for c, v in total_row)
            + "</row>"
        )
    sheet_xml = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<worksheet {_NS}><dimension ref="A1:{last_col}{max(last_row, 3)}"/><sheetData>'
        + "".join(head_rows)
        + data_xml
        + tail
        + f'</sheetData><mergeCells count="1"><mergeCell ref="A1:{last_col}1"/></mergeCells></worksheet>'
    )
    workbook_xml = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<workbook {_NS} xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        f'<sheets><sheet name="{sheet}" sheetId="1" r:id="rId1"/></sheets></workbook>'
    )
    return _zip_bytes(workbook_xml, sheet_xml)


def _data_rows_xml(header: list[str], cells: pl.DataFrame, first_data: int) -> str:
    """The data rows' XML from row ``first_data`` on (see ``xlsx_bytes`` for ``cells``)."""
    row_no = (pl.int_range(pl.len()) + first_data).cast(pl.String)
    cell_exprs = []
    for i, name in enumerate(header):
        value = pl.col(name).cast(pl.String)
        ref = pl.concat_str(pl.lit(_col_letter(i)), row_no)
        style = pl.col(f"{name}#style").cast(pl.String)
        number = pl.concat_str(
            pl.lit('<c r="'),
            ref,
            pl.lit('" s="'),
            style,
            pl.lit('"><v>'),
            value,
            pl.lit("</v></c>"),
        )
        string = pl.concat_str(
            pl.lit('<c r="'),
            ref,
            pl.lit('" t="inlineStr"><is><t>'),
            _xml_escape(value),
            pl.lit("</t></is></c>"),
        )
        cell_exprs.append(
            pl.when(value.is_null() | (value == ""))
            .then(pl.lit(""))
            .when(pl.col(f"{name}#num"))
            .then(number)
            .otherwise(string)
        )
    rows = cells.select(
        pl.concat_str(
            pl.lit('<row r="'), row_no, pl.lit('">'), *cell_exprs, pl.lit("</row>")
        ).alias("xml")
    )["xml"]
    return rows.str.join("").item() if rows.len() else ""


def _zip_bytes(workbook_xml: str, sheet_xml: str) -> bytes:
    """The .xlsx package: the fixed parts, the workbook and its one sheet."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in (
            ("[Content_Types].xml", _CT),
            ("_rels/.rels", _RELS),
            ("xl/workbook.xml", workbook_xml),
            ("xl/_rels/workbook.xml.rels", _WB_RELS),
            ("xl/styles.xml", _STYLES),
            ("xl/worksheets/sheet1.xml", sheet_xml),
        ):
            # a fixed timestamp keeps the bytes (and sha256) a function of the content alone
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, content.encode())
    return buf.getvalue()


class WorkbookPlatform(Platform):
    kind = "workbook"

    def __init__(self, sim, county) -> None:
        super().__init__(sim, county)
        self.version = county.version  # "xlsx" or "csv"
        self.exports: list[Export] = []
        self._lock = threading.RLock()
        self.export()  # the county's first upload exists when the world starts

    # -- routing ----------------------------------------------------------------------------
    def classify(self, req: Request) -> str | None:
        if req.path == "/exports/index.json":
            return "index"
        if req.path.startswith("/exports/") and len(req.path) > len("/exports/"):
            return "file"
        return None

    def handle(self, req: Request) -> Response:
        label = self.classify(req)
        if label is None:
            return Response(404, b"Not Found", "text/plain; charset=utf-8")
        if self.sim.config.workbook_auth and not self._authorised(req):
            return Response(
                401,
                b"Unauthorized",
                "text/plain; charset=utf-8",
                {"WWW-Authenticate": 'Basic realm="exports"'},
            )
        self.sync_exports()
        if label == "index":
            with self._lock:
                files = [e.entry() for e in self.exports]
            body = json.dumps({"files": files}, ensure_ascii=False, separators=(",", ":")).encode()
            return Response(200, body)
        name = req.path[len("/exports/") :]
        with self._lock:
            found = next((e for e in self.exports if e.name == name), None)
        if found is None:
            return Response(404, b"Not Found", "text/plain; charset=utf-8")
        ctype = (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            if name.endswith(".xlsx")
            else "text/csv; charset=gb18030"
        )
        headers = {"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"}
        return Response(200, found.data, ctype, headers)

    def _authorised(self, req: Request) -> bool:
        auth = req.headers.get("Authorization") or ""
        if not auth.lower().startswith("basic "):
            return False
        try:
            user, _, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        creds = self.credentials()
        return (user, password) == (creds["key"], creds["secret"])

    def fault_response(self, kind: str) -> Response:
        return Response(
            503, "服务维护中".encode(), "text/plain; charset=utf-8", {"Retry-After": "1"}
        )

    def rename_candidates(self) -> list[tuple[str, str]]:
        return [("sha256", "sha_256")]

    # -- exports ----------------------------------------------------------------------------
    def on_clock(self) -> None:
        self.sync_exports()

    def sync_exports(self) -> None:
        """Export when the clock has passed a week boundary since the last export (checked on
        every request too, so a World advanced directly still gets its weekly upload)."""
        with self._lock:
            last = self.exports[-1].uploaded_at if self.exports else None
            if last is None or _week_start(self.world.now) > _week_start(last):
                self.export()

    def export(self) -> Export:
        """Produce and "upload" a snapshot now; a broken_upload fault spoils it."""
        with self._lock, self.world.lock:
            now = self.world.now
            exported_at = now - EXPORT_LAG
            table = self.snapshot(now)
            fault = self.sim.faults.take(self.county.code, "export", kinds=("broken_upload",))
            broken = (fault.variant or "truncated") if fault else None
            data = self._encode(table, exported_at, broken)
            stamp = exported_at.astimezone(TZ).strftime("%Y%m%d")
            stem = (
                f"{self.county.name}建档立卡贫困人口明细_{stamp}"
                if self.version == "xlsx"
                else f"{self.county.name}贫困人口_{stamp}"
            )
            ext = ".xlsx" if self.version == "xlsx" else ".csv"
            taken = {e.name for e in self.exports}
            name, n = stem + ext, 1
            while name in taken:  # a second upload on the same day
                n += 1
                name = f"{stem}_{n}{ext}"
            export = Export(
                name=name,
                data=data,
                sha256=hashlib.sha256(data).hexdigest(),
                uploaded_at=now,
                export_date=exported_at.astimezone(TZ).date(),
                broken=broken,
            )
            self.exports.append(export)
            return export

    def _members_with_households(self, now: datetime) -> pl.DataFrame:
        """Live persons of live households, with their household's columns and the names of
        their town and village, ordered by household and person."""
        households = live(self.records("household"), now)
        persons = live(self.records("person"), now)
        regions = live(self.records("region"), now).select("code", "name")
        hh_cols = [
            c
            for c in households.columns
            if c not in ("updated_at", "visible_at", "first_visible_at", "deleted_at", "source_key")
        ]
        return (
            persons.drop("updated_at", "visible_at", "first_visible_at", "deleted_at", strict=False)
            .join(households.select(hh_cols), on="household_no", how="inner")
            .join(
                regions.rename({"code": "town_code", "name": "_town"}), on="town_code", how="left"
            )
            .join(
                regions.rename({"code": "village_code", "name": "_village"}),
                on="village_code",
                how="left",
            )
            .sort("household_no", "person_no")
        )

    def snapshot(self, now: datetime) -> pl.DataFrame:
        """One row per live person of a live household, the workbook's columns as values plus
        the helper columns ``_id_as_number``, ``_as_text`` and ``_id``."""
        df = self._members_with_households(now)
        key = pl.col("person_no")
        pc, hc = CODED["person"], CODED["household"]
        ps, hs = ENTITIES["person"], ENTITIES["household"]

        def lab(col: str, coded: dict, schema: dict) -> pl.Expr:
            return text(label_expr(col, coded[col], key, 0, schema[col]))

        hint = pl.col("render_hint") if "render_hint" in df.columns else pl.lit(None, pl.String)
        legacy = (
            pl.col("id_upgraded").fill_null(False) if "id_upgraded" in df.columns else pl.lit(False)
        )
        idn = pl.col("id_number")
        # a legacy 15-digit number as still registered (only where the upgrade gives it back)
        legacy_ok = legacy & idn.str.contains(r"^\d{6}19\d{9}[\dX]$").fill_null(False)
        id_text = (
            pl.when(legacy_ok)
            .then(pl.concat_str(idn.str.slice(0, 6), idn.str.slice(8, 9)))
            .otherwise(idn)
        )
        return df.select(
            pl.lit(self.county.name).alias("县"),
            text(pl.col("_town")).alias("乡(镇)"),
            text(pl.col("_village")).alias("行政村"),
            pl.col("household_no").alias("户编号"),
            pl.col("person_no").alias("人编号"),
            text(pl.col("name")).alias("姓名"),
            text(id_text).alias("证件号码"),
            text(pl.col("member_count")).alias("人数"),
            lab("relation_to_head", pc, ps).alias("与户主关系"),
            lab("ethnicity", pc, ps).alias("民族"),
            lab("education", pc, ps).alias("文化程度"),
            lab("school_status", pc, ps).alias("在校生状况"),
            lab("health", pc, ps).alias("健康状况"),
            lab("labor_skill", pc, ps).alias("劳动技能"),
            lab("work_status", pc, ps).alias("务工状况"),
            text(pl.col("work_months")).alias("务工时间(月)"),
            yes_no(pl.col("serious_illness_insured")).alias("参加大病医疗"),
            lab("poverty_attribute", hc, hs).alias("贫困户属性"),
            text(
                pl.coalesce(
                    pl.col("main_cause_label"), label_expr("main_cause", "poverty_cause", key)
                )
            ).alias("主要致贫原因"),
            lab("other_causes", hc, hs).alias("其他致贫原因"),
            lab("poverty_status", hc, hs).alias("脱贫状态"),
            text(pl.col("identified_year")).alias("识别年度"),
            text(pl.col("exit_year")).alias("脱贫年度"),
            yes_no(pl.col("housing_safe").not_()).alias("危房户"),  # 是 = the house is unsafe
            yes_no(pl.col("water_safe")).alias("饮水安全"),
            fixed2(pl.col("income_per_capita")).fill_null("").alias("人均纯收入"),
            text(pl.col("phone")).alias("联系电话"),
            ((hint == "id_as_number") & idn.str.contains(r"^\d{15}").fill_null(False))
            .fill_null(False)
            .alias("_id_as_number"),
            pick(variant_hash(key, "as_text"), 20).alias("_as_text"),
            idn.alias("_id"),
        )

    def _encode(self, table: pl.DataFrame, exported_at: datetime, broken: str | None) -> bytes:
        if broken == "not_workbook":
            # what a failed upload through a gateway leaves behind: an HTML error page
            return "<html><head><title>上传失败</title></head><body><h1>502 Bad Gateway</h1></body></html>".encode()
        if broken == "wrong_sheet":
            data = self._summary(table, exported_at)
        elif self.version == "xlsx":
            data = self._xlsx(table, exported_at)
        else:
            data = self._csv(table)
        if broken == "truncated":
            data = data[: len(data) // 2]
        return data

    def _xlsx(self, table: pl.DataFrame, exported_at: datetime) -> bytes:
        as_num = pl.col("_id_as_number")
        cells = table.with_columns(
            # the ID typed into a General/number cell: Excel keeps 15 significant digits
            pl.when(as_num)
            .then(pl.concat_str(pl.col("_id").str.slice(0, 15), pl.lit("000")))
            .otherwise(pl.col("证件号码"))
            .alias("证件号码"),
            *[
                pl.lit(False).alias(f"{c}#num")
                for c in COLUMNS
                if c not in NUMERIC and c != "证件号码"
            ],
            *[(~pl.col("_as_text")).alias(f"{c}#num") for c in NUMERIC],
            as_num.alias("证件号码#num"),
            *[pl.lit(0).alias(f"{c}#style") for c in COLUMNS if c != "证件号码"],
            pl.when(as_num).then(pl.lit(1)).otherwise(pl.lit(0)).alias("证件号码#style"),
        )
        households = table["户编号"].n_unique()
        return xlsx_bytes(
            SHEET,
            f"{self.county.name}建档立卡贫困人口明细表",
            [
                (0, "导出时间：" + exported_at.astimezone(TZ).strftime("%Y-%m-%d %H:%M:%S")),
                (len(COLUMNS) - 1, "单位：人、元"),
            ],
            COLUMNS,
            cells,
            [(0, "合计"), (3, f"{households}户"), (4, f"{table.height}人")],
        )

    def _csv(self, table: pl.DataFrame) -> bytes:
        out = table.select(
            *[
                pl.when(pl.col("_id_as_number"))
                .then(_excel_general(pl.col("_id")))  # the digits were lost in a spreadsheet
                .otherwise(pl.concat_str(pl.lit("'"), pl.col("证件号码")))
                .alias(c)
                if c == "证件号码"
                else pl.col(c)
                for c in COLUMNS
            ]
        )
        # an empty field is written as nothing (polars would quote an empty string)
        out = out.with_columns(pl.all().replace("", None))
        return out.write_csv(line_terminator="\r\n").encode("gb18030")

    def _summary(self, table: pl.DataFrame, exported_at: datetime) -> bytes:
        """The wrong_sheet upload: the office's summary table instead of the register."""
        summary = (
            table.group_by("乡(镇)")
            .agg(
                pl.col("户编号").n_unique().cast(pl.String).alias("户数"),
                pl.len().cast(pl.String).alias("人数"),
            )
            .sort("乡(镇)")
        )
        if self.version == "csv":
            return summary.write_csv(line_terminator="\r\n").encode("gb18030")
        header = summary.columns
        cells = summary.with_columns(
            *[pl.lit(False).alias(f"{c}#num") for c in header],
            *[pl.lit(0).alias(f"{c}#style") for c in header],
        )
        return xlsx_bytes(
            "汇总",
            f"{self.county.name}贫困人口汇总表",
            [(0, "导出时间：" + exported_at.strftime("%Y-%m-%d"))],
            header,
            cells,
            None,
        )
