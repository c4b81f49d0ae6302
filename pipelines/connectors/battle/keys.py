"""The battle client's view of a list page, and the distinct keys of a listing (issue 13).

The platform's offset paging skips and repeats rows at page boundaries while records change, so
the client pages until the *distinct* keys it has seen reach the platform's ``total``
(``client.py``). It used to keep every key in a Python ``set`` (100+ bytes a key: ~150 MB for
商州's members at scale 10) and to ``json.loads`` every page whole only to read the envelope,
the first row's fields and each row's key.

- :func:`list_decoder`: msgspec decodes the envelope with the rows kept as raw JSON (validated,
  not turned into objects; the first is decoded for the layout check), and decodes each row's
  key fields only, typed as text. A body that does not decode so (not JSON, NaN, another shape,
  a row without its key or with a key that is not text) is parsed in full by
  ``pipelines.http`` as before, and :func:`page_keys` reads the keys from the Python rows with
  the same errors as before.
- :class:`DistinctKeys`: the keys of one listing, across its passes, counted exactly: in memory
  while they are few, then as Parquet parts counted by DuckDB under a memory limit (spilling to
  disk), so the count's memory does not grow with the county.

Keys compare as Python's ``set`` compared them: text as text; a number or ``null`` by its value
(``1``, ``1.0`` and ``true`` are one key, as in a set) written as JSON and flagged so it never
equals the text ``"1"``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import attrgetter
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import polars as pl

from base.paths import hub_home
from pipelines.raw_json import RawRecords
from warehouse.statements import literal

#: Keys buffered in memory before they are written as a Parquet part (a few MB of keys).
BUFFER_ROWS = 100_000
#: DuckDB's working memory for the distinct count; beyond it DuckDB spills to the parts folder.
COUNT_MEMORY = "32MB"


class _Envelope(msgspec.Struct):
    code: Any  # the platform's names; anything else in the answer is ignored
    rows: list[msgspec.Raw]
    total: Any = None
    msg: Any = None


_ENVELOPE = msgspec.json.Decoder(_Envelope)


class ListPage(dict):
    """``{"code", "msg", "total", "rows"}`` of a list answer; ``row_keys``: its rows' keys as
    text columns, one per key field, in row order (None when the body was parsed in full)."""

    row_keys: list[list[str]] | None = None


def list_decoder(key_fields: Sequence[str]) -> Callable[[bytes], ListPage]:
    """A decoder of ``key_fields``' list answers for ``Fetcher.request(parse_json=...)``: raises
    when the body is not such an answer with a text key in every row (the full parse follows)."""
    row = msgspec.defstruct("Keys", [(f, str) for f in key_fields])
    keys_of = msgspec.json.Decoder(msgspec.defstruct("KeyRows", [("rows", list[row])]))
    getters = [attrgetter(f) for f in key_fields]

    def decode(body: bytes) -> ListPage:
        env = _ENVELOPE.decode(body)
        rows = keys_of.decode(body).rows
        page = ListPage(code=env.code, msg=env.msg, total=env.total, rows=RawRecords(env.rows))
        page.row_keys = [list(map(get, rows)) for get in getters]
        return page

    return decode


def _as_key(value: Any) -> tuple[str, bool]:
    """A key value as (text, is JSON): text stays text; numbers and null by value."""
    if isinstance(value, str):
        return value, False
    if isinstance(value, (dict, list)):
        raise TypeError("not a plain value")
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 1.0 == 1 in a set
    elif isinstance(value, bool):
        value = int(value)  # True == 1 in a set
    return json.dumps(value), True


@dataclass(frozen=True)
class PageKeys:
    """A page's keys in row order: per key field its texts, and whether each text is a JSON
    number/null rather than text (``json`` None: all text, as from :func:`list_decoder`)."""

    texts: list[list[str]]
    json: list[list[bool]] | None = None

    def __len__(self) -> int:
        return len(self.texts[0]) if self.texts else 0


def page_keys(key_fields: Sequence[str], rows: Sequence[Any], text_keys=None) -> PageKeys:
    """The rows' keys. ``text_keys``: the columns :func:`list_decoder` read; else the keys are
    read from the Python rows, raising ``KeyError``/``TypeError`` for a row without its key
    fields or with a key that is not a plain value (as indexing a dict and hashing did)."""
    if text_keys is not None:
        return PageKeys(text_keys)
    texts: list[list[str]] = [[] for _ in key_fields]
    flags: list[list[bool]] = [[] for _ in key_fields]
    for r in rows:
        for i, k in enumerate(key_fields):
            text, is_json = _as_key(r[k])
            texts[i].append(text)
            flags[i].append(is_json)
    return PageKeys(texts, flags)


def fingerprint(keys: PageKeys) -> int:
    """A page's keys in row order, as one number (``PagingGuard``: a page served twice)."""
    flags = None if keys.json is None or not any(map(any, keys.json)) else keys.json
    return hash(
        (tuple(map(tuple, keys.texts)), None if flags is None else tuple(map(tuple, flags)))
    )


