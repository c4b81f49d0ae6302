"""The bookkeeping of one merge or refused sync: its parameters and the Arrow views and temp
tables it registered, released when it ends."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import duckdb
import polars as pl

from warehouse.statements import run as run_statement


def load_frame(con: duckdb.DuckDBPyConnection, name: str, frame: pl.DataFrame) -> None:
    """Copy a (small) polars frame into the temp table ``name`` through the Arrow C stream
    interface: DuckDB reads the stream without pyarrow, which the merge step then never imports
    (``import pyarrow.dataset``, what ``con.register`` of an Arrow table pulls in, is ~60 MB of
    a step's RSS: bench/profiles/merge.md). A stream is read once, so it is materialised; the
    statement finds the relation by DuckDB's replacement scan of this function's locals (no
    view is ever created, so nothing can land in the warehouse's own schemas)."""
    _hub_arrow_stream = con.from_arrow(frame.__arrow_c_stream__())  # read by name below
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM _hub_arrow_stream")


def frame_of(relation: duckdb.DuckDBPyRelation) -> pl.DataFrame:
    """A query's result as a polars frame through the Arrow C stream interface (``.pl()``
    imports pyarrow: see ``load_frame``)."""
    return pl.DataFrame(relation)


@dataclass
class Batch:
    """The bookkeeping of one merge: parameters and the Arrow views it registered."""

    con: duckdb.DuckDBPyConnection
    params: dict[str, Any]
    views: list[str] = field(default_factory=list)
    temps: list[str] = field(default_factory=list)
    temp_views: list[str] = field(default_factory=list)
    #: the merge recorded unchanged rows to touch after its COMMIT (``warehouse.touch``)
    touch_after_commit: bool = False

    def register(self, name: str, frame: pl.DataFrame) -> str:
        """``frame`` as the temp table ``name`` (``load_frame``), dropped by ``release``."""
        load_frame(self.con, name, frame)
        self.temps.append(name)
        return name

    def run(self, file: str, name: str, **identifiers: str) -> duckdb.DuckDBPyConnection:
        return run_statement(self.con, file, name, self.params, **identifiers)

    def temp(self, name: str) -> str:
        self.temps.append(name)
        return name

    def temp_view(self, name: str) -> str:
        self.temp_views.append(name)
        return name

    def release(self) -> None:
        for name in self.temp_views:  # views first: they read the registered frames
            with suppress(duckdb.Error):
                self.con.execute(f"DROP VIEW IF EXISTS temp.{name}")
        for name in self.views:
            with suppress(duckdb.Error):
                self.con.unregister(name)
        for name in self.temps:
            with suppress(duckdb.Error):
                self.con.execute(f"DROP TABLE IF EXISTS temp.{name}")
