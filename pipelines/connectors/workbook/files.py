"""A landed register file (柞水's .xlsx, 丹凤's GB18030 .csv) read in row chunks, never whole
(issue 13): the normaliser builds and stages each chunk as the paginated counties do their page
groups, so the landing step's memory does not grow with the county.

- **xlsx**: an .xlsx is a zip; the sheet's XML is inflated as a stream and cut at row ends
  (``</row>``) about every ``chunk_bytes()``. Each chunk is read by the same reader as before
  (fastexcel/calamine: the same cell rendering, dates and numbers as text, shared strings,
  styles) from a small workbook holding the package's other parts and a sheet of that chunk's
  rows, preceded by a copy of the header row renumbered to just above them: the chunk then
  reads like the whole sheet (columns by header name, rows by their position below the header),
  and calamine's dense grid only spans the chunk. Not bounded: the shared-strings table, which
  every chunk's reader loads (the simulator's and the national system's exports write inline
  strings; a workbook saved by Excel keeps every text in it). A sheet whose rows carry no row
  numbers (``r``, optional in the format, written by every producer we know) is read whole.
- **csv**: read in blocks cut at line ends outside quotes (GB18030 never uses the bytes of
  ``\\n`` or ``"`` inside a character), each decoded and parsed with the header line in front.

Every check of the whole-file readers is kept, with the same messages (county, file, problem).
"""

from __future__ import annotations

import io
import os
import posixpath
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import fastexcel
import polars as pl

from pipelines.connectors.pages import source_error
from pipelines.connectors.workbook.layout import (
    COLUMNS,
    HEADER_MARK,
    HEADER_SEARCH_ROWS,
    ID_COL,
    SHEET,
)
from pipelines.http import looks_like_html

ID_AS_NUMBER = "__id_as_number"  # the cell held a number: digits lost
ID_SHOWN = "__id_shown"  # how a spreadsheet shows that number ("6.11026E+17")
#: Inflated sheet XML / CSV bytes read per chunk (HUB_WORKBOOK_CHUNK_BYTES): ~1,500 register
#: rows of an .xlsx, ~8,000 of a CSV (more: the same CPU, ~60 MB more peak per 2 MiB more).
CHUNK_BYTES = 2 << 20
#: A sheet XML row (or a CSV record) longer than this many chunks is refused, not buffered.
MAX_ROW_CHUNKS = 16
# CSV has no cell types: an ID that went through a spreadsheet as a number is written the way
# the spreadsheet showed it, in scientific notation (and without the exporter's apostrophe).
_SCIENTIFIC = r"^[+-]?\d+(\.\d+)?[Ee][+-]?\d+$"
_EXPORT_TIME = re.compile(r"导出时间[:：]\s*(\d{4}-\d{2}-\d{2}(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?)")


def chunk_bytes() -> int:
    raw = os.environ.get("HUB_WORKBOOK_CHUNK_BYTES", "").strip()
    return max(1 << 12, int(raw)) if raw.isdigit() else CHUNK_BYTES


@dataclass(frozen=True)
class Chunk:
    """Rows of a register (text columns, ``__id_as_number``, ``__id_shown``); ``first`` is the
    position of its first row below the header (what ``raw_ref`` counts, empty rows included)."""

    rows: pl.DataFrame
    first: int


@dataclass
class Register:
    """An open register file: its export time (from the title rows) and its chunks, in order."""

    exported: str | None
    chunks: Iterator[Chunk]


def open_register(county, name: str, path: Path) -> Register:
    """The register file at ``path`` (verified against the manifest), header found and checked."""
    with path.open("rb") as f:
        head = f.read(64)
    is_xlsx = name.lower().endswith(".xlsx") or (
        not name.lower().endswith(".csv") and head[:2] == b"PK"
    )
    if looks_like_html(head):  # what a failed upload through a gateway leaves behind
        what = "not a readable .xlsx workbook" if is_xlsx else "not a CSV register"
        raise source_error(county, name, f"{what}: an HTML page (failed upload or gateway error)")
    return _xlsx(county, name, path) if is_xlsx else _csv(county, name, path)


def export_time(cells) -> str | None:
    """ "导出时间：2016-07-01 18:10:22" among title cells, when present (date, or date and time)."""
    for cell in cells:
        if cell and (m := _EXPORT_TIME.search(str(cell))):
            return m.group(1)
    return None