class DistinctKeys:
    """The keys seen by one listing (every pass), counted exactly, in bounded memory: keys are
    buffered up to ``buffer_rows`` rows, then written as Parquet parts (per key field ``k<i>``,
    the text, and ``j<i>``, the JSON flag) under a temporary folder (``HUB_HOME/tmp``) that
    DuckDB counts under ``COUNT_MEMORY``."""

    def __init__(self, buffer_rows: int = BUFFER_ROWS, directory: Path | None = None) -> None:
        self.buffer_rows = max(1, buffer_rows)
        self._parent = directory
        self._folder: Path | None = None
        self._texts: list[list[str]] = []
        self._json: list[list[bool]] = []
        self._buffered = 0
        self._parts: list[Path] = []

    def __enter__(self) -> DistinctKeys:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, keys: PageKeys) -> None:
        n = len(keys)
        if n == 0:
            return
        if not self._texts:
            self._texts = [[] for _ in keys.texts]
            self._json = [[] for _ in keys.texts]
        for i, texts in enumerate(keys.texts):
            self._texts[i].extend(texts)
            self._json[i].extend(keys.json[i] if keys.json is not None else repeat(False, n))
        self._buffered += n
        if self._buffered >= self.buffer_rows:
            self._write_part()

    def _frame(self) -> pl.DataFrame:
        columns = {}
        for i, (texts, flags) in enumerate(zip(self._texts, self._json, strict=True)):
            columns[f"k{i}"] = pl.Series(texts, dtype=pl.String)
            columns[f"j{i}"] = pl.Series(flags, dtype=pl.Boolean)
        return pl.DataFrame(columns)

    def count(self) -> int:
        """How many distinct keys were added."""
        if not self._parts:  # few keys: counted in memory
            return self._frame().n_unique() if self._buffered else 0
        self._write_part()
        listed = ", ".join(literal(p.as_posix()) for p in self._parts)
        con = duckdb.connect(config={"memory_limit": COUNT_MEMORY, "threads": 1})
        try:
            con.execute(f"SET temp_directory = {literal((self._folder / 'spill').as_posix())}")
            sql = f"SELECT count(*) FROM (SELECT DISTINCT * FROM read_parquet([{listed}]))"
            return int(con.execute(sql).fetchone()[0])
        finally:
            con.close()

    def _write_part(self) -> None:
        if not self._buffered:
            return
        if self._folder is None:
            parent = self._parent or hub_home() / "tmp"
            parent.mkdir(parents=True, exist_ok=True)
            self._folder = Path(tempfile.mkdtemp(prefix="battle-keys-", dir=parent))
        path = self._folder / f"{len(self._parts):05d}.parquet"
        self._frame().write_parquet(path, compression="lz4")
        self._parts.append(path)
        self._texts, self._json, self._buffered = [], [], 0

    def close(self) -> None:
        self._texts, self._json, self._buffered, self._parts = [], [], 0, []
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