# --------------------------------------------------------------------------- xlsx


def _excel_shown(number_text: pl.Expr) -> pl.Expr:
    """A number as a spreadsheet's General format shows it in a standard-width cell: up to
    11 characters, so 18-digit IDs become 6 significant digits in scientific notation."""
    v = number_text.cast(pl.Float64, strict=False)
    exp = v.abs().log10().floor().cast(pl.Int64)
    six = (v.abs() / pl.lit(10.0).pow(exp - 5)).round(0).cast(pl.Int64)
    exp = pl.when(six >= 1_000_000).then(exp + 1).otherwise(exp)
    six = pl.when(six >= 1_000_000).then(six // 10).otherwise(six)
    digits = six.cast(pl.String)
    frac = digits.str.slice(1).str.strip_chars_end("0")
    mantissa = digits.str.slice(0, 1) + pl.when(frac != "").then("." + frac).otherwise(pl.lit(""))
    sign = pl.when(v < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    scientific = sign + mantissa + "E+" + exp.cast(pl.String).str.zfill(2)
    return pl.when(v.abs() < 1e11).then(number_text).otherwise(scientific)


def _header_index(rows: pl.DataFrame) -> int | None:
    marks = rows.select(
        pl.any_horizontal(pl.col(c).str.strip_chars() == HEADER_MARK for c in rows.columns)
    ).to_series()
    hits = marks.arg_true()
    return int(hits[0]) if hits.len() else None


@dataclass(frozen=True)
class _Sheet:
    """Where a chunk's grid has its header row and the register's columns."""

    header_at: int  # row of the header in the grid
    header: list[str]  # the header's cells, by grid column


def _grid(county, name: str, workbook, first_non_empty: bool) -> pl.DataFrame:
    """The sheet as text cells by grid position. ``first_non_empty``: the grid starts at the
    sheet's first non-empty row (a chunk: its header copy), else at row 1."""
    skip = None if first_non_empty else 0
    try:
        return workbook.load_sheet(
            SHEET, header_row=None, skip_rows=skip, dtypes="string", whitespace_as_null=True
        ).to_polars()
    except Exception as exc:
        raise source_error(county, name, f"sheet {SHEET!r} cannot be read: {exc}") from exc


def _data(county, name: str, workbook, grid: pl.DataFrame, sheet: _Sheet, anchored: bool):
    """A grid's rows below the header, named by the header, with the ID cells' number flag.

    Every cell is read as text once; the ID column is read a second time as booleans, which
    the reader can only produce from number (or boolean) cells: that is how a number-typed ID
    cell is told from a text one, whatever its digits look like."""
    named = {old: new for old, new in zip(grid.columns, sheet.header, strict=True) if new}
    data = grid.slice(sheet.header_at + 1).select(list(named)).rename(named)
    missing = [c for c in COLUMNS if c not in data.columns]
    if missing:
        raise source_error(county, name, f"header lacks columns {missing}")
    typed = workbook.load_sheet(
        SHEET,
        header_row=None,
        # anchored: the grid starts at the header copy (skip_rows=None: at the first non-empty
        # row), else at the sheet's row 1
        skip_rows=None if anchored else sheet.header_at + 1,
        use_columns=[sheet.header.index(ID_COL)],
        dtypes="boolean",
    )
    is_number, _ = typed.to_arrow_with_errors()  # text cells are "errors" → null
    mask = pl.from_arrow(is_number).to_series().is_not_null()
    if anchored:
        mask = mask.slice(1)
    # Pad: the typed read stops at the last non-empty ID cell.
    mask = mask.extend_constant(False, max(0, data.height - mask.len())).head(data.height)
    return data.with_columns(mask.alias(ID_AS_NUMBER)).with_columns(
        pl.when(pl.col(ID_AS_NUMBER)).then(_excel_shown(pl.col(ID_COL))).alias(ID_SHOWN)
    )


def _header_cells(grid: pl.DataFrame, at: int) -> list[str]:
    return [str(v).strip() if v is not None else "" for v in grid.row(at)]


def _first_grid(county, name: str, workbook) -> tuple[pl.DataFrame, _Sheet, str | None]:
    """The sheet's first rows as the whole-file reader saw them: header found, title read."""
    grid = _grid(county, name, workbook, first_non_empty=False)
    header_at = _header_index(grid.head(HEADER_SEARCH_ROWS))
    if header_at is None:
        raise source_error(county, name, f"no header row containing {HEADER_MARK!r}")
    header = _header_cells(grid, header_at)
    exported = None
    for row in grid.head(header_at).iter_rows():  # a couple of title rows, not records
        exported = exported or export_time(row)
    return grid, _Sheet(header_at, header), exported


def _open_workbook(county, name: str, source) -> fastexcel.ExcelReader:
    try:
        reader = fastexcel.read_excel(source)
        sheets = reader.sheet_names
    except Exception as exc:  # calamine/zip errors: truncated, or not a workbook at all
        raise source_error(
            county, name, "not a readable .xlsx workbook (truncated upload or another file type)"
        ) from exc
    if SHEET not in sheets:
        raise source_error(county, name, f"no sheet {SHEET!r} (the workbook has {sheets})")
    return reader


def _xlsx(county, name: str, path: Path) -> Register:
    _open_workbook(county, name, str(path))  # checks the package and the sheet's name
    try:
        package = _Package(path)
    except (zipfile.BadZipFile, ElementTree.ParseError, KeyError, OSError, ValueError) as exc:
        raise source_error(
            county, name, "not a readable .xlsx workbook (truncated upload or another file type)"
        ) from exc
    pieces = package.row_pieces(county, name)
    first = next(pieces, b"")
    while first.count(package.row_end) <= HEADER_SEARCH_ROWS:  # the header is in chunk 0
        more = next(pieces, None)
        if more is None:
            break
        first += more
    workbook = _open_workbook(county, name, package.workbook(first))
    grid, sheet, exported = _first_grid(county, name, workbook)
    header_row = package.header_row(first, sheet.header_at)
    if header_row is None:  # rows without row numbers: no anchor for a chunk, read whole
        workbook = _open_workbook(county, name, package.workbook(first + b"".join(pieces)))
        grid = _grid(county, name, workbook, first_non_empty=False)
        return Register(
            exported, iter([Chunk(_data(county, name, workbook, grid, sheet, False), 0)])
        )

    def chunks() -> Iterator[Chunk]:
        yield Chunk(_data(county, name, workbook, grid, sheet, anchored=False), 0)
        for piece in pieces:
            row_no = package.first_row_number(piece)
            if row_no is None or row_no <= sheet.header_at + 1:
                raise source_error(
                    county, name, f"sheet {SHEET!r}: rows out of order or without row numbers"
                )
            anchor = package.renumbered(header_row, sheet.header_at + 1, row_no - 1)
            chunk = _open_workbook(county, name, package.workbook(anchor + piece))
            grid_k = _grid(county, name, chunk, first_non_empty=True)
            rows = _data(
                county, name, chunk, grid_k, _Sheet(0, _header_cells(grid_k, 0)), anchored=True
            )
            # row_no (1-based) is the sheet's row header_at + 1 + first (0-based)
            yield Chunk(rows, row_no - sheet.header_at - 2)

    return Register(exported, chunks())


class _Package:
    """The zip of an .xlsx: the register sheet's XML as a stream of row pieces, and small
    workbooks made of the package's other parts and one piece of the sheet."""

    def __init__(self, path: Path) -> None:
        self.zip = zipfile.ZipFile(path)
        sheets = _sheet_parts(self.zip)
        self.part = sheets[SHEET]
        # every part but the sheets (read by nobody here) and media: workbook, relations,
        # styles (dates), shared strings, content types …
        self.parts = {
            info.filename: self.zip.read(info)
            for info in self.zip.infolist()
            if info.filename not in sheets.values()
            and "/media/" not in info.filename
            and not info.is_dir()
        }
        self._tags(b"")
        self.head = b""

    def _tags(self, prefix: bytes) -> None:
        """The closing tags, with the sheet's namespace prefix (``x:`` from some producers)."""
        self.row_end = b"</" + prefix + b"row>"
        self.data_end = b"</" + prefix + b"sheetData>"
        self.tail = self.data_end + b"</" + prefix + b"worksheet>"

    def row_pieces(self, county, name: str) -> Iterator[bytes]:
        """The sheet's rows in pieces of about ``chunk_bytes()``, each ending at a row's end;
        sets ``head``: the XML before the rows (without ``<dimension>``, a size hint calamine
        would reserve the whole sheet's cells for)."""
        size = chunk_bytes()
        with self.zip.open(self.part) as stream:

            def read() -> bytes:
                try:
                    return stream.read(size)
                except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
                    # a damaged part inside an intact zip (bad CRC, broken deflate stream)
                    problem = f"sheet {SHEET!r} cannot be read: {exc}"
                    raise source_error(county, name, problem) from exc

            buf = b""
            while (start := re.search(rb"<(\w+:)?sheetData\b[^>]*?(/?)>", buf)) is None:
                block = read()
                if not block:
                    raise source_error(county, name, f"sheet {SHEET!r} has no sheetData")
                buf += block
            self._tags(start.group(1) or b"")
            head = re.sub(rb"<(?:\w+:)?dimension\b[^>]*/>", b"", buf[: start.end()])
            if start.group(2):  # <sheetData/>: no rows at all; opened for the empty chunk
                self.head = head[:-2] + b">"
                return
            self.head, buf = head, buf[start.end() :]
            while True:
                end = buf.find(self.data_end)
                if end >= 0:
                    if buf[:end].strip():
                        yield buf[:end]
                    return
                cut = buf.rfind(self.row_end)
                if cut >= 0 and len(buf) >= size:
                    cut += len(self.row_end)
                    yield buf[:cut]
                    buf = buf[cut:]
                elif len(buf) > MAX_ROW_CHUNKS * size:
                    raise source_error(
                        county, name, f"sheet {SHEET!r}: a row longer than {len(buf):,} bytes"
                    )
                block = read()
                if not block:
                    raise source_error(
                        county, name, f"sheet {SHEET!r} cannot be read: its XML ends mid-row"
                    )
                buf += block

    def workbook(self, rows: bytes) -> bytes:
        """A workbook of the package's parts and a sheet of ``rows``, uncompressed."""
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
            for part, data in self.parts.items():
                z.writestr(part, data)
            z.writestr(self.part, self.head + rows + self.tail)
        return out.getvalue()

    def header_row(self, rows: bytes, header_at: int) -> bytes | None:
        """The header row's XML (sheet row ``header_at + 1``), when rows carry numbers."""
        found = re.search(
            rb"<(?:\w+:)?row\b[^>]*?\br=\"%d\"[^>]*>.*?" % (header_at + 1)
            + re.escape(self.row_end),
            rows,
            re.DOTALL,
        )
        return found.group(0) if found else None

    @staticmethod
    def first_row_number(piece: bytes) -> int | None:
        found = re.search(rb"<(?:\w+:)?row\b[^>]*?\br=\"(\d+)\"", piece)
        return int(found.group(1)) if found else None

    @staticmethod
    def renumbered(row: bytes, old: int, new: int) -> bytes:
        """``row`` (the header's XML) moved from sheet row ``old`` to ``new``: the row's and
        its cells' references."""
        return re.sub(rb'\br="([A-Z]{0,3})%d"' % old, rb'r="\g<1>%d"' % new, row)


_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}Relationship"
_SHEET_TAG = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}sheet"
_RID = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"


def _sheet_parts(package: zipfile.ZipFile) -> dict[str, str]:
    """Sheet name → the zip member holding its XML (``xl/worksheets/sheet1.xml``)."""
    rels = ElementTree.fromstring(package.read("_rels/.rels"))
    book = next(
        r.get("Target", "")
        for r in rels.iter(_REL)
        if r.get("Type", "").endswith("/officeDocument")
    ).lstrip("/")
    folder = posixpath.dirname(book)
    book_rels = posixpath.join(folder, "_rels", posixpath.basename(book) + ".rels")
    targets = {
        r.get("Id"): r.get("Target", "")
        for r in ElementTree.fromstring(package.read(book_rels)).iter(_REL)
    }
    parts = {}
    for sheet in ElementTree.fromstring(package.read(book)).iter(_SHEET_TAG):
        target = targets[sheet.get(_RID)]
        path = target.lstrip("/") if target.startswith("/") else posixpath.join(folder, target)
        parts[sheet.get("name")] = posixpath.normpath(path)
    return parts


# --------------------------------------------------------------------------- csv


def _utf8_hint(body: bytes) -> str:
    try:
        return " (the file is UTF-8, not GB18030)" if HEADER_MARK in body.decode("utf-8") else ""
    except UnicodeDecodeError:
        return ""


def _csv(county, name: str, path: Path) -> Register:
    size = path.stat().st_size
    with path.open("rb") as f:
        if f.read(3) == b"\xef\xbb\xbf":
            raise source_error(county, name, "the CSV is UTF-8 (with BOM), not GB18030")
        if size:
            f.seek(size - 1)
            if f.read(1) != b"\n":
                raise source_error(county, name, "the CSV ends mid-line (truncated upload)")
    blocks = _csv_blocks(county, name, path)
    first = next(blocks, b"")
    while first.count(b"\n") < HEADER_SEARCH_ROWS and (more := next(blocks, None)) is not None:
        first += more  # the header is found in the first block
    text = _decoded(county, name, first, 0)
    head = text.split("\n", HEADER_SEARCH_ROWS)[:HEADER_SEARCH_ROWS]
    header_at = next((i for i, line in enumerate(head) if HEADER_MARK in line), None)
    if header_at is None:
        problem = f"no header row containing {HEADER_MARK!r}{_utf8_hint(first)}"
        raise source_error(county, name, problem)
    exported = next(
        (m.group(1) for line in head[:header_at] if (m := _EXPORT_TIME.search(line))), None
    )
    lines = text.split("\n", header_at + 1)
    header = ("\n".join(lines[: header_at + 1]) + "\n").encode("utf-8")
    rest = lines[header_at + 1].encode("utf-8") if len(lines) > header_at + 1 else b""

    def chunks() -> Iterator[Chunk]:
        seen, offset = 0, len(first)
        rows = _csv_rows(county, name, header, rest, skip=header_at)
        yield Chunk(rows, 0)
        seen += rows.height
        for block in blocks:
            body = _decoded(county, name, block, offset).encode("utf-8")
            offset += len(block)
            rows = _csv_rows(county, name, header, body, skip=header_at)
            yield Chunk(rows, seen)
            seen += rows.height

    return Register(exported, chunks())


def _decoded(county, name: str, block: bytes, offset: int) -> str:
    try:
        return block.decode("gb18030")
    except UnicodeDecodeError as exc:
        problem = f"not GB18030 text (byte {offset + exc.start}){_utf8_hint(block)}"
        raise source_error(county, name, problem) from exc


def _csv_blocks(county, name: str, path: Path) -> Iterator[bytes]:
    """The file in blocks of about ``chunk_bytes()``, each ending at a line end outside
    quotes (a quoted field may hold line breaks)."""
    size = chunk_bytes()
    with path.open("rb") as f:
        buf = b""
        while block := f.read(size):
            buf += block
            cut = _record_end(buf)
            if cut > 0:
                yield buf[:cut]
                buf = buf[cut:]
            elif len(buf) > MAX_ROW_CHUNKS * size:
                raise source_error(county, name, f"a CSV record longer than {len(buf):,} bytes")
        if buf:
            yield buf


def _record_end(buf: bytes) -> int:
    """The end of the last complete record in ``buf`` (after a ``\\n`` outside quotes), or 0."""
    end = len(buf)
    quotes = buf.count(b'"')
    while (nl := buf.rfind(b"\n", 0, end)) >= 0:
        quotes -= buf.count(b'"', nl + 1, end)
        if quotes % 2 == 0:
            return nl + 1
        end = nl
    return 0


def _csv_rows(county, name: str, header: bytes, body: bytes, skip: int) -> pl.DataFrame:
    """A block of records parsed with the header line (and the title lines) in front."""
    try:
        data = pl.read_csv(io.BytesIO(header + body), skip_rows=skip, infer_schema=False)
    except Exception as exc:
        raise source_error(county, name, f"the CSV cannot be parsed: {exc}") from exc
    data = data.rename({c: c.strip() for c in data.columns})
    missing = [c for c in COLUMNS if c not in data.columns]
    if missing:
        raise source_error(county, name, f"header lacks columns {missing}")
    sent = pl.col(ID_COL).str.strip_chars()
    as_number = sent.str.contains(_SCIENTIFIC).fill_null(False)
    return data.with_columns(
        # The exporter's apostrophe keeps the ID text in a spreadsheet; it is not data.
        sent.str.strip_prefix("'").alias(ID_COL),
        as_number.alias(ID_AS_NUMBER),
        pl.when(as_number).then(sent).alias(ID_SHOWN),
    )
